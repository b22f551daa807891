/*
 * How the Go runtime's threads start in berth's commands: a timer slack for sysmon and,
 * in a command that imports package onep, one P. Both are set here, before the Go runtime
 * starts, because the runtime reads them then, and both are undone for every thread but the
 * one that needs them, so the container, hooks and every Go timer keep what the command was
 * started with (threads_test.go and onep's test check that). Nothing is changed in a
 * container's init (_BERTH_INITPIPE set): its setup runs in C before the Go runtime starts,
 * if it ever does.
 *
 * sysmon's timer slack. sysmon polls every 20 µs while any P is busy (doubling only after
 * 1 ms without work for it), and every wake-up is a nanosleep, a context switch and, on a
 * virtual machine, a timer reprogramming that exits to the hypervisor. A command of berth's
 * is a few milliseconds of work, so sysmon woke ~52 times per berth-runtime `run` (perf
 * record -e context-switches: 35% of its context switches) for nothing: such a short-lived
 * process has no P to retake and no goroutine to preempt. A 10 ms slack lets the kernel
 * defer those wake-ups: berth-runtime `run` CPU -15%, `create` -21% (interleaved pairs,
 * wait4 rusage, n=60); `berth run --rm busybox true` CPU of all its processes -0.9 ms (-5%,
 * wall unchanged, n=40). The constructor raises the slack of the still single-threaded
 * process; the runtime's first thread is sysmon (runtime.main starts it before anything
 * else, and with cgo every thread comes from pthread_create), so the wrapper below lets that
 * one keep it and puts the main thread and every later thread back to the caller's slack.
 *
 * One P (berth-runtime only, through package onep). The runtime sizes GOMAXPROCS from the
 * CPUs the process may run on when it starts. With two Ps, every time the one busy
 * goroutine blocks or wakes another, the runtime wakes an idle thread to spin for work, and
 * starts more threads; with one, it does not. Done here it measured berth-runtime `run` CPU
 * -7%, `create` -12% and peak RSS 4.62 MiB instead of 4.87 (interleaved pairs, n=60 and 40;
 * GOMAXPROCS=1 in the environment did as well); runtime.GOMAXPROCS(1) from Go comes too
 * late (the threads exist): -3% and 5.0 MiB. The berth CLI does not take it: it tears a
 * container down in goroutines side by side, and `run --rm` with GOMAXPROCS=1 took 3 ms
 * more wall for the same CPU (n=30). A command cannot set its own environment before it
 * starts, so the constructor narrows the CPUs the main thread may run on to the one it is
 * on while the runtime counts them, and the wrapper gives every thread back the caller's
 * CPUs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#define SYSMON_SLACK_NS 10000000UL /* 10 ms, sysmon's own longest period */

static unsigned long caller_slack; /* 0: slack not raised */
static cpu_set_t caller_cpus;
static int cpus_narrowed;
static int first_thread = 1;

/* Defined (as 1) by package onep; a weak reference, so that without it the address is 0. */
extern const int berth_gostart_one_p __attribute__((weak));

void berth_gostart_cgroup_warmup(void); /* cgwarm.c */

struct timespec berth_gostart_t0; /* when the constructor ran (gostart.ConstructorTime) */

__attribute__((constructor)) static void berth_thread_setup(void)
{
	clock_gettime(CLOCK_REALTIME, &berth_gostart_t0);
	if (getenv("_BERTH_INITPIPE") != NULL)
		return;
	berth_gostart_cgroup_warmup();
	int cur = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	/* 0 is a real-time task's (whose slack cannot change); at or above ours, nothing to do. */
	if (cur > 0 && (unsigned long)cur < SYSMON_SLACK_NS &&
	    prctl(PR_SET_TIMERSLACK, SYSMON_SLACK_NS, 0, 0, 0) == 0)
		caller_slack = (unsigned long)cur;
	if (&berth_gostart_one_p == NULL || !berth_gostart_one_p)
		return;
	if (sched_getaffinity(0, sizeof caller_cpus, &caller_cpus) == 0 && CPU_COUNT(&caller_cpus) > 1) {
		int cpu = sched_getcpu();
		cpu_set_t one;
		CPU_ZERO(&one);
		if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &caller_cpus)) {
			CPU_SET(cpu, &one);
			cpus_narrowed = sched_setaffinity(0, sizeof one, &one) == 0;
		}
	}
}

/* restore gives the calling thread the caller's CPUs and, unless keep_slack, its slack. */
static void restore(int keep_slack)
{
	if (caller_slack != 0 && !keep_slack)
		prctl(PR_SET_TIMERSLACK, caller_slack, 0, 0, 0);
	if (cpus_narrowed)
		sched_setaffinity(0, sizeof caller_cpus, &caller_cpus);
}

struct thread_start {
	void *(*fn)(void *);
	void *arg;
	int sysmon;
};

static void *thread_entry(void *p)
{
	struct thread_start s = *(struct thread_start *)p;
	free(p);
	/* A thread inherits its creator's slack and CPUs, and sysmon itself may start one. */
	restore(s.sysmon);
	return s.fn(s.arg);
}

int __real_pthread_create(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

/* Linked in place of pthread_create (-Wl,--wrap=pthread_create in threads.go). Only the Go
 * runtime creates threads in berth's commands, and the main thread creates its first. */
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	if (caller_slack == 0 && !cpus_narrowed)
		return __real_pthread_create(t, attr, fn, arg);
	int sysmon = first_thread;
	first_thread = 0;
	struct thread_start *s = malloc(sizeof *s);
	if (s == NULL)
		return EAGAIN; /* the runtime reports it */
	s->fn = fn;
	s->arg = arg;
	s->sysmon = sysmon;
	int r = __real_pthread_create(t, attr, thread_entry, s);
	if (r != 0)
		free(s);
	if (sysmon)
		restore(0); /* the main thread, once the runtime has counted the CPUs */
	return r;
}
