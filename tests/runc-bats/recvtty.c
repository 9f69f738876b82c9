/* A stand-in for runc's contrib/cmd/recvtty (Go, not buildable offline): receives a
 * console's master over a unix socket (SCM_RIGHTS) and discards what it reads (--mode null,
 * every connection) or copies it to stdout and stdin to it (--mode single, one connection). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int recv_fd(int c) {
	char buf[4096], ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {buf, sizeof buf};
	struct msghdr m = {0};
	m.msg_iov = &iov; m.msg_iovlen = 1; m.msg_control = ctl; m.msg_controllen = sizeof ctl;
	if (recvmsg(c, &m, 0) < 0) return -1;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
			int fd; memcpy(&fd, CMSG_DATA(h), sizeof fd); return fd;
		}
	return -1;
}

static void pump(int from, int to) {
	char b[4096]; ssize_t n;
	while ((n = read(from, b, sizeof b)) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && to >= 0 && write(to, b, n) < 0) break;
}

int main(int argc, char **argv) {
	const char *pidfile = NULL, *mode = "single", *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pid-file") && i + 1 < argc) pidfile = argv[++i];
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
		else path = argv[i];
	}
	if (!path) { fprintf(stderr, "usage: recvtty [--pid-file F] [--mode null|single] SOCKET\n"); return 2; }
	signal(SIGCHLD, SIG_IGN);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	strncpy(a.sun_path, path, sizeof a.sun_path - 1);
	if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) { perror("recvtty"); return 1; }
	if (pidfile) { FILE *f = fopen(pidfile, "w"); if (f) { fprintf(f, "%d", getpid()); fclose(f); } }
	if (!strcmp(mode, "null")) {
		/* In the background for good: hold none of the caller's pipes (a bats run whose
		 * teardown misses this process would otherwise wait for it forever). */
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); if (null > 2) close(null); }
		/* Nor any other inherited descriptor (bats hands its children its output pipe and
		 * log files on 3 and up): only the listening socket stays. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != s) close(fd);
	}
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0) { if (errno == EINTR) continue; return 1; }
		int master = recv_fd(c);
		close(c);
		if (master < 0) continue;
		if (!strcmp(mode, "null")) {
			if (fork() == 0) { pump(master, -1); _exit(0); }
			close(master);
			continue;
		}
		if (fork() == 0) { pump(0, master); _exit(0); }
		pump(master, 1);
		return 0;
	}
}
