/* Seccomp probe: makes raw syscalls and prints what each returned, one line per call.
 *
 *   syscalls SPEC...    SPEC = abi:nr[:arg0[:arg1...]]   abi = 64 | 32 (int 0x80) | x32
 *
 * Numbers may be decimal or 0x-hex. Each line reads "SPEC ok" (return >= 0; descriptors are
 * closed) or "SPEC errno N". Arguments are chosen by the tests so that an allowed call fails
 * harmlessly in the kernel (EINVAL, EBADF, EFAULT) instead of doing anything. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static long call64(long nr, long *a) {
    long ret;
    register long r10 __asm__("r10") = a[3];
    register long r8 __asm__("r8") = a[4];
    register long r9 __asm__("r9") = a[5];
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a[0]), "S"(a[1]), "d"(a[2]), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static long call32(long nr, long *a) {
    long ret;
    /* int 0x80 takes ebx, ecx, edx, esi, edi, ebp; rbp is saved by hand. */
    __asm__ volatile("push %%rbp\n\tmov %7, %%rbp\n\tint $0x80\n\tpop %%rbp"
                     : "=a"(ret)
                     : "a"(nr), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4]), "m"(a[5])
                     : "memory");
    return (int)ret;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        char spec[256];
        snprintf(spec, sizeof spec, "%s", argv[i]);
        char *save = NULL;
        char *abi = strtok_r(spec, ":", &save);
        char *nrs = strtok_r(NULL, ":", &save);
        if (!abi || !nrs) {
            fprintf(stderr, "bad spec %s\n", argv[i]);
            return 2;
        }
        long nr = strtol(nrs, NULL, 0);
        long a[6] = {0};
        for (int j = 0; j < 6; j++) {
            char *v = strtok_r(NULL, ":", &save);
            if (!v)
                break;
            a[j] = (long)strtoull(v, NULL, 0);
        }
        long ret;
        if (strcmp(abi, "32") == 0)
            ret = call32(nr, a);
        else if (strcmp(abi, "x32") == 0)
            ret = call64(nr | 0x40000000L, a);
        else
            ret = call64(nr, a);
        if (ret < 0 && ret > -4096) {
            printf("%s errno %ld\n", argv[i], -ret);
        } else {
            printf("%s ok\n", argv[i]);
            /* socket() and friends return descriptors; do not keep them. */
            if (ret > 2 && ret < 1024)
                close((int)ret);
        }
    }
    return 0;
}
