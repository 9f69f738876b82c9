/* Mount-flag probe: every way a process with CAP_SYS_ADMIN might make a read-only mount
 * writable, each followed by an attempt to create a file through it.
 *
 *   mountflags DIR FSTYPE DEVICE
 *
 * DIR is a read-only mount; FSTYPE and DEVICE name the filesystem beneath it (for a fresh
 * superblock of the same disk). One line per way: "WAY wrote" when a file was created, else
 * "WAY refused STEP errno N" naming the step that failed. Raw syscall numbers: the headers of
 * older libcs lack the new mount API. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_open_tree 428
#define NR_move_mount 429
#define NR_fsopen 430
#define NR_fsconfig 431
#define NR_fsmount 432
#define NR_fspick 433
#define NR_mount_setattr 442
#define NR_open_tree_attr 467

#define OPEN_TREE_CLONE_ 1
#define AT_RECURSIVE_ 0x8000
#define MOUNT_ATTR_RDONLY_ 0x1
#define MOVE_MOUNT_F_EMPTY_PATH_ 0x4
#define FSCONFIG_SET_FLAG_ 0
#define FSCONFIG_SET_STRING_ 1
#define FSCONFIG_CMD_CREATE_ 6
#define FSCONFIG_CMD_RECONFIGURE_ 7

struct mount_attr_ {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static const char *dir;

static int refused(const char *way, const char *step) {
    printf("%s refused %s errno %d\n", way, step, errno);
    return 0;
}

/* Create NAME beneath the directory fd (or DIR when fd < 0). */
static void try_write(const char *way, int fd, const char *name) {
    char path[4096];
    int f;
    if (fd < 0) {
        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = open(path, O_CREAT | O_WRONLY, 0644);
    } else {
        f = openat(fd, name, O_CREAT | O_WRONLY, 0644);
    }
    if (f < 0) {
        refused(way, "write");
        return;
    }
    write(f, "x", 1);
    close(f);
    printf("%s wrote\n", way);
}

static struct mount_attr_ clear_ro = {.attr_clr = MOUNT_ATTR_RDONLY_};

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 4) {
        fprintf(stderr, "usage: mountflags DIR FSTYPE DEVICE\n");
        return 2;
    }
    dir = argv[1];

    /* 1. mount(2): a bind remount without MS_RDONLY. */
    if (mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND, NULL) < 0)
        refused("remount", "mount");
    else
        try_write("remount", -1, "remount");

    /* 2. mount_setattr(2) on the mount itself, recursively. */
    if (syscall(NR_mount_setattr, AT_FDCWD, dir, AT_RECURSIVE_, &clear_ro, sizeof clear_ro) < 0)
        refused("setattr", "mount_setattr");
    else
        try_write("setattr", -1, "setattr");

    /* 3. A detached copy (open_tree), made writable, written through without attaching. */
    int t = syscall(NR_open_tree, AT_FDCWD, dir, OPEN_TREE_CLONE_);
    if (t < 0)
        refused("detached", "open_tree");
    else if (syscall(NR_mount_setattr, t, "", AT_EMPTY_PATH, &clear_ro, sizeof clear_ro) < 0)
        refused("detached", "mount_setattr");
    else
        try_write("detached", t, "detached");
    if (t >= 0)
        close(t);

    /* 4. The same copy attached elsewhere with move_mount(2). */
    mkdir("/tmp/mountflags", 0755);
    t = syscall(NR_open_tree, AT_FDCWD, dir, OPEN_TREE_CLONE_);
    if (t < 0)
        refused("moved", "open_tree");
    else {
        syscall(NR_mount_setattr, t, "", AT_EMPTY_PATH, &clear_ro, sizeof clear_ro);
        if (syscall(NR_move_mount, t, "", AT_FDCWD, "/tmp/mountflags", MOVE_MOUNT_F_EMPTY_PATH_) < 0)
            refused("moved", "move_mount");
        else {
            int d = open("/tmp/mountflags", O_DIRECTORY | O_RDONLY);
            try_write("moved", d, "moved");
            close(d);
        }
        close(t);
    }

    /* 5. open_tree_attr(2) (Linux 6.15): the copy made with the flag already cleared. */
    t = syscall(NR_open_tree_attr, AT_FDCWD, dir, OPEN_TREE_CLONE_, &clear_ro, sizeof clear_ro);
    if (t < 0)
        refused("open_tree_attr", "open_tree_attr");
    else {
        try_write("open_tree_attr", t, "open_tree_attr");
        close(t);
    }

    /* 6. fspick(2) + reconfigure: the superblock made read-write. */
    int fs = syscall(NR_fspick, AT_FDCWD, dir, 0);
    if (fs < 0)
        refused("fspick", "fspick");
    else if (syscall(NR_fsconfig, fs, FSCONFIG_SET_FLAG_, "rw", NULL, 0) < 0 ||
             syscall(NR_fsconfig, fs, FSCONFIG_CMD_RECONFIGURE_, NULL, NULL, 0) < 0)
        refused("fspick", "fsconfig");
    else
        try_write("fspick", -1, "fspick");
    if (fs >= 0)
        close(fs);

    /* 7. fsopen(2) + fsmount(2): a new superblock of the same disk. */
    fs = syscall(NR_fsopen, argv[2], 0);
    if (fs < 0)
        refused("fsmount", "fsopen");
    else if (syscall(NR_fsconfig, fs, FSCONFIG_SET_STRING_, "source", argv[3], 0) < 0 ||
             syscall(NR_fsconfig, fs, FSCONFIG_CMD_CREATE_, NULL, NULL, 0) < 0)
        refused("fsmount", "fsconfig");
    else {
        int m = syscall(NR_fsmount, fs, 0, 0);
        if (m < 0)
            refused("fsmount", "fsmount");
        else {
            /* The new mount's root is the disk's root; the test's directory is somewhere in
             * it, so reaching a superblock of the host's disk at all is the failure. */
            printf("fsmount wrote\n");
            close(m);
        }
    }
    if (fs >= 0)
        close(fs);
    return 0;
}
