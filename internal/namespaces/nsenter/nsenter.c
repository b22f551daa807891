/*
 * The namespace stage of a berth process that must enter or create namespaces.
 *
 * Go cannot setns(2) into a mount or user namespace once its runtime has started threads,
 * and a new user namespace must be created before the namespaces it should own. So this
 * constructor runs before the Go runtime, in a process that is still single-threaded. It acts
 * only when _BERTH_INITPIPE names a socket inherited from the parent; otherwise it returns
 * and the binary runs as a normal command.
 *
 * Protocol (native byte order, both ends run on this machine):
 *   parent -> child: uint32 length, then records { uint32 type; uint32 len; bytes[len] }.
 *   child -> parent: one byte tag, then a payload:
 *     'U'                 asks the parent to write uid_map/gid_map, answered by one byte 'u';
 *     'P' int32           the pid (in the parent's pid namespace) that goes on to run Go;
 *     'E' uint32 + text   a failure, after which the child exits.
 *   A REC_PLAN record makes the process that reports 'P' read and run a plan (plan.c)
 *   instead of returning into Go.
 *
 * Order: open every namespace path first (a path may stop resolving once we move), join the
 * user namespace, then the others, the mount namespace last; then create a user namespace
 * (mapped by the parent) before the other new namespaces, so they are owned by it; then write
 * time namespace offsets; then, since a new pid or time namespace only applies to children,
 * fork once and let the child continue. The intermediate process reports the child's pid and
 * exits; whoever waits for the container is its subreaper.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plan.h"
#include "sockio.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

enum {
	REC_CLONE_FLAGS = 1,   /* uint32: namespaces to create */
	REC_NS_PATH = 2,       /* uint32 clone flag of the type, then the path */
	REC_TIMENS_OFFSETS = 3, /* text for /proc/self/timens_offsets */
	REC_PLAN = 4            /* empty: after the namespaces, run a plan (plan.c), not Go */
};

#define MAX_JOIN 16

struct joinns {
	uint32_t type;
	int fd;
	char path[4096];
};

static int sockfd = -1;

static void fail(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	int n;
	uint32_t len;
	char tag = 'E';

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	len = (uint32_t)n;
	if (sockfd >= 0) {
		/* Best effort: the parent reports what it gets, or the bare exit status. */
		if (write(sockfd, &tag, 1) == 1 && write(sockfd, &len, sizeof(len)) == sizeof(len))
			(void)!write(sockfd, msg, len);
	} else {
		fprintf(stderr, "berth init: %s\n", msg);
	}
	_exit(1);
}

static const char *nsname(uint32_t type)
{
	switch (type) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWNS: return "mnt";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNET: return "net";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	}
	return "unknown";
}

static void join(struct joinns *j)
{
	if (setns(j->fd, (int)j->type) < 0)
		fail("setns %s namespace %s: %s", nsname(j->type), j->path, strerror(errno));
	close(j->fd);
	j->fd = -1;
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open %s: %s", path, strerror(errno));
	if (write(fd, data, len) != (ssize_t)len)
		fail("write %s: %s", path, strerror(errno));
	close(fd);
}

