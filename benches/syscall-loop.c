/* Syscall-heavy loops for the seccomp benchmark: for each syscall, the best of REPS timed
 * loops of ITERS calls, in nanoseconds per call. Prints "name ns" lines. */
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    int reps = argc > 2 ? atoi(argv[2]) : 7;
    int zero = open("/dev/zero", O_RDONLY);
    char buf[1];
    int word = 0;
    const char *names[] = {"getpid", "read", "futex", "personality", "denied"};
    for (int k = 0; k < 5; k++) {
        double best = 1e18;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            for (long i = 0; i < iters; i++) {
                switch (k) {
                case 0: syscall(SYS_getpid); break;
                case 1: syscall(SYS_read, zero, buf, 1); break;
                case 2: syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0); break;
                case 3: syscall(SYS_personality, 0xffffffffUL); break;
                case 4: syscall(SYS_keyctl, 9999, 0, 0, 0, 0); break;
                }
            }
            double dt = (now() - t0) / iters;
            if (dt < best)
                best = dt;
        }
        printf("%s %.1f\n", names[k], best);
    }
    return 0;
}
