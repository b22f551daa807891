#ifndef BERTH_SOCKIO_H
#define BERTH_SOCKIO_H

/*
 * Whole reads and writes on the socket to the runtime, for both C stages (nsenter.c and
 * plan.c). A short read or a failed write means the runtime went away: there is nobody left
 * to report to, so the process exits. MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE.
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

static inline void sock_readall(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		p += n;
		len -= (size_t)n;
	}
}

static inline void sock_writeall(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		p += n;
		len -= (size_t)n;
	}
}

#endif