__attribute__((constructor)) static void berth_nsenter(void)
{
	const char *env = getenv("_BERTH_INITPIPE");
	uint32_t total, flags = 0, off = 0;
	char *msg, *offsets = NULL;
	struct joinns joins[MAX_JOIN];
	int njoin = 0, forked = 0, plan = 0, i;
	size_t offsets_len = 0;
	char tag;
	int32_t pid;

	if (getenv("_BERTH_HOLD") != NULL) {
		/*
		 * A user-namespace holder: the runtime started us in a new user namespace with the
		 * mappings of an idmapped mount, opens /proc/<pid>/ns/user and kills us.
		 */
		for (;;)
			pause();
	}
	if (env == NULL || *env == '\0')
		return;
	/*
	 * From the first instruction on, no other process without CAP_SYS_PTRACE in the host's
	 * user namespace may open our /proc files (exe, mem, fd): the container's processes
	 * included, when this is an exec into a running container.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail("prctl PR_SET_DUMPABLE: %s", strerror(errno));
	sockfd = atoi(env);
	if (sockfd <= 2)
		fail("_BERTH_INITPIPE=%s is not a usable descriptor", env);
	/* The Go side reads the socket again; keep it open but out of the user's program. */
	if (fcntl(sockfd, F_SETFD, FD_CLOEXEC) < 0)
		fail("fcntl _BERTH_INITPIPE: %s", strerror(errno));

	sock_readall(sockfd, &total, sizeof(total));
	if (total > (1 << 20))
		fail("bootstrap message of %u bytes is too large", total);
	msg = malloc(total + 1);
	if (msg == NULL)
		fail("malloc %u: %s", total, strerror(errno));
	sock_readall(sockfd, msg, total);

	while (off + 8 <= total) {
		uint32_t type, len;
		memcpy(&type, msg + off, 4);
		memcpy(&len, msg + off + 4, 4);
		off += 8;
		if (len > total - off)
			fail("bootstrap record %u overruns the message", type);
		switch (type) {
		case REC_CLONE_FLAGS:
			if (len != 4)
				fail("bootstrap clone flags record has length %u", len);
			memcpy(&flags, msg + off, 4);
			break;
		case REC_NS_PATH: {
			struct joinns *j;
			if (njoin >= MAX_JOIN)
				fail("too many namespaces to join");
			if (len < 5 || len - 4 >= sizeof(j->path))
				fail("bootstrap namespace path record has length %u", len);
			j = &joins[njoin++];
			memcpy(&j->type, msg + off, 4);
			memcpy(j->path, msg + off + 4, len - 4);
			j->path[len - 4] = '\0';
			break;
		}
		case REC_TIMENS_OFFSETS:
			offsets = msg + off;
			offsets_len = len;
			break;
		case REC_PLAN:
			plan = 1;
			break;
		default:
			fail("unknown bootstrap record type %u", type);
		}
		off += len;
	}

	/* Open every path before moving anywhere. */
	for (i = 0; i < njoin; i++) {
		joins[i].fd = open(joins[i].path, O_RDONLY | O_CLOEXEC);
		if (joins[i].fd < 0)
			fail("open %s namespace %s: %s", nsname(joins[i].type), joins[i].path, strerror(errno));
	}
	for (i = 0; i < njoin; i++)
		if (joins[i].type == CLONE_NEWUSER)
			join(&joins[i]);
	for (i = 0; i < njoin; i++)
		if (joins[i].fd >= 0 && joins[i].type != CLONE_NEWNS)
			join(&joins[i]);
	for (i = 0; i < njoin; i++)
		if (joins[i].fd >= 0)
			join(&joins[i]);

	if (flags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0)
			fail("unshare user namespace: %s", strerror(errno));
		/*
		 * The parent writes our maps through /proc/<pid>; a non-dumpable process's /proc
		 * files belong to root of the initial namespace, which the parent is.
		 */
		/*
		 * An unprivileged parent may write our maps only while we are dumpable; nothing else
		 * runs in this new namespace yet, so being dumpable for this moment exposes nothing.
		 */
		if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
			fail("prctl PR_SET_DUMPABLE: %s", strerror(errno));
		tag = 'U';
		sock_writeall(sockfd, &tag, 1);
		sock_readall(sockfd, &tag, 1);
		if (tag != 'u')
			fail("parent refused the id mappings");
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			fail("prctl PR_SET_DUMPABLE: %s", strerror(errno));
		/* Become root of the new namespace when root is mapped (EINVAL otherwise). */
		if (setresgid(0, 0, 0) < 0 && errno != EINVAL)
			fail("setresgid 0 in the new user namespace: %s", strerror(errno));
		if (setresuid(0, 0, 0) < 0 && errno != EINVAL)
			fail("setresuid 0 in the new user namespace: %s", strerror(errno));
	}
	if (flags & ~(uint32_t)CLONE_NEWUSER) {
		if (unshare((int)(flags & ~(uint32_t)CLONE_NEWUSER)) < 0)
			fail("unshare namespaces 0x%x: %s", flags & ~(uint32_t)CLONE_NEWUSER, strerror(errno));
	}
	if (offsets_len > 0) {
		/* A non-dumpable process's /proc files belong to the host's root, whom a new user
		 * namespace's root is not: be dumpable just for this write. */
		if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
			fail("prctl PR_SET_DUMPABLE: %s", strerror(errno));
		write_file("/proc/self/timens_offsets", offsets, offsets_len);
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			fail("prctl PR_SET_DUMPABLE: %s", strerror(errno));
	}
	free(msg);

	for (i = 0; i < njoin; i++)
		if (joins[i].type == CLONE_NEWPID || joins[i].type == CLONE_NEWTIME)
			forked = 1;
	if (flags & (CLONE_NEWPID | CLONE_NEWTIME))
		forked = 1;

	if (forked) {
		pid_t child = fork();
		if (child < 0)
			fail("fork into the new pid namespace: %s", strerror(errno));
		if (child > 0) {
			/*
			 * fork returns the child's pid in our own pid namespace, which is the
			 * parent's: exactly the number the parent records.
			 */
			tag = 'P';
			pid = (int32_t)child;
			sock_writeall(sockfd, &tag, 1);
			sock_writeall(sockfd, &pid, sizeof(pid));
			_exit(0);
		}
	} else {
		tag = 'P';
		pid = (int32_t)getpid();
		sock_writeall(sockfd, &tag, 1);
		sock_writeall(sockfd, &pid, sizeof(pid));
	}
	if (plan)
		berth_run_plan(sockfd); /* never returns: no Go runtime starts in the container */
	/* Continue into the Go runtime, which reads its configuration from the same socket. */
}
