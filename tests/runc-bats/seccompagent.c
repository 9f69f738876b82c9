/* A stand-in for runc's contrib/cmd/seccompagent (Go, not buildable offline), for the
 * seccomp-notify tests of runc's bats suite. It listens on -socketfile, writes its pid to
 * -pid-file, and for every connection receives the container's state (JSON, runc's
 * ContainerProcessState) with the seccomp listener attached (SCM_RIGHTS, named "seccompFd" in
 * "fds"), then answers that listener's notifications on a thread of its own, as runc's agent
 * does: mkdir(PATH) makes PATH-METADATA instead (beneath the process's root or cwd, never
 * outside it), failing with ENOSYS; chmod, fchmod and fchmodat fail with ENOMEDIUM; any other
 * syscall continues. Killing the agent closes every listener (one process holds them all):
 * the container's notified syscalls then fail with ENOSYS. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 16

struct listener {
	int fd;
	char metadata[256];
};

/* The string value of "key" in a flat JSON object (no escapes beyond \" and \\). */
static int json_string(const char *json, const char *key, char *out, size_t len) {
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(json, pat);
	if (!p) return -1;
	p += strlen(pat);
	while (*p == ' ') p++;
	if (*p++ != '"') return -1;
	size_t n = 0;
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' && p[1]) p++;
		if (n + 1 < len) out[n++] = *p;
	}
	out[n] = 0;
	return 0;
}

/* The index of "seccompFd" in the "fds" array, or -1 when absent or named twice. */
static int seccomp_fd_index(const char *json) {
	const char *p = strstr(json, "\"fds\":");
	if (!p || !(p = strchr(p, '['))) return -1;
	const char *end = strchr(p, ']');
	if (!end) return -1;
	int i = 0, found = -1;
	for (p++; p < end; p++) {
		if (*p != '"') continue;
		const char *q = strchr(p + 1, '"');
		if (!q || q > end) return -1;
		if (q - p - 1 == 9 && !strncmp(p + 1, "seccompFd", 9)) {
			if (found >= 0) return -1;
			found = i;
		}
		i++;
		p = q;
	}
	return found;
}

/* mkdir PATH-METADATA for the process, resolved with its root (or cwd) as the root. */
static int mkdir_for(pid_t pid, const char *name, const char *metadata, mode_t mode) {
	char path[8192], base[PATH_MAX], *dir, *file, *d = NULL, *f = NULL;
	snprintf(path, sizeof path, "/proc/%d/%s", pid, name[0] == '/' ? "root" : "cwd");
	int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) return -1;
	snprintf(base, sizeof base, "%s-%s", name, metadata);
	d = strdup(base);
	f = strdup(base);
	int rc = -1;
	if (d && f) {
		dir = dirname(d);
		file = basename(f);
		struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
		int parent = syscall(SYS_openat2, root, dir, &how, sizeof how);
		if (parent >= 0) {
			rc = mkdirat(parent, file, mode);
			close(parent);
		}
	}
	free(d);
	free(f);
	close(root);
	return rc;
}

