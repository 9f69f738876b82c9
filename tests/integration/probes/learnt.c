/* A workload for `contain learn`: file work with plain syscalls and no clone. With the
 * argument "fork" it also forks, which a profile learnt from a run without it must refuse. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
    fflush(stdout);
    return 0;
}
