/*
 * The cgroup attach's wait, begun before the Go runtime starts (`berth run`,
 * `berth-runtime create` and `run`, as root), where the init may still be moved by pid.
 *
 * On cgroup v1 moving a process into a cgroup by pid (cgroup.procs) takes
 * cgroup_threadgroup_rwsem for writing, and a writer that finds the semaphore idle first
 * waits for an RCU grace period (rcu_sync_enter): 5-12 ms measured on the CI host. Most
 * inits avoid it: single-threaded in their C stage, they move themselves ("0" into
 * "tasks", a single thread's move, which skips the semaphore), and on a hybrid layout they
 * are born in the cgroup2 part (runtime.lateCgroupJoin). The Go init (a terminal) and an
 * init in a user namespace are still moved by pid. The wait is the same whoever causes it,
 * and it is skipped by a writer that comes within about a grace period of another. So for
 * those the start begins it: a thread moves this process into the cgroup it is already in,
 * which changes nothing, while the Go runtime starts and the command parses its arguments,
 * prepares the image, the snapshot and the monitor; the init's move, milliseconds later,
 * then finds the grace period passed or under way. For the others nothing is done: the
 * warm-up would hold cgroup_mutex through a grace period, in the way of the container's
 * mkdirs and join (see wanted). On cgroup v2 the init is born in its cgroup.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int berth_gostart_cgroup_warm; /* 1 once the thread is started (gostart.CgroupWarmStarted) */

int __real_pthread_create(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static char procs_path[4096];

static void *warm(void *arg)
{
	(void)arg;
	int fd = open(procs_path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		char pid[16];
		int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
		/* An error means no head start, nothing else. */
		if (write(fd, pid, n) < 0) {
		}
		close(fd);
	}
	return NULL;
}

/* read_small reads a small /proc file into buf, NUL-terminated; it returns its length, or
 * 0 when it cannot be read. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return n;
}

/* wanted tells whether this command starts a container whose init may be moved into its
 * cgroup by pid: argv[0]'s base name and the arguments from /proc/self/cmdline (musl calls
 * constructors without argc and argv). */
static int wanted(void)
{
	char buf[4096];
	ssize_t n = read_small("/proc/self/cmdline", buf, sizeof buf);
	if (n == 0)
		return 0;
	const char *prog = buf, *end = buf + n;
	const char *cmd = prog + strlen(prog) + 1;
	if (cmd >= end)
		return 0;
	const char *base = strrchr(prog, '/');
	base = base ? base + 1 : prog;
	int ok = 0;
	if (strcmp(base, "berth") == 0)
		ok = strcmp(cmd, "run") == 0;
	else if (strcmp(base, "berth-runtime") == 0)
		ok = strcmp(cmd, "create") == 0 || strcmp(cmd, "run") == 0;
	/* Another runtime makes the container (berth run --runtime runc): not ours to warm. */
	for (const char *a = cmd; ok && a < end; a += strlen(a) + 1)
		if (strcmp(a, "--runtime") == 0 || strncmp(a, "--runtime=", 10) == 0 || strcmp(a, "--help") == 0)
			ok = 0;
	if (ok && strcmp(base, "berth") == 0 && strcmp(cmd, "run") == 0) {
		/* `berth run`'s init joins its cgroup itself unless it has a terminal
		 * (the Go init, which the runtime moves by pid) or a user namespace; warm only
		 * for those, as far as the arguments tell: -t in a cluster of short flags, --tty,
		 * --userns, anywhere (a program's own -t counts too: a warm-up too many is the
		 * old behaviour, not an error). berth-runtime does not have the container's config
		 * on its command line, and keeps the warm-up; `berth start` decides in Go, from the
		 * container's record (engine.WarmCgroupAttach). */
		ok = 0;
		for (const char *a = cmd; a < end; a += strlen(a) + 1) {
			if (strcmp(a, "--tty") == 0 || strncmp(a, "--tty=", 6) == 0 || strcmp(a, "--userns") == 0 ||
			    strncmp(a, "--userns=", 9) == 0)
				ok = 1;
			if (a[0] == '-' && a[1] != '-' && a[1] != 0) {
				const char *c = a + 1;
				while ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))
					c++;
				if (*c == 0 && strchr(a + 1, 't') != NULL)
					ok = 1;
			}
		}
	}
	return ok;
}

/* find_procs sets procs_path to this process's cgroup.procs in a v1 hierarchy with a
 * controller (pids if mounted), as /proc/self/cgroup and the usual mount points say. */
static int find_procs(void)
{
	char buf[4096];
	if (read_small("/proc/self/cgroup", buf, sizeof buf) == 0)
		return 0;
	char *best_ctrl = NULL, *best_path = NULL;
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || c2 == c1 + 1 || strncmp(c1 + 1, "name=", 5) == 0)
			continue;
		*c2 = 0;
		if (!best_ctrl || strcmp(c1 + 1, "pids") == 0) {
			best_ctrl = c1 + 1;
			best_path = c2 + 1;
		}
		if (strcmp(c1 + 1, "pids") == 0)
			break;
	}
	if (!best_ctrl)
		return 0;
	int w = snprintf(procs_path, sizeof procs_path, "/sys/fs/cgroup/%s%s%scgroup.procs", best_ctrl, best_path,
			 best_path[strlen(best_path) - 1] == '/' ? "" : "/");
	return w > 0 && (size_t)w < sizeof procs_path && access(procs_path, W_OK) == 0;
}

void berth_gostart_cgroup_warmup(void)
{
	if (geteuid() != 0 || !wanted() || !find_procs())
		return;
	pthread_attr_t attr;
	pthread_t t;
	if (pthread_attr_init(&attr) != 0)
		return;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	/* Not through the wrapper in threads.c, whose first thread is the Go runtime's sysmon. */
	if (__real_pthread_create(&t, &attr, warm, NULL) == 0)
		berth_gostart_cgroup_warm = 1;
	pthread_attr_destroy(&attr);
}
