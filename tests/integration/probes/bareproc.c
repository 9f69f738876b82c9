/* The attack that --no-pivot must not allow (runc: "--no-pivot must not expose bare /proc"):
 * make a user, mount and pid namespace of its own, become root there, and mount a fresh procfs.
 * The kernel allows that only while a fully visible procfs is mounted in the mount namespace;
 * a pivoted container has none. Prints "bare proc mounted" or "mount proc errno N". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

int main(void) {
    char map[64];
    unsigned uid = geteuid(), gid = getegid();
    setvbuf(stdout, NULL, _IONBF, 0);
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID) != 0) {
        printf("unshare errno %d\n", errno);
        return 2;
    }
    snprintf(map, sizeof map, "0 %u 1", uid);
    if (write_file("/proc/self/uid_map", map) != 0) printf("uid_map errno %d\n", errno);
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "0 %u 1", gid);
    if (write_file("/proc/self/gid_map", map) != 0) printf("gid_map errno %d\n", errno);
    pid_t child = fork();
    if (child < 0) {
        printf("fork errno %d\n", errno);
        return 2;
    }
    if (child == 0) {
        mkdir("/tmp/bareproc", 0755);
        if (mount("proc", "/tmp/bareproc", "proc", 0, NULL) == 0) {
            printf("bare proc mounted\n");
            return 0;
        }
        printf("mount proc errno %d\n", errno);
        return 1;
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}
