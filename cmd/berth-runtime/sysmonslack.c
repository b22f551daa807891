/*
 * Timer slack for the Go runtime's sysmon thread only.
 *
 * sysmon polls every 20 µs while any P is busy (doubling only after 1 ms without work for
 * it), and every wake-up is a nanosleep, a context switch and, on a virtual machine, a
 * timer reprogramming that exits to the hypervisor. A runtime command is a few
 * milliseconds of work, so sysmon woke ~52 times per `run` (perf record -e
 * context-switches: 35% of all its context switches) for nothing: this short-lived,
 * nearly single-goroutine process has no P to retake and no goroutine to preempt.
 * A timer slack lets the kernel defer those wake-ups; measured with interleaved pairs
 * (wait4 rusage, n=50): `run` CPU -14% with a 2 ms slack for every thread, -20% with 10 ms.
 *
 * Only sysmon gets it. The constructor raises the slack of the still single-threaded
 * process; the Go runtime's first thread is sysmon (runtime.main starts it before anything
 * else, and with cgo every thread comes from pthread_create), so the wrapper below lets
 * that one inherit the raised slack, then puts the main thread back, and starts every later
 * thread with the caller's slack. The container's processes, hooks and every Go timer thus
 * keep the slack berth-runtime was started with (tests/integration checks both).
 *
 * The container's init (_BERTH_INITPIPE set) is left alone: its setup is done in C before
 * the Go runtime starts, if it ever does.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/prctl.h>

#define SYSMON_SLACK_NS 10000000UL /* 10 ms, sysmon's own longest period */

static unsigned long caller_slack; /* 0: nothing raised, every thread left as it is */
static int sysmon_pending;

__attribute__((constructor)) static void berth_sysmon_slack(void)
{
	if (getenv("_BERTH_INITPIPE") != NULL)
		return;
	int cur = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	/* 0 is a real-time task's (whose slack cannot change); at or above ours, nothing to do. */
	if (cur <= 0 || (unsigned long)cur >= SYSMON_SLACK_NS)
		return;
	if (prctl(PR_SET_TIMERSLACK, SYSMON_SLACK_NS, 0, 0, 0) != 0)
		return;
	caller_slack = (unsigned long)cur;
	sysmon_pending = 1;
}

struct berth_thread_start {
	void *(*fn)(void *);
	void *arg;
};

static void *berth_thread_entry(void *p)
{
	struct berth_thread_start s = *(struct berth_thread_start *)p;
	free(p);
	prctl(PR_SET_TIMERSLACK, caller_slack, 0, 0, 0);
	return s.fn(s.arg);
}

int __real_pthread_create(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

/* Linked in place of pthread_create (-Wl,--wrap=pthread_create in sysmonslack.go). */
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	if (caller_slack == 0)
		return __real_pthread_create(t, attr, fn, arg);
	if (sysmon_pending) {
		/* Only the Go runtime creates threads here, and the main thread creates its first. */
		sysmon_pending = 0;
		int r = __real_pthread_create(t, attr, fn, arg);
		prctl(PR_SET_TIMERSLACK, caller_slack, 0, 0, 0);
		return r;
	}
	/* A thread inherits its creator's slack, and sysmon itself may start one (handoffp). */
	struct berth_thread_start *s = malloc(sizeof *s);
	if (s == NULL)
		return __real_pthread_create(t, attr, fn, arg);
	s->fn = fn;
	s->arg = arg;
	int r = __real_pthread_create(t, attr, berth_thread_entry, s);
	if (r != 0)
		free(s);
	return r;
}
