/*
 * The container's init without a Go runtime: it executes a plan the runtime compiled.
 *
 * The Go parent (internal/runtime/plan.go) parses and validates the OCI config and makes
 * every decision; this file only carries out the resulting flat list of operations, in
 * order, and execs the user's program. On failure it reports which operation failed, the
 * errno and a few words of context; the parent turns that into an error naming the spec
 * field. Nothing here interprets the OCI config.
 *
 * Plan frame (native byte order): uint32 length, then operations
 *   { uint32 code; uint32 len; payload[len] }
 * with payload = uint32 nint; uint32 nstr; nint x uint64; nstr x { uint32 n; bytes[n] }.
 * The whole plan is decoded and checked before the first operation runs.
 *
 * Replies on the socket: 'R' uint64 (ambient capabilities not raised) when ready;
 * 'F' int32 op, int32 errno, uint32 n, context[n] on failure before ready. After ready the
 * parent has gone: a failure goes to the container's stderr and the init exits 127.
 *
 * Every path in the rootfs is resolved with openat2(RESOLVE_IN_ROOT) against an O_PATH
 * handle of the rootfs, and every mount targets the /proc/self/fd/N link of an O_PATH handle
 * of the destination, so no symlink in the image can send a mount out of the rootfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "plan.h"
#include "sockio.h"

/* Operation codes: keep in step with internal/runtime/plan.go. */
enum {
	OP_MOUNT_HOST = 1,  /* ints: flags; strs: src, target, fstype, data (host paths) */
	OP_OPEN_ROOT = 2,   /* strs: rootfs; also opens the host's /dev/null */
	OP_MOUNT = 3,       /* ints: flags, target kind, opflags, alternative length; strs: src, dest, fstype, data */
	OP_REMOUNT = 4,     /* ints: flags; strs: dest */
	OP_PROPAGATE = 5,   /* ints: flags; strs: dest */
	OP_MKNOD = 6,       /* ints: mode, dev, uid, gid (-1: keep); strs: path */
	OP_SYMLINK = 7,     /* strs: target, path */
	OP_MASK = 8,        /* strs: path */
	OP_READONLY = 9,    /* strs: path */
	OP_PIVOT = 10,
	OP_KEYRING = 11,    /* strs: name */
	OP_SYSCTL = 12,     /* strs: path under /proc, value */
	OP_HOSTNAME = 13,   /* strs: name */
	OP_DOMAINNAME = 14, /* strs: name */
	OP_RLIMIT = 15,     /* ints: resource, soft, hard */
	OP_PERSONALITY = 16, /* ints: persona */
	OP_LOOKPATH = 17,   /* strs: name, PATH */
	OP_CLOSE_RANGE = 18, /* ints: first */
	OP_CHDIR = 19,      /* ints: retry; strs: dir */
	OP_SECCOMP = 20,    /* ints: flags; strs: struct sock_filter array */
	OP_CAPBSET = 21,    /* ints: keep mask, last cap */
	OP_SETUSER = 22,    /* ints: uid, gid, umask (-1: keep), groups... */
	OP_CAPSET = 23,     /* ints: effective, permitted, inheritable */
	OP_AMBIENT = 24,    /* ints: mask, last cap */
	OP_NNP = 25,
	OP_READY = 26,
	OP_WAIT = 27,       /* ints: fd of exec.fifo */
	OP_EXEC = 28,       /* ints: argc; strs: argv..., env... */
	OP_CGROUP_JOIN = 29, /* ints: unshare (1: a cgroup namespace of its own); strs: v1 tasks files */
	OP_LOOPBACK_UP = 30,
	OP_MAX = 30
};

/* OP_MOUNT target kinds. */
enum { TK_DIR = 0, TK_FILE = 1, TK_SRC = 2 };

/* OP_MOUNT opflags. */
enum {
	OF_NOSYMLINKS = 1,   /* refuse a destination with a symlink anywhere in it */
	OF_ORELSE = 2,       /* on failure run the next ints[3] ops, on success skip them */
	OF_ORELSE_EPERM = 4  /* the same, but only EPERM falls back */
};

struct op {
	uint32_t code;
	uint32_t nint, nstr;
	const uint64_t *ints; /* unaligned in the frame: read with get() */
	char **strs;
	uint32_t *lens;
};

static int sock = -1;
static int ready;
static int cur_op = -1;
static int rootfd = -1, devnullfd = -1;
static char prog[4096];
static int cwd_failed;
static uint64_t ambient_failed;

static uint64_t get(const struct op *o, uint32_t i)
{
	uint64_t v;
	memcpy(&v, (const char *)o->ints + 8 * i, 8);
	return v;
}

