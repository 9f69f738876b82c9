/* A workload for `contain learn`: file work with plain syscalls and no clone. With the
 * argument "fork" it also forks, which a profile learnt from a run without it must refuse;
 * with "thread" it starts a thread (glibc tries clone3, then clone on ENOSYS). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *thread_main(void *arg) {
    return arg;
}

int main(int argc, char **argv) {
    const char *text = "learnt\n";
    int fd = open("/tmp/learnt.txt", O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0 || close(fd) < 0) {
        printf("write: %s\n", strerror(errno));
        return 1;
    }
    char buf[64] = {0};
    fd = open("/tmp/learnt.txt", O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof buf - 1) < 0) {
        printf("read: %s\n", strerror(errno));
        return 1;
    }
    close(fd);
    unlink("/tmp/learnt.txt");
    printf("read back %s", buf);
    if (argc > 1 && strcmp(argv[1], "fork") == 0) {
        pid_t p = fork();
        if (p == 0)
            _exit(0);
        if (p < 0) {
            printf("fork: %s\n", strerror(errno));
        } else {
            waitpid(p, NULL, 0);
            printf("fork: ok\n");
        }
    }
    if (argc > 1 && strcmp(argv[1], "thread") == 0) {
        /* faccessat2 (439): a syscall numbered above clone3 (435), so that the profile's
         * ENOSYS stub for newer syscalls does not cover clone3. */
        faccessat(AT_FDCWD, "/tmp", R_OK, AT_EACCESS);
        pthread_t t;
        int e = pthread_create(&t, NULL, thread_main, NULL);
        if (e == 0)
            pthread_join(t, NULL);
        printf("thread: %s\n", e == 0 ? "ok" : strerror(e));
    }
    fflush(stdout);
    return 0;
}
