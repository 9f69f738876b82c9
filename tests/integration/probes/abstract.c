/* Landlock scope probe: connect to the abstract unix socket NAME and print "ok" or
 * "errno N".
 *
 *   abstract NAME */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: abstract NAME\n");
        return 2;
    }
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t n = strlen(argv[1]);
    if (n + 1 > sizeof a.sun_path) {
        fprintf(stderr, "name too long\n");
        return 2;
    }
    memcpy(a.sun_path + 1, argv[1], n);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) {
        printf("socket errno %d\n", errno);
        return 0;
    }
    if (connect(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + n) == 0)
        printf("ok\n");
    else
        printf("errno %d\n", errno);
    close(s);
    return 0;
}