/* fail reports the current operation's failure with errno err and exits. */
static void fail(int err, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail(int err, const char *fmt, ...)
{
	char ctx[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(ctx))
		n = sizeof(ctx) - 1;
	if (ready) {
		/* The parent has finished create; the container's stderr is all that is left. */
		dprintf(2, "berth init: %s: %s\n", ctx, err ? strerror(err) : "failed");
		_exit(127);
	} else {
		char tag = 'F';
		int32_t idx = cur_op, e = err;
		uint32_t len = (uint32_t)n;
		sock_writeall(sock, &tag, 1);
		sock_writeall(sock, &idx, 4);
		sock_writeall(sock, &e, 4);
		sock_writeall(sock, &len, 4);
		sock_writeall(sock, ctx, len);
	}
	_exit(1);
}

static const char *fdpath(int fd, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
	return buf;
}

static const char *nullable(const char *s)
{
	return *s ? s : NULL;
}

/* ---- paths inside the rootfs ---- */

/* in_root opens path (absolute, clean) inside the rootfs: an O_PATH fd, or -errno. */
static int in_root(const char *path, uint64_t resolve)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve,
	};
	const char *rel = path[0] == '/' ? path + 1 : path;
	long fd;

	if (*rel == '\0')
		rel = ".";
	do
		fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	while (fd < 0 && (errno == EAGAIN || errno == EINTR)); /* a rename raced the lookup */
	return fd < 0 ? -errno : (int)fd;
}

static int is_dir(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * dir_in_root returns an O_PATH handle of directory path in the rootfs, creating missing
 * components one by one: each prefix is resolved in the root (so a symlink in the image is
 * followed only inside it), a missing component is made with mkdirat in its parent's handle
 * and reopened without following anything.
 */
static int dir_in_root(const char *path)
{
	char buf[4096];
	size_t len = strlen(path), i;
	int cur, fd = in_root(path, 0);

	if (fd >= 0) {
		if (is_dir(fd))
			return fd;
		close(fd);
		fail(ENOTDIR, "%s in the rootfs is not a directory", path);
	}
	if (fd != -ENOENT)
		fail(-fd, "openat2 %s in the rootfs", path);
	if (path[0] != '/')
		fail(EINVAL, "%s is not an absolute path", path);
	if (len >= sizeof(buf))
		fail(ENAMETOOLONG, "%s", path);
	memcpy(buf, path, len + 1);
	cur = in_root("/", 0);
	if (cur < 0)
		fail(-cur, "open the rootfs");
	for (i = 1; i <= len; i++) {
		const char *name;
		char save;
		int next;
		struct open_how how = {
			.flags = O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};

		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		save = buf[i];
		buf[i] = '\0';
		name = strrchr(buf, '/') + 1;
		next = in_root(buf, 0);
		if (next == -ENOENT) {
			if (mkdirat(cur, name, 0755) < 0 && errno != EEXIST)
				fail(errno, "mkdirat %s in the rootfs", buf);
			next = (int)syscall(SYS_openat2, cur, name, &how, sizeof(how));
			if (next < 0)
				next = -errno;
		}
		if (next < 0)
			fail(-next, "open %s in the rootfs", buf);
		if (!is_dir(next))
			fail(ENOTDIR, "%s in the rootfs is not a directory", buf);
		close(cur);
		cur = next;
		buf[i] = save;
	}
	return cur;
}

static void split(const char *path, char *dir, size_t dirlen, const char **base)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (path[0] != '/' || slash == NULL)
		fail(EINVAL, "%s is not an absolute path", path);
	n = (size_t)(slash - path);
	if (n == 0)
		n = 1; /* the parent of /x is / */
	if (n >= dirlen)
		fail(ENAMETOOLONG, "%s", path);
	memcpy(dir, path, n);
	dir[n] = '\0';
	*base = slash + 1;
}

/* target_in_root creates the mount point (a directory, or an empty file) and opens it. */
static int target_in_root(const char *path, int dir)
{
	char parent[4096];
	const char *base;
	int pfd, fd;

	if (dir)
		return dir_in_root(path);
	split(path, parent, sizeof(parent), &base);
	pfd = dir_in_root(parent);
	/*
	 * mknodat makes the file only where nothing is: an open for writing would copy a file
	 * of the image's lower layers up into the container's upper directory.
	 */
	if (mknodat(pfd, base, S_IFREG | 0644, 0) < 0 && errno != EEXIST && errno != EROFS)
		fail(errno, "create mount point %s in the rootfs", path);
	close(pfd);
	/* Something was there already: a symlink is resolved inside the rootfs. */
	fd = in_root(path, 0);
	if (fd < 0)
		fail(-fd, "openat2 %s in the rootfs", path);
	return fd;
}

