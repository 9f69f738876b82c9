/* Prints the effective uid and gid it runs with: "euid N egid N" (a setuid/setgid probe). */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("euid %u egid %u\n", (unsigned)geteuid(), (unsigned)getegid());
    return 0;
}
