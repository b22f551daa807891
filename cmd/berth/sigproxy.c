// The signal proxy's handlers (sigproxy.go says why they are C): each caught signal is
// one byte, its number, written to a non-blocking pipe that a goroutine reads.

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int sigproxy_fd = -1;

static void sigproxy_handler(int sig) {
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	// A full pipe (64 KiB of signals not yet read) drops the signal.
	ssize_t n = write(sigproxy_fd, &b, 1);
	(void)n;
	errno = saved;
}

// proxied tells whether sig is forwarded. Not: the signals that cannot be caught; the
// faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), which the Go runtime turns
// into panics and tracebacks; SIGPROF, its profiler's; SIGURG, its preemption signal;
// SIGCHLD, SIGPIPE and SIGWINCH, which concern this process alone; and the real-time
// signals below SIGRTMIN, which the C library keeps for its threads.
static int proxied(int sig) {
	switch (sig) {
	case SIGKILL: case SIGSTOP:
	case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP: case SIGSYS:
	case SIGPROF: case SIGURG:
	case SIGCHLD: case SIGPIPE: case SIGWINCH:
		return 0;
	}
	return sig < 32 || (sig >= SIGRTMIN && sig <= SIGRTMAX);
}

// berth_sigproxy_catch makes every proxied signal write its number to fd (non-blocking).
// It returns 0, or the signal that sigaction refused (errno says why).
int berth_sigproxy_catch(int fd) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sigproxy_handler;
	// On the alternate stack every Go thread has: a goroutine's stack may be too small.
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	sigproxy_fd = fd;
	for (int sig = 1; sig <= SIGRTMAX; sig++) {
		if (proxied(sig) && sigaction(sig, &sa, NULL) != 0)
			return sig;
	}
	return 0;
}

// berth_sigproxy_default gives sig its default action back.
int berth_sigproxy_default(int sig) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	return sigaction(sig, &sa, NULL);
}