/* nofollow_in_root opens path refusing any symlink on the way; -ENOENT when missing. */
static int nofollow_in_root(const char *path)
{
	int fd = in_root(path, RESOLVE_NO_SYMLINKS);
	if (fd == -ELOOP)
		fail(ELOOP, "%s goes through a symlink in the rootfs; refusing it", path);
	if (fd < 0 && fd != -ENOENT)
		fail(-fd, "openat2 %s in the rootfs", path);
	return fd;
}

/* ---- mounts ---- */

static unsigned long locked_flags(unsigned long st)
{
	unsigned long f = 0;
	if (st & ST_NOSUID) f |= MS_NOSUID;
	if (st & ST_NODEV) f |= MS_NODEV;
	if (st & ST_NOEXEC) f |= MS_NOEXEC;
	if (st & ST_NOATIME) f |= MS_NOATIME;
	if (st & ST_NODIRATIME) f |= MS_NODIRATIME;
	if (st & ST_RELATIME) f |= MS_RELATIME;
	if (st & ST_RDONLY) f |= MS_RDONLY;
	return f;
}

/*
 * remount_bind changes the flags of the mount fd is the root of. A user namespace may not
 * clear flags the kernel locked on the source mount, so on EPERM they are kept.
 */
static void remount_bind(int fd, unsigned long flags, const char *what)
{
	char p[64];
	int r = mount(NULL, fdpath(fd, p, sizeof(p)), NULL, MS_REMOUNT | MS_BIND | flags, NULL);
	if (r < 0 && errno == EPERM) {
		struct statfs st;
		if (fstatfs(fd, &st) == 0)
			r = mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | flags | locked_flags((unsigned long)st.f_flags), NULL);
	}
	if (r < 0)
		fail(errno, "remount %s with flags %#lx", what, flags);
}

/* do_mount returns 0 or an errno, for OF_ORELSE; anything else fails at once. */
static int do_mount(const struct op *o)
{
	unsigned long flags = get(o, 0);
	uint64_t kind = get(o, 1), of = get(o, 2);
	const char *src = o->strs[0], *dest = o->strs[1];
	char p[64];
	int dir = kind == TK_DIR, fd, err = 0;

	if (of & OF_NOSYMLINKS) {
		fd = in_root(dest, RESOLVE_NO_SYMLINKS);
		if (fd == -ELOOP)
			fail(ELOOP, "mount destination %s is a symlink in the rootfs; refusing to follow it", dest);
		if (fd >= 0)
			close(fd);
	}
	if (kind == TK_SRC) {
		struct stat st;
		if (stat(src, &st) < 0)
			fail(errno, "bind source %s", src);
		dir = S_ISDIR(st.st_mode);
	}
	fd = target_in_root(dest, dir);
	if (mount(nullable(src), fdpath(fd, p, sizeof(p)), nullable(o->strs[2]), flags, nullable(o->strs[3])) < 0)
		err = errno;
	close(fd);
	if (err && !((of & OF_ORELSE) || ((of & OF_ORELSE_EPERM) && err == EPERM))) {
		if (flags & MS_BIND)
			fail(err, "bind %s", src);
		fail(err, "mount %s (options \"%s\")", o->strs[2], o->strs[3]);
	}
	return err;
}

static void do_propagate(const struct op *o)
{
	char p[64];
	int fd = in_root(o->strs[0], 0);
	if (fd < 0)
		fail(-fd, "resolve %s in the rootfs", o->strs[0]);
	if (mount(NULL, fdpath(fd, p, sizeof(p)), NULL, get(o, 0), NULL) < 0)
		fail(errno, "set propagation %#lx", (unsigned long)get(o, 0));
	close(fd);
}

static void do_remount(const struct op *o)
{
	int fd = in_root(o->strs[0], 0);
	if (fd < 0)
		fail(-fd, "resolve %s in the rootfs", o->strs[0]);
	remount_bind(fd, get(o, 0), o->strs[0]);
	close(fd);
}

