/*
 * berth-bench-spawn: run one command and report what it cost, measured from a parent as
 * small as can be. A child's ru_maxrss starts at the resident size of the process that
 * forked it (the copied or shared address space it had before exec), so the Go harness,
 * at several MiB, must not be that parent: this static helper, a few hundred KiB, is.
 *
 * usage: berth-bench-spawn PROGRAM ARG0 ARGS...
 * Writes "wall_ns utime_us stime_us maxrss_kib waitstatus\n" to descriptor 3 and exits 0;
 * exits 127 with a message on stderr if it could not run the command at all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* trace appends "SECONDS.MICROSECONDS PID WHAT" to $BERTH_TRACE, as berth's own trace
 * points do (internal/runtime/trace.go), so the command's fork and exit frame its steps. */
static void trace(const struct timespec *t, pid_t pid, const char *what)
{
	const char *path = getenv("BERTH_TRACE");
	if (path == NULL || *path == 0)
		return;
	FILE *f = fopen(path, "a");
	if (f == NULL)
		return;
	fprintf(f, "%ld.%06ld %d %s\n", (long)(t->tv_sec % 100), t->tv_nsec / 1000, (int)pid, what);
	fclose(f);
}

int main(int argc, char **argv)
{
	struct timespec r0, r1;
	struct timespec t0, t1;
	struct rusage ru;
	int status, err;
	pid_t pid;
	char out[160];

	if (argc < 3) {
		fprintf(stderr, "usage: %s PROGRAM ARG0 ARGS...\n", argv[0]);
		return 127;
	}
	if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0) {
		fprintf(stderr, "berth-bench-spawn: descriptor 3 (the report) is not open: %s\n", strerror(errno));
		return 127;
	}
	clock_gettime(CLOCK_REALTIME, &r0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = vfork();
	if (pid < 0) {
		fprintf(stderr, "berth-bench-spawn: vfork: %s\n", strerror(errno));
		return 127;
	}
	if (pid == 0) {
		execv(argv[1], argv + 2);
		_exit(127);
	}
	while ((err = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR)
		;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	clock_gettime(CLOCK_REALTIME, &r1);
	trace(&r0, pid, "spawn fork");
	trace(&r1, pid, "spawn exit");
	if (err < 0) {
		fprintf(stderr, "berth-bench-spawn: wait4 %d: %s\n", pid, strerror(errno));
		return 127;
	}
	int n = snprintf(out, sizeof out, "%lld %lld %lld %ld %d\n",
			 (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec),
			 (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
			 (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec,
			 ru.ru_maxrss, status);
	if (write(3, out, n) != n) {
		fprintf(stderr, "berth-bench-spawn: write report: %s\n", strerror(errno));
		return 127;
	}
	return 0;
}