static void *serve(void *arg) {
	struct listener *l = arg;
	struct seccomp_notif_sizes sizes;
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) goto out;
	struct seccomp_notif *req = calloc(1, sizes.seccomp_notif < sizeof *req ? sizeof *req : sizes.seccomp_notif);
	struct seccomp_notif_resp *resp =
		calloc(1, sizes.seccomp_notif_resp < sizeof *resp ? sizeof *resp : sizes.seccomp_notif_resp);
	if (!req || !resp) goto out;
	for (;;) {
		memset(req, 0, sizes.seccomp_notif);
		if (ioctl(l->fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
			if (errno == EINTR || errno == ENOENT) continue;
			break; /* the container is gone */
		}
		memset(resp, 0, sizes.seccomp_notif_resp);
		resp->id = req->id;
		resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		int nr = req->data.nr, x64 = req->data.arch == AUDIT_ARCH_X86_64;
		int mkdir_nr = x64 ? 83 : 39, chmod_nr = x64 ? 90 : 15, fchmod_nr = x64 ? 91 : 94,
		    fchmodat_nr = x64 ? 268 : 306;
		if (nr == mkdir_nr) {
			char mem[64], name[4096] = {0};
			snprintf(mem, sizeof mem, "/proc/%d/mem", req->pid);
			int m = open(mem, O_RDONLY | O_CLOEXEC);
			ssize_t n = m < 0 ? -1 : pread(m, name, sizeof name - 1, (off_t)req->data.args[0]);
			if (m >= 0) close(m);
			resp->flags = 0;
			if (ioctl(l->fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) continue;
			if (n <= 0 || mkdir_for(req->pid, name, l->metadata, (mode_t)req->data.args[1]) < 0) {
				resp->error = -ENOSYS;
				resp->val = -1;
			}
		} else if (nr == chmod_nr || nr == fchmod_nr || nr == fchmodat_nr) {
			resp->flags = 0;
			resp->error = -ENOMEDIUM;
			resp->val = -1;
		}
		if (ioctl(l->fd, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 && errno != ENOENT)
			fprintf(stderr, "seccompagent: respond: %s\n", strerror(errno));
	}
	free(req);
	free(resp);
out:
	close(l->fd);
	free(l);
	return NULL;
}

static void handle(int c) {
	char buf[4096], ctl[CMSG_SPACE(MAX_FDS * sizeof(int))];
	struct iovec iov = {buf, sizeof buf - 1};
	struct msghdr m = {0};
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl;
	m.msg_controllen = sizeof ctl;
	ssize_t n = recvmsg(c, &m, MSG_CMSG_CLOEXEC);
	if (n <= 0) return;
	buf[n] = 0;
	int fds[MAX_FDS], nfds = 0;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
			int k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (int i = 0; i < k && nfds < MAX_FDS; i++) memcpy(&fds[nfds++], CMSG_DATA(h) + i * sizeof(int), sizeof(int));
		}
	int idx = seccomp_fd_index(buf);
	struct listener *l = calloc(1, sizeof *l);
	if (idx < 0 || idx >= nfds || !l) {
		fprintf(stderr, "seccompagent: no seccompFd among %d descriptors in %s\n", nfds, buf);
		for (int i = 0; i < nfds; i++) close(fds[i]);
		free(l);
		return;
	}
	for (int i = 0; i < nfds; i++)
		if (i != idx) close(fds[i]);
	l->fd = fds[idx];
	char md[256] = "";
	json_string(buf, "metadata", md, sizeof md);
	/* As runc's agent: only a file name's last element, never a path. */
	const char *slash = strrchr(md, '/');
	snprintf(l->metadata, sizeof l->metadata, "%s", slash ? slash + 1 : md);
	if (!l->metadata[0]) snprintf(l->metadata, sizeof l->metadata, "agent-generated-suffix");
	pthread_t t;
	if (pthread_create(&t, NULL, serve, l) != 0) {
		close(l->fd);
		free(l);
		return;
	}
	pthread_detach(t);
}

int main(int argc, char **argv) {
	const char *sock = "/run/seccomp-agent.socket", *pidfile = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		while (*a == '-') a++;
		const char *v = strchr(a, '=');
		size_t k = v ? (size_t)(v - a) : strlen(a);
		if (!v) v = i + 1 < argc ? argv[++i] : NULL; else v++;
		if (!v) { fprintf(stderr, "seccompagent: %s needs a value\n", argv[i]); return 2; }
		if (k == 10 && !strncmp(a, "socketfile", k)) sock = v;
		else if (k == 8 && !strncmp(a, "pid-file", k)) pidfile = v;
		else { fprintf(stderr, "usage: seccompagent [-socketfile PATH] [-pid-file PATH]\n"); return 2; }
	}
	signal(SIGPIPE, SIG_IGN);
	/* Hold none of the caller's descriptors (bats' output pipe) but stdio. */
	for (int fd = 3; fd < 1024; fd++) close(fd);
	if (unlink(sock) < 0 && errno != ENOENT) { perror(sock); return 1; }
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (!f) { perror(pidfile); return 1; }
		fprintf(f, "%d", getpid());
		fclose(f);
	}
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(sock) >= sizeof a.sun_path) { fprintf(stderr, "%s: too long\n", sock); return 1; }
	strcpy(a.sun_path, sock);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) { perror(sock); return 1; }
	for (;;) {
		int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) continue;
		handle(c);
		close(c);
	}
}