static void do_mknod(const struct op *o)
{
	char parent[4096];
	const char *base;
	mode_t mode = (mode_t)get(o, 0);
	int64_t uid = (int64_t)get(o, 2), gid = (int64_t)get(o, 3);
	int pfd;

	split(o->strs[0], parent, sizeof(parent), &base);
	pfd = dir_in_root(parent);
	/* Whatever the image has at that path (a file, a stale node, a symlink) is replaced. */
	if (unlinkat(pfd, base, 0) < 0 && errno != ENOENT) {
		if (errno == EISDIR)
			fail(EISDIR, "%s is a directory in the rootfs", o->strs[0]);
		fail(errno, "remove %s from the rootfs", o->strs[0]);
	}
	if (mknodat(pfd, base, mode, (dev_t)get(o, 1)) < 0)
		fail(errno, "mknod");
	/* mknod applies the umask; the configured mode is what the user asked for. */
	if (fchmodat(pfd, base, mode & 07777, 0) < 0)
		fail(errno, "chmod");
	if ((uid >= 0 || gid >= 0) && fchownat(pfd, base, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) < 0)
		fail(errno, "chown");
	close(pfd);
}

static void do_symlink(const struct op *o)
{
	char parent[4096];
	const char *base;
	int pfd;

	split(o->strs[1], parent, sizeof(parent), &base);
	pfd = dir_in_root(parent);
	if (symlinkat(o->strs[0], pfd, base) < 0 && errno != EEXIST)
		fail(errno, "symlink %s -> %s", o->strs[1], o->strs[0]);
	close(pfd);
}

static void do_mask(const struct op *o)
{
	char p[64], q[64];
	int fd = nofollow_in_root(o->strs[0]), r;

	if (fd == -ENOENT)
		return;
	if (is_dir(fd))
		r = mount("tmpfs", fdpath(fd, p, sizeof(p)), "tmpfs", MS_RDONLY, NULL);
	else
		r = mount(fdpath(devnullfd, q, sizeof(q)), fdpath(fd, p, sizeof(p)), NULL, MS_BIND, NULL);
	if (r < 0)
		fail(errno, "mount over %s", o->strs[0]);
	close(fd);
}

static void do_readonly(const struct op *o)
{
	char p[64];
	int fd = nofollow_in_root(o->strs[0]);

	if (fd == -ENOENT)
		return;
	fdpath(fd, p, sizeof(p));
	if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
		fail(errno, "bind onto itself");
	close(fd);
	fd = nofollow_in_root(o->strs[0]);
	if (fd < 0)
		fail(-fd, "reopen %s", o->strs[0]);
	remount_bind(fd, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, o->strs[0]);
	close(fd);
}

/*
 * do_pivot makes the rootfs the root without a put_old directory: after pivot_root(".", ".")
 * the old root is stacked under the new one and is detached at once.
 */
static void do_pivot(void)
{
	int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (oldroot < 0)
		fail(errno, "open old root");
	if (fchdir(rootfd) < 0)
		fail(errno, "chdir to rootfs");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail(errno, "pivot_root");
	if (fchdir(oldroot) < 0)
		fail(errno, "chdir to old root");
	/* Our slave copy of the host's mounts must not send the unmount back to the host. */
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		fail(errno, "make old root rslave");
	if (umount2(".", MNT_DETACH) < 0)
		fail(errno, "detach old root");
	if (chdir("/") < 0)
		fail(errno, "chdir /");
	close(oldroot);
	close(rootfd);
	close(devnullfd);
	rootfd = devnullfd = -1;
}

/* ---- the process ---- */

static void do_sysctl(const struct op *o)
{
	struct open_how how = {
		.flags = O_WRONLY | O_CLOEXEC | O_TRUNC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV,
	};
	size_t len = strlen(o->strs[1]);
	int proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC), fd;

	if (proc < 0)
		fail(errno, "open /proc");
	fd = (int)syscall(SYS_openat2, proc, o->strs[0], &how, sizeof(how));
	if (fd < 0)
		fail(errno, "open /proc/%s", o->strs[0]);
	if (write(fd, o->strs[1], len) != (ssize_t)len)
		fail(errno, "write \"%s\"", o->strs[1]);
	close(fd);
	close(proc);
}

/* executable returns 0 when p names an executable regular file, else an errno. */
static int executable(const char *p)
{
	struct stat st;
	if (stat(p, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	if ((st.st_mode & 0111) == 0)
		return EACCES;
	return 0;
}

/* do_lookpath finds the program inside the container, after pivot_root. */
static void do_lookpath(const struct op *o)
{
	const char *name = o->strs[0], *dirs = o->strs[1];
	int err;

	if (strchr(name, '/') != NULL) {
		if ((err = executable(name)) != 0)
			fail(err, "%s", name);
		snprintf(prog, sizeof(prog), "%s", name);
		return;
	}
	for (;;) {
		const char *end = strchrnul(dirs, ':');
		int n = (int)(end - dirs);
		if (n == 0)
			snprintf(prog, sizeof(prog), "./%s", name);
		else
			snprintf(prog, sizeof(prog), "%.*s/%s", n, dirs, name);
		if (executable(prog) == 0)
			return;
		if (*end == '\0')
			break;
		dirs = end + 1;
	}
	fail(ENOENT, "not found in $PATH");
}

/* do_chdir enters the working directory and checks that it is inside the root. */
static void do_chdir(const struct op *o)
{
	char buf[4096];
	long n;

	if (get(o, 0) && !cwd_failed)
		return;
	if (chdir(o->strs[0]) < 0) {
		/* The directory may be readable only by the container's user: try again later. */
		if (!get(o, 0)) {
			cwd_failed = 1;
			return;
		}
		fail(errno, "chdir %s", o->strs[0]);
	}
	/* The raw syscall: the kernel marks a directory outside the root "(unreachable)". */
	n = syscall(SYS_getcwd, buf, sizeof(buf));
	if (n <= 0 || buf[0] != '/')
		fail(EXDEV, "%s resolves outside the container's root", o->strs[0]);
	cwd_failed = 0;
}

static void do_seccomp(const struct op *o)
{
	struct sock_fprog fp = {
		.len = (unsigned short)(o->lens[0] / sizeof(struct sock_filter)),
		.filter = (struct sock_filter *)o->strs[0],
	};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned int)get(o, 0), &fp) < 0)
		fail(errno, "install filter (flags %#x, %u instructions)", (unsigned int)get(o, 0), fp.len);
}

static void do_capbset(const struct op *o)
{
	uint64_t keep = get(o, 0);
	unsigned long i, last = get(o, 1);

	for (i = 0; i <= last && i < 64; i++) {
		if (keep & (1ULL << i))
			continue;
		if (prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0)
			fail(errno, "drop capability %lu from the bounding set", i);
	}
}

static int setgroups_denied(void)
{
	char buf[16] = {0};
	int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n >= 4 && strncmp(buf, "deny", 4) == 0;
}

/* do_setuser switches to the container's ids, keeping the permitted capabilities. */
static void do_setuser(const struct op *o)
{
	uint32_t ngroups = o->nint - 3, i;
	gid_t *groups = NULL;
	int64_t umask_v = (int64_t)get(o, 2);

	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail(errno, "prctl PR_SET_KEEPCAPS");
	if (ngroups > 0) {
		groups = calloc(ngroups, sizeof(gid_t));
		if (groups == NULL)
			fail(ENOMEM, "setgroups");
		for (i = 0; i < ngroups; i++)
			groups[i] = (gid_t)get(o, 3 + i);
	}
	/* The raw syscalls: set this thread's ids, with no libc bookkeeping in between. */
	if (syscall(SYS_setgroups, (size_t)ngroups, groups) < 0 &&
	    !(errno == EPERM && ngroups == 0 && setgroups_denied()))
		fail(errno, "setgroups");
	free(groups);
	if (syscall(SYS_setresgid, (gid_t)get(o, 1), (gid_t)get(o, 1), (gid_t)get(o, 1)) < 0)
		fail(errno, "setresgid %lu (is it mapped in the user namespace?)", (unsigned long)get(o, 1));
	if (syscall(SYS_setresuid, (uid_t)get(o, 0), (uid_t)get(o, 0), (uid_t)get(o, 0)) < 0)
		fail(errno, "setresuid %lu (is it mapped in the user namespace?)", (unsigned long)get(o, 0));
	if (umask_v >= 0)
		umask((mode_t)umask_v);
}

static void do_capset(const struct op *o)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	uint64_t eff = get(o, 0), perm = get(o, 1), inh = get(o, 2), have, missing;

	if (syscall(SYS_capget, &hdr, d) < 0)
		fail(errno, "capget");
	have = (uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32;
	missing = (perm | eff | inh) & ~have & ~inh;
	if (missing)
		fail(EPERM, "capabilities %#llx are not held by the runtime (its permitted set is %#llx), so the container cannot get them",
		     (unsigned long long)missing, (unsigned long long)have);
	d[0].effective = (uint32_t)eff;
	d[0].permitted = (uint32_t)perm;
	d[0].inheritable = (uint32_t)inh;
	d[1].effective = (uint32_t)(eff >> 32);
	d[1].permitted = (uint32_t)(perm >> 32);
	d[1].inheritable = (uint32_t)(inh >> 32);
	if (syscall(SYS_capset, &hdr, d) < 0)
		fail(errno, "capset (effective %#llx, permitted %#llx, inheritable %#llx)",
		     (unsigned long long)eff, (unsigned long long)perm, (unsigned long long)inh);
}

/* do_ambient raises the ambient set; what the kernel refuses becomes a warning. */
static void do_ambient(const struct op *o)
{
	uint64_t mask = get(o, 0);
	unsigned long i, last = get(o, 1);

	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		fail(errno, "clear ambient capabilities");
	for (i = 0; i <= last && i < 64; i++)
		if ((mask & (1ULL << i)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
			ambient_failed |= 1ULL << i;
}

static void do_wait(const struct op *o)
{
	char b;
	ssize_t n;

	do
		n = read((int)get(o, 0), &b, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		fail(n < 0 ? errno : EIO, "wait for start on exec.fifo");
}

static void do_exec(const struct op *o)
{
	uint32_t argc = (uint32_t)get(o, 0);
	char **argv = calloc(argc + 1, sizeof(char *));
	char **envp = calloc(o->nstr - argc + 1, sizeof(char *));
	sigset_t none;
	uint32_t i;

	if (argv == NULL || envp == NULL)
		fail(ENOMEM, "exec %s", prog);
	for (i = 0; i < argc; i++)
		argv[i] = o->strs[i];
	for (i = argc; i < o->nstr; i++)
		envp[i - argc] = o->strs[i];
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(prog, argv, envp);
	fail(errno, "exec %s", prog);
}

/*
 * Until exec, the init is the pid namespace's init, to which the kernel delivers only
 * signals it handles: without a handler, `kill` of a created container would do nothing.
 * The handlers end the init (exec resets them); a pid namespace's init does not die of
 * its own default action, so it exits with the shell's code for "killed by sig", which
 * is what engines report for a container killed by a signal.
 */
static void on_signal(int sig)
{
	signal(sig, SIG_DFL);
	raise(sig);
	_exit(128 + sig);
}

static void run(struct op *ops, uint32_t n) __attribute__((noreturn));
static void run(struct op *ops, uint32_t n)
{
	uint32_t i;
	char tag;

	for (i = 0; i < n; i++) {
		struct op *o = &ops[i];
		long r = 0;

		cur_op = (int)i;
		switch (o->code) {
		case OP_MOUNT_HOST:
			if (mount(nullable(o->strs[0]), o->strs[1], nullable(o->strs[2]), get(o, 0), nullable(o->strs[3])) < 0)
				fail(errno, "mount %s on %s (flags %#lx)", o->strs[0], o->strs[1], (unsigned long)get(o, 0));
			break;
		case OP_OPEN_ROOT:
			rootfd = open(o->strs[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (rootfd < 0)
				fail(errno, "open rootfs %s", o->strs[0]);
			/* The host's /dev/null, opened before anything in the image could interfere. */
			devnullfd = open("/dev/null", O_PATH | O_CLOEXEC);
			if (devnullfd < 0)
				fail(errno, "open the host's /dev/null");
			break;
		case OP_MOUNT: {
			int err = do_mount(o);
			uint64_t of = get(o, 2), alt = get(o, 3);
			if ((of & (OF_ORELSE | OF_ORELSE_EPERM)) && err == 0)
				i += (uint32_t)alt; /* the alternative is not needed */
			break;
		}
		case OP_REMOUNT: do_remount(o); break;
		case OP_PROPAGATE: do_propagate(o); break;
		case OP_MKNOD: do_mknod(o); break;
		case OP_SYMLINK: do_symlink(o); break;
		case OP_MASK: do_mask(o); break;
		case OP_READONLY: do_readonly(o); break;
		case OP_PIVOT: do_pivot(); break;
		case OP_KEYRING:
			/* A fresh session keyring, so the container can't read the host's keys. */
			r = syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, o->strs[0]);
			if (r < 0 && errno != ENOSYS)
				fail(errno, "join a new session keyring");
			break;
		case OP_SYSCTL: do_sysctl(o); break;
		case OP_HOSTNAME:
			if (sethostname(o->strs[0], o->lens[0]) < 0)
				fail(errno, "sethostname");
			break;
		case OP_LOOPBACK_UP: {
			/* lo of the network namespace the init made, up: the same ioctls as
			 * `ip link set lo up`, without netlink. */
			struct ifreq ifr = {0};
			int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (fd < 0)
				fail(errno, "set lo up: socket");
			strcpy(ifr.ifr_name, "lo");
			if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
				fail(errno, "set lo up: SIOCGIFFLAGS");
			ifr.ifr_flags |= IFF_UP;
			if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
				fail(errno, "set lo up: SIOCSIFFLAGS");
			close(fd);
			break;
		}
		case OP_DOMAINNAME:
			if (setdomainname(o->strs[0], o->lens[0]) < 0)
				fail(errno, "setdomainname");
			break;
		case OP_RLIMIT: {
			struct rlimit rl = {.rlim_cur = get(o, 1), .rlim_max = get(o, 2)};
			if (prlimit(0, (int)get(o, 0), &rl, NULL) < 0)
				fail(errno, "setrlimit");
			break;
		}
		case OP_PERSONALITY:
			if (syscall(SYS_personality, (unsigned long)get(o, 0)) < 0)
				fail(errno, "personality");
			break;
		case OP_LOOKPATH: do_lookpath(o); break;
		case OP_CLOSE_RANGE:
			/* Nothing of the runtime's reaches the container (CVE-2024-21626). */
			if (syscall(SYS_close_range, (unsigned int)get(o, 0), ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) < 0)
				fail(errno, "close_range");
			break;
		case OP_CHDIR: do_chdir(o); break;
		case OP_SECCOMP: do_seccomp(o); break;
		case OP_CAPBSET: do_capbset(o); break;
		case OP_SETUSER: do_setuser(o); break;
		case OP_CAPSET: do_capset(o); break;
		case OP_AMBIENT: do_ambient(o); break;
		case OP_NNP:
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
				fail(errno, "prctl PR_SET_NO_NEW_PRIVS");
			break;
		case OP_READY:
			tag = 'R';
			sock_writeall(sock, &tag, 1);
			sock_writeall(sock, &ambient_failed, 8);
			ready = 1;
			break;
		case OP_WAIT: do_wait(o); break;
		case OP_EXEC: do_exec(o); break;
		case OP_CGROUP_JOIN:
			/*
			 * The runtime makes the container's cgroup while the init sets up what
			 * comes before, and says 'a' when it is made (on a hybrid layout, once it
			 * has moved the init into its cgroup2 part); the runtime gone, the read
			 * ends the init. The init then moves itself into each v1 hierarchy:
			 * writing "0" to "tasks" moves the calling thread alone (this process has
			 * no other), which the kernel does without cgroup_threadgroup_rwsem, whose
			 * writer would wait for an RCU grace period. The cgroup namespace, rooted
			 * at the cgroup the process is in when it is made, comes after.
			 */
			sock_readall(sock, &tag, 1);
			if (tag != 'a')
				fail(EPROTO, "the runtime did not make the init's cgroup");
			for (uint32_t i = 0; i < o->nstr; i++) {
				int fd = open(o->strs[i], O_WRONLY | O_CLOEXEC);
				if (fd < 0 || write(fd, "0", 1) != 1)
					fail(errno, "join cgroup: write 0 to %s", o->strs[i]);
				close(fd);
			}
			if (get(o, 0) && unshare(CLONE_NEWCGROUP) < 0)
				fail(errno, "unshare the cgroup namespace");
			break;
		}
	}
	cur_op = -1;
	fail(EINVAL, "the plan ended without an exec");
}

/* The number of ints and strings each operation takes; -N: N or more; ANY: any number. */
#define ANY (-100000)
static const struct {
	int nint, nstr;
} shape[OP_MAX + 1] = {
	[OP_MOUNT_HOST] = {1, 4}, [OP_OPEN_ROOT] = {0, 1}, [OP_MOUNT] = {4, 4},
	[OP_REMOUNT] = {1, 1}, [OP_PROPAGATE] = {1, 1}, [OP_MKNOD] = {4, 1},
	[OP_SYMLINK] = {0, 2}, [OP_MASK] = {0, 1}, [OP_READONLY] = {0, 1}, [OP_PIVOT] = {0, 0},
	[OP_KEYRING] = {0, 1}, [OP_SYSCTL] = {0, 2}, [OP_HOSTNAME] = {0, 1},
	[OP_DOMAINNAME] = {0, 1}, [OP_RLIMIT] = {3, 0}, [OP_PERSONALITY] = {1, 0},
	[OP_LOOKPATH] = {0, 2}, [OP_CLOSE_RANGE] = {1, 0}, [OP_CHDIR] = {1, 1},
	[OP_SECCOMP] = {1, 1}, [OP_CAPBSET] = {2, 0}, [OP_SETUSER] = {-3, 0},
	[OP_CAPSET] = {3, 0}, [OP_AMBIENT] = {2, 0}, [OP_NNP] = {0, 0}, [OP_READY] = {0, 0},
	[OP_WAIT] = {1, 0}, [OP_EXEC] = {1, -1}, [OP_CGROUP_JOIN] = {1, ANY}, [OP_LOOPBACK_UP] = {0, 0},
};

static uint32_t u32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* decode checks the whole plan and indexes it; strings are NUL-terminated in place. */
static struct op *decode(char *msg, uint32_t total, uint32_t *nops)
{
	uint32_t off = 0, n = 0, cap = 64;
	struct op *ops = malloc(cap * sizeof(*ops));

	if (ops == NULL)
		fail(ENOMEM, "plan");
	while (off < total) {
		struct op *o;
		uint32_t len, p, end, i;

		if (total - off < 16)
			fail(EINVAL, "plan: truncated operation header");
		if (n == cap) {
			cap *= 2;
			ops = realloc(ops, cap * sizeof(*ops));
			if (ops == NULL)
				fail(ENOMEM, "plan");
		}
		cur_op = (int)n;
		o = &ops[n++];
		o->code = u32(msg + off);
		len = u32(msg + off + 4);
		o->nint = u32(msg + off + 8);
		o->nstr = u32(msg + off + 12);
		if (len < 8 || len > total - off - 8)
			fail(EINVAL, "plan: operation of length %u overruns the plan", len);
		end = off + 8 + len;
		p = off + 16;
		if (o->code == 0 || o->code > OP_MAX)
			fail(EINVAL, "plan: unknown operation %u", o->code);
		if ((shape[o->code].nint >= 0 && o->nint != (uint32_t)shape[o->code].nint) ||
		    (shape[o->code].nint < 0 && o->nint < (uint32_t)-shape[o->code].nint) ||
		    (shape[o->code].nstr >= 0 && o->nstr != (uint32_t)shape[o->code].nstr) ||
		    (shape[o->code].nstr < 0 && shape[o->code].nstr != ANY && o->nstr < (uint32_t)-shape[o->code].nstr))
			fail(EINVAL, "plan: operation %u with %u ints and %u strings", o->code, o->nint, o->nstr);
		if (o->nint > (end - p) / 8)
			fail(EINVAL, "plan: operation %u overruns its ints", o->code);
		o->ints = (const uint64_t *)(msg + p);
		p += 8 * o->nint;
		if (o->nstr > (end - p) / 4)
			fail(EINVAL, "plan: operation %u overruns its strings", o->code);
		o->strs = calloc(o->nstr + 1, sizeof(char *));
		o->lens = calloc(o->nstr + 1, sizeof(uint32_t));
		if (o->strs == NULL || o->lens == NULL)
			fail(ENOMEM, "plan");
		for (i = 0; i < o->nstr; i++) {
			uint32_t sl;
			if (end - p < 5)
				fail(EINVAL, "plan: operation %u overruns its strings", o->code);
			sl = u32(msg + p);
			p += 4;
			/* Each string is followed by a NUL that is not counted in its length. */
			if (sl > end - p - 1 || msg[p + sl] != '\0')
				fail(EINVAL, "plan: operation %u has a bad string", o->code);
			/* Only the seccomp program is binary; a path cut short by a NUL is refused. */
			if (o->code != OP_SECCOMP && memchr(msg + p, '\0', sl) != NULL)
				fail(EINVAL, "plan: operation %u has a string with a NUL byte", o->code);
			o->strs[i] = msg + p;
			o->lens[i] = sl;
			p += sl + 1;
		}
		if (p != end)
			fail(EINVAL, "plan: operation %u has %u stray bytes", o->code, end - p);
		if (o->code == OP_EXEC && (get(o, 0) == 0 || get(o, 0) > o->nstr))
			fail(EINVAL, "plan: exec with %llu arguments", (unsigned long long)get(o, 0));
		if (o->code == OP_MOUNT && (get(o, 3) > 64 || get(o, 1) > TK_SRC))
			fail(EINVAL, "plan: bad mount operation");
		off = end;
	}
	cur_op = -1;
	*nops = n;
	return ops;
}

void berth_run_plan(int fd)
{
	static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM};
	uint32_t total, n;
	struct op *ops;
	char *msg;
	size_t i;

	sock = fd;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_signal);
	sock_readall(sock, &total, sizeof(total));
	if (total > (64u << 20))
		fail(EINVAL, "plan of %u bytes is too large", total);
	msg = malloc(total + 1);
	if (msg == NULL)
		fail(ENOMEM, "plan of %u bytes", total);
	sock_readall(sock, msg, total);
	ops = decode(msg, total, &n);
	run(ops, n);
}
