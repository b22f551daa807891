// Command berth-monitor watches over one container for its whole life, so that berth needs
// no daemon. The engine starts it (detached, in its own session) in the container's
// directory; it
//
//   - becomes a child subreaper and forks the container's init for the berth command
//     that creates it through the runtime library (spawn.go), or, when no berth command
//     drives the start (restarts, another runtime, a berth killed halfway), runs `berth`
//     as a helper to create and start it; either way the init ends up its child;
//   - owns the container's stdio: pipes, or the pty master received on a console socket;
//   - copies the output into Docker's json-file log, with size rotation;
//   - serves attach clients on a unix socket (frames of package monitor);
//   - reaps the init, records its exit code and time atomically, and runs the helper again
//     to clean up, which also says whether the restart policy wants another run.
//
// It is deliberately small and single-threaded (one poll loop, no goroutines, no fmt, no
// JSON library): one runs per container, so its resident memory is what an idle container
// costs beyond its own processes.
//
// The same binary, started as berth-init, is the tiny init of `berth run --init`, and
// started as berth-pty-hold, the holder of a detached `exec -it`'s terminal (holdPty).
package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine/monitor"
)

func main() {
	if b := os.Args[0]; b == "berth-init" || strings.HasSuffix(b, "/berth-init") {
		os.Exit(runInit(os.Args[1:]))
	}
	if os.Args[0] == monitor.PtyHoldName {
		os.Exit(holdPty())
	}
	// The engine starts us with GOMAXPROCS=1 (one poll loop needs one P, and fewer Ps
	// mean fewer threads and less memory); the helpers must not inherit it.
	os.Unsetenv("GOMAXPROCS")
	args := os.Args[1:]
	if len(args) > 2 && args[2] == monitor.LateArgs {
		var ok bool
		if args, ok = lateArgs(args); !ok {
			os.Exit(0) // berth gave the start up before it began
		}
	}
	m, err := parseArgs(args)
	if err != nil {
		logf("berth-monitor: %s", err.Error())
		os.Exit(2)
	}
	os.Exit(m.run())
}

// lateArgs reads the rest of the command line of a monitor started before berth knew the
// container's options: EXE ID later spawn-fd=N client-fd=M, then a SpawnArgs packet on N
// with the arguments after the id. A client-fd they do not name is closed. ok is false
// when berth closed the socket instead.
func lateArgs(args []string) ([]string, bool) {
	fds := map[string]int{}
	for _, a := range args[3:] {
		if k, v, found := strings.Cut(a, "="); found {
			if n, err := strconv.Atoi(v); err == nil {
				fds[k] = n
			}
		}
	}
	spawn, ok := fds["spawn-fd"]
	if !ok {
		return nil, false
	}
	var buf [4096]byte
	n, err := unix.Read(spawn, buf[:])
	for err == unix.EINTR {
		n, err = unix.Read(spawn, buf[:])
	}
	if err != nil || n < 1 || buf[0] != monitor.SpawnArgs {
		return nil, false
	}
	out := append([]string{}, args[:2]...)
	usesClient := false
	if n > 1 {
		for _, a := range strings.Split(string(buf[1:n]), "\x00") {
			usesClient = usesClient || strings.HasPrefix(a, "client-fd=")
			out = append(out, a)
		}
	}
	if c, ok := fds["client-fd"]; ok && !usesClient {
		unix.Close(c)
	}
	return out, true
}

// holdPty keeps the pty master on descriptor 3 open, so that the terminal of an `exec
// -it` whose berth detached (ctrl-p ctrl-q) does not hang up, and drains what the
// process writes, so that it never blocks on a full terminal; it exits once the last
// process holding the terminal has (the master then reads EIO).
func holdPty() int {
	var buf [4096]byte
	for {
		n, err := unix.Read(3, buf[:])
		if n > 0 || err == unix.EINTR {
			continue
		}
		return 0
	}
}

// dropText unmaps the pages of this binary's code and read-only data from our page
// tables once the container has run for a moment (dropTextAfter). From then on the monitor runs a small part of its code
// (the poll loop, log writing); the rest need not count in its resident set. The pages
// stay in the page cache, shared with every other monitor, and fault back in if used.
// Writable mappings are left alone: dropping those would lose their contents.
func dropText() {
	if textRanges == nil {
		textRanges = readTextRanges()
	}
	for _, r := range textRanges {
		unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], unix.MADV_DONTNEED)
	}
}

// textRanges are the read-only mappings of this binary, read once: the health check's
// timer drops them again after every check (health.go) without allocating.
var textRanges [][2]uintptr

func readTextRanges() [][2]uintptr {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil
	}
	out := [][2]uintptr{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != exe || len(f[1]) < 2 || f[1][1] == 'w' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, [2]uintptr{uintptr(start), uintptr(end)})
	}
	return out
}

// logf writes one line to stderr, which the engine points at monitor.log. Only %s verbs:
// fmt is not linked in.
func logf(format string, args ...string) {
	b := time.Now().UTC().AppendFormat(nil, time.RFC3339Nano)
	b = append(append(b, ' '), sprintf(format, args)...)
	os.Stderr.Write(append(b, '\n'))
}

func sprintf(format string, args []string) string {
	var b []byte
	i := 0
	for j := 0; j < len(format); j++ {
		if format[j] == '%' && j+1 < len(format) && format[j+1] == 's' && i < len(args) {
			b = append(b, args[i]...)
			i++
			j++
			continue
		}
		b = append(b, format[j])
	}
	return string(b)
}

type argError string

func (e argError) Error() string { return string(e) }

// parseArgs reads: BERTH-EXE ID [tty] [stdin] [nolog] [log-size=BYTES] [log-files=N]
// [client-fd=N] [spawn-fd=N] [health=INTERVAL,START-PERIOD,START-INTERVAL (nanoseconds)].
func parseArgs(args []string) (*mon, error) {
	if len(args) < 2 {
		return nil, argError("usage: berth-monitor BERTH-EXE CONTAINER-ID [tty] [stdin] [nolog] [log-size=BYTES] [log-files=N] [client-fd=N] [spawn-fd=N] [health=INTERVAL,START-PERIOD,START-INTERVAL]")
	}
	m := &mon{exe: args[0], id: args[1], logFiles: 1, consFd: -1, consConn: -1, master: -1,
		stdinFd: -1, initFd: -1, lfd: -1, spawnFd: -1, exeFd: -1, reaped: map[int]unix.WaitStatus{}}
	m.hc.pidfd, m.hc.devnull = -1, -1
	m.streams[0] = stream{fd: -1, name: "stdout", typ: monitor.FrameStdout}
	m.streams[1] = stream{fd: -1, name: "stderr", typ: monitor.FrameStderr}
	clientFd := -1
	for _, a := range args[2:] {
		k, v, _ := strings.Cut(a, "=")
		var err error
		switch k {
		case "tty":
			m.tty = true
		case "stdin":
			m.openStdin = true
		case "nolog":
			m.noLog = true
		case "log-size":
			m.logMax, err = strconv.ParseInt(v, 10, 64)
		case "log-files":
			m.logFiles, err = strconv.Atoi(v)
		case "client-fd":
			clientFd, err = strconv.Atoi(v)
		case "spawn-fd":
			m.spawnFd, err = strconv.Atoi(v)
			if err == nil {
				unix.CloseOnExec(m.spawnFd)
			}
		case "health":
			var ok bool
			if m.hc.sched, ok = parseHealthArg(v); !ok {
				err = argError("bad schedule")
			}
		default:
			return nil, argError("unknown argument " + strconv.Quote(a))
		}
		if err != nil {
			return nil, argError("bad argument " + strconv.Quote(a))
		}
	}
	if m.logFiles < 1 {
		m.logFiles = 1
	}
	if clientFd >= 0 {
		unix.CloseOnExec(clientFd)
		unix.SetNonblock(clientFd, true)
		m.clients = append(m.clients, &client{fd: clientFd})
	}
	return m, nil
}

// stream is one output of the container: a pipe's read end, or the pty master.
type stream struct {
	fd   int
	name string
	typ  byte
	// part holds the end of the output that has no newline yet; it goes to the log as a
	// line of its own when it reaches maxLine or the stream ends.
	part []byte
}

// maxLine is where Docker's json-file driver splits a long line into partial messages.
const maxLine = 16 << 10

// maxPending bounds what a client may lag behind before it is dropped, so that a stuck
// client cannot make the monitor grow (the container itself is never blocked by clients).
const maxPending = 8 << 20

type client struct {
	fd      int
	hello   bool
	want    byte
	in      []byte
	out     []byte
	closing bool // drop once out is written
	dead    bool
}

type helper struct {
	pid    int
	proc   *os.Process
	fd     int // status pipe, read end
	kind   string
	out    []byte
	eof    bool
	reaped bool
}

type mon struct {
	exe, id   string
	tty       bool
	openStdin bool
	noLog     bool // --log-driver none: no log file; clients still get the output
	removed   bool // the container was removed; its directory, ours, is ours to delete
	logMax    int64
	logFiles  int
	logFd     int
	logSize   int64
	lineBuf   []byte

	lfd      int // attach listener
	consFd   int // console socket listener while a tty container is being created
	consConn int // the connection the pty master arrives on
	master   int // pty master
	ws       *unix.Winsize

	streams  [2]stream
	stdinFd  int // write end of the container's stdin pipe (or master for a tty)
	stdinBuf []byte
	clients  []*client

	h *helper
	// spawnFd is the socket of the berth command that drives the first start itself
	// (spawn.go); spawnStdio the container's ends of its stdio, kept for the init.
	spawnFd      int
	spawnStdio   [3]*os.File
	spawnClose   []*os.File
	spawned      []int
	spawnCreated int
	// cleaner is the client doing the exit helper's work, when one offered.
	cleaner  *client
	initPid  int
	initFd   int // pidfd of the init, as a wake-up only
	exeFd    int // the init's executable, kept open (spawnInit)
	reaped   map[int]unix.WaitStatus
	lastExit int

	restartAt time.Time
	waiting   bool      // for restartAt
	dropAt    time.Time // when to dropText, if not zero
	hc        healthState
	done      bool
	buf       [32 << 10]byte
}

func (m *mon) run() int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		logf("prctl PR_SET_CHILD_SUBREAPER: %s", err.Error())
		return 1
	}
	m.logFd = -1
	if !m.noLog {
		fd, err := unix.Open(monitor.LogFile(m.id), unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC, 0o640)
		if err != nil {
			logf("open log %s: %s", monitor.LogFile(m.id), err.Error())
			return 1
		}
		m.logFd = fd
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil {
			m.logSize = st.Size
		}
	}
	var err error
	if m.lfd, err = listenUnix(monitor.AttachSocket, 16); err != nil {
		logf("listen on %s: %s", monitor.AttachSocket, err.Error())
		return 1
	}
	if m.spawnFd >= 0 {
		m.startSpawn()
	} else {
		m.startHelper(monitor.HelperStart)
	}
	fds := make([]unix.PollFd, 0, 16)
	type ref struct {
		kind byte
		i    int
	}
	refs := make([]ref, 0, 16)
	for !m.done {
		fds, refs = fds[:0], refs[:0]
		add := func(fd int, ev int16, kind byte, i int) {
			fds = append(fds, unix.PollFd{Fd: int32(fd), Events: ev})
			refs = append(refs, ref{kind, i})
		}
		add(m.lfd, unix.POLLIN, 'l', 0)
		if m.h != nil && !m.h.eof {
			add(m.h.fd, unix.POLLIN, 'h', 0)
		}
		if m.initFd >= 0 {
			add(m.initFd, unix.POLLIN, 'p', 0)
		}
		if m.spawnFd >= 0 {
			add(m.spawnFd, unix.POLLIN, 'S', 0)
		}
		if m.hc.pidfd >= 0 {
			add(m.hc.pidfd, unix.POLLIN, 'H', 0)
		}
		if m.consFd >= 0 {
			add(m.consFd, unix.POLLIN, 'C', 0)
		}
		if m.consConn >= 0 {
			add(m.consConn, unix.POLLIN, 'c', 0)
		}
		for i := range m.streams {
			if m.streams[i].fd >= 0 {
				add(m.streams[i].fd, unix.POLLIN, 's', i)
			}
		}
		if m.stdinFd >= 0 && len(m.stdinBuf) > 0 {
			add(m.stdinFd, unix.POLLOUT, 'i', 0)
		}
		for i, c := range m.clients {
			var ev int16
			// While the container has not taken earlier input, a client that sends input
			// is not read: that is the back-pressure of a pipe.
			if !(c.hello && c.want&monitor.WantStdin != 0 && len(m.stdinBuf) > 0) && !c.closing {
				ev |= unix.POLLIN
			}
			if len(c.out) > 0 {
				ev |= unix.POLLOUT
			}
			add(c.fd, ev, 'k', i)
		}
		timeout := -1
		for _, t := range []struct {
			set bool
			at  time.Time
		}{{m.waiting, m.restartAt}, {!m.dropAt.IsZero(), m.dropAt}, {!m.hc.at.IsZero() && m.hc.pid == 0, m.hc.at}} {
			if !t.set {
				continue
			}
			ms := int(time.Until(t.at)/time.Millisecond) + 1
			if ms < 0 {
				ms = 0
			}
			if timeout < 0 || ms < timeout {
				timeout = ms
			}
		}
		n, err := unix.Poll(fds, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			logf("poll: %s", err.Error())
			return 1
		}
		if n > 0 {
			for i, f := range fds {
				if f.Revents == 0 {
					continue
				}
				r := refs[i]
				switch r.kind {
				case 'l':
					m.accept()
				case 'h':
					m.readHelper()
				case 'p', 'H':
					// The init or the health check exited; reap below.
				case 'S':
					m.readSpawn()
				case 'C':
					m.acceptConsole()
				case 'c':
					m.receiveMaster()
				case 's':
					m.readStream(r.i, false)
				case 'i':
					m.flushStdin()
				case 'k':
					c := m.clients[r.i]
					if f.Revents&unix.POLLOUT != 0 {
						m.flushClient(c)
					}
					if f.Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
						m.readClient(c)
					}
				}
			}
		}
		m.reap()
		if m.h != nil && m.h.eof && !m.h.reaped {
			// The helper closed its status pipe, so it is exiting: wait for it.
			var ws unix.WaitStatus
			for {
				pid, err := unix.Wait4(m.h.pid, &ws, 0, nil)
				if err == unix.EINTR {
					continue
				}
				if pid == m.h.pid || err != nil {
					m.h.reaped = true
				}
				break
			}
		}
		if m.h != nil && m.h.eof && m.h.reaped {
			m.helperDone()
		}
		if !m.dropAt.IsZero() && !time.Now().Before(m.dropAt) {
			m.dropAt = time.Time{}
			dropText()
		}
		m.healthDue()
		if m.waiting && !time.Now().Before(m.restartAt) {
			m.waiting = false
			m.startHelper(monitor.HelperRestart)
		}
		m.sweepClients()
	}
	m.finish()
	if m.removed {
		deleteOwnDir()
	}
	return 0
}

// deleteOwnDir deletes our working directory, a removed container's (monitor.RemovedPfx),
// under its lock: a berth listing that finds it locked leaves it to us.
func deleteOwnDir() {
	wd, err := os.Getwd()
	if err != nil || !strings.HasPrefix(filepath.Base(wd), monitor.RemovedPfx) {
		return
	}
	fd, err := unix.Open(".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return
	}
	if err := os.RemoveAll(wd); err != nil {
		logf("delete %s: %s", wd, err.Error())
	}
}

func listenUnix(path string, backlog int) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	unix.Unlink(path)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// containerStdio makes the container's stdio: pipes whose other ends the monitor keeps
// (stdout, stderr, and stdin if it stays open), /dev/null for the rest, or the console
// socket for a tty. The caller closes the returned files once the container has them;
// the first of them is /dev/null.
func (m *mon) containerStdio() (ctr [3]*os.File, closeAfter []*os.File, ok bool) {
	devnull, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		m.fail("open /dev/null: " + err.Error())
		return ctr, nil, false
	}
	closeAfter = append(closeAfter, devnull)
	ctr = [3]*os.File{devnull, devnull, devnull}
	fail := func(msg string) ([3]*os.File, []*os.File, bool) {
		for _, f := range closeAfter {
			f.Close()
		}
		m.fail(msg)
		return ctr, nil, false
	}
	if m.tty {
		if m.consFd, err = listenUnix(monitor.ConsoleSocket, 1); err != nil {
			return fail("listen on " + monitor.ConsoleSocket + ": " + err.Error())
		}
		return ctr, closeAfter, true
	}
	for i := range m.streams {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return fail("pipe: " + err.Error())
		}
		unix.SetNonblock(p[0], true)
		m.streams[i].fd = p[0]
		w := os.NewFile(uintptr(p[1]), m.streams[i].name)
		ctr[1+i] = w
		closeAfter = append(closeAfter, w)
	}
	if m.openStdin {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return fail("pipe: " + err.Error())
		}
		unix.SetNonblock(p[1], true)
		m.stdinFd = p[1]
		r := os.NewFile(uintptr(p[0]), "stdin")
		ctr[0] = r
		closeAfter = append(closeAfter, r)
	}
	return ctr, closeAfter, true
}

// startHelper runs `berth` to create and start the container, with fresh stdio for it.
func (m *mon) startHelper(kind string) {
	ctr, closeAfter, ok := m.containerStdio()
	if !ok {
		return
	}
	m.runHelper(kind, ctr, closeAfter[0])
	for _, f := range closeAfter {
		f.Close()
	}
}

// runHelper runs `berth` as the start helper with the container's stdio ctr.
func (m *mon) runHelper(kind string, ctr [3]*os.File, devnull *os.File) {
	var sp [2]int
	if err := unix.Pipe2(sp[:], unix.O_CLOEXEC); err != nil {
		m.fail("pipe: " + err.Error())
		return
	}
	statusW := os.NewFile(uintptr(sp[1]), "status")
	defer statusW.Close()
	// The helpers live for milliseconds: a garbage collection in the middle of a create
	// costs more than the memory it would free (measured: 3 ms of a 17 ms create).
	env := append(os.Environ(), monitor.HelperEnv+"="+kind, "GOGC=off")
	p, err := os.StartProcess(m.exe, []string{"berth", m.id}, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{devnull, statusW, statusW, ctr[0], ctr[1], ctr[2]},
	})
	if err != nil {
		unix.Close(sp[0])
		m.fail("start " + m.exe + ": " + err.Error())
		return
	}
	m.h = &helper{pid: p.Pid, proc: p, fd: sp[0], kind: kind}
}

// fail ends the monitor after telling the clients why the container could not start.
func (m *mon) fail(msg string) {
	logf("%s", msg)
	m.broadcastCtl(monitor.FrameStartError, []byte("125 berth-monitor: "+msg))
	m.done = true
}

func (m *mon) readHelper() {
	n, err := unix.Read(m.h.fd, m.buf[:])
	if n > 0 {
		if len(m.h.out) < 64<<10 {
			m.h.out = append(m.h.out, m.buf[:n]...)
		}
		return
	}
	if err == unix.EINTR || err == unix.EAGAIN {
		return
	}
	unix.Close(m.h.fd)
	m.h.eof = true
}

func (m *mon) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		switch {
		case m.h != nil && pid == m.h.pid:
			m.h.reaped = true
		case m.hc.pid > 0 && pid == m.hc.pid:
			m.healthDone(ws)
		case pid == m.initPid && m.initPid > 0:
			m.initExited(ws)
		case (m.spawnFd >= 0 || m.h != nil && (m.h.kind == monitor.HelperStart || m.h.kind == monitor.HelperRestart)) && len(m.reaped) < 64:
			// Perhaps the init, exited before the helper told us its pid.
			m.reaped[pid] = ws
		}
	}
}

func (m *mon) helperDone() {
	h := m.h
	m.h = nil
	if h.proc != nil {
		h.proc.Release()
	}
	out := strings.TrimSpace(string(h.out))
	switch h.kind {
	case monitor.HelperStart, monitor.HelperRestart:
		reaped := m.reaped
		m.reaped = map[int]unix.WaitStatus{}
		if rest, ok := strings.CutPrefix(out, "ok "); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil || pid <= 0 {
				m.startFailed("125 berth-monitor: helper reported a bad pid " + strconv.Quote(rest))
				return
			}
			m.started(pid, reaped)
			return
		}
		if out == "stopped" {
			m.closeStdio()
			m.broadcastCtl(monitor.FrameExit, []byte(strconv.Itoa(m.lastExit)))
			m.done = true
			return
		}
		if out == "" {
			out = "125 the start helper exited without a word"
		}
		m.startFailed(out)
	case monitor.HelperExited:
		m.broadcastCtl(monitor.FrameExit, []byte(strconv.Itoa(m.lastExit)))
		for _, c := range m.clients {
			c.closing = true
		}
		if rest, ok := strings.CutPrefix(out, "restart "); ok {
			ms, err := strconv.Atoi(strings.TrimSpace(rest))
			if err == nil {
				m.restartAt = time.Now().Add(time.Duration(ms) * time.Millisecond)
				m.waiting = true
				return
			}
		}
		switch out {
		case "removed":
			m.removed = true
		case "done":
		default:
			logf("exit helper: %s", out)
		}
		m.done = true
	}
}

// started takes over the running init; reaped holds what exited while it was started.
func (m *mon) started(pid int, reaped map[int]unix.WaitStatus) {
	m.initPid = pid
	m.healthStarted()
	m.broadcastCtl(monitor.FrameStarted, []byte(strconv.Itoa(pid)))
	if ws, ok := reaped[pid]; ok {
		m.initExited(ws)
		return
	}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		unix.CloseOnExec(fd)
		m.initFd = fd
	}
	// Not at once: a container that exits right away (run --rm true) would have us fault
	// the code of its exit straight back in.
	m.dropAt = time.Now().Add(dropTextAfter)
}

// dropTextAfter is how long a container runs before the monitor drops its code pages.
const dropTextAfter = 100 * time.Millisecond

func (m *mon) startFailed(msg string) {
	logf("start: %s", msg)
	m.closeStdio()
	m.broadcastCtl(monitor.FrameStartError, []byte(msg))
	m.done = true
}

// initExited records the exit, drains the output and runs the exit helper.
func (m *mon) initExited(ws unix.WaitStatus) {
	code := ws.ExitStatus()
	if ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	m.lastExit = code
	m.initPid = 0
	m.healthStopped()
	if m.initFd >= 0 {
		unix.Close(m.initFd)
		m.initFd = -1
	}
	for i := range m.streams {
		m.readStream(i, true)
	}
	m.closeStdio()
	line := strconv.Itoa(code) + " " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\n"
	tmp := monitor.ExitFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(line), 0o600); err != nil {
		logf("write %s: %s", tmp, err.Error())
	} else if err := os.Rename(tmp, monitor.ExitFile); err != nil {
		logf("rename %s: %s", tmp, err.Error())
	}
	for _, c := range m.clients {
		if c.hello && c.want&monitor.WantCleanup != 0 && !c.dead && !c.closing {
			m.cleaner = c
			m.send(c, monitor.FrameExited, []byte(strconv.Itoa(code)))
			return
		}
	}
	m.startExitHelper()
}

// cleaned takes the cleaner's word for the end of the run, as if from the exit helper.
func (m *mon) cleaned(out string) {
	m.cleaner = nil
	m.h = &helper{kind: monitor.HelperExited, out: []byte(out), eof: true, reaped: true}
	m.helperDone()
}

func (m *mon) startExitHelper() {
	devnull, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		logf("open /dev/null: %s", err.Error())
		m.done = true
		return
	}
	defer devnull.Close()
	var sp [2]int
	if err := unix.Pipe2(sp[:], unix.O_CLOEXEC); err != nil {
		logf("pipe: %s", err.Error())
		m.done = true
		return
	}
	w := os.NewFile(uintptr(sp[1]), "status")
	defer w.Close()
	env := append(os.Environ(), monitor.HelperEnv+"="+monitor.HelperExited, "GOGC=off")
	p, err := os.StartProcess(m.exe, []string{"berth", m.id}, &os.ProcAttr{Env: env, Files: []*os.File{devnull, w, w}})
	if err != nil {
		unix.Close(sp[0])
		logf("start exit helper %s: %s", m.exe, err.Error())
		m.broadcastCtl(monitor.FrameExit, []byte(strconv.Itoa(m.lastExit)))
		m.done = true
		return
	}
	m.h = &helper{pid: p.Pid, proc: p, fd: sp[0], kind: monitor.HelperExited}
}

// closeStdio closes whatever of the container's stdio the monitor still holds.
func (m *mon) closeStdio() {
	for i := range m.streams {
		s := &m.streams[i]
		if s.fd >= 0 {
			if s.fd != m.master {
				unix.Close(s.fd)
			}
			s.fd = -1
		}
		if len(s.part) > 0 {
			m.writeLog(s, s.part)
			s.part = s.part[:0]
		}
	}
	if m.stdinFd >= 0 && m.stdinFd != m.master {
		unix.Close(m.stdinFd)
	}
	m.stdinFd, m.stdinBuf = -1, nil
	if m.master >= 0 {
		unix.Close(m.master)
		m.master = -1
	}
	for _, fd := range []*int{&m.consFd, &m.consConn} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	unix.Unlink(monitor.ConsoleSocket)
}

// readStream copies what the container wrote to the log and the clients; with drain it
// reads until nothing is left (the init is gone) and then closes the stream.
func (m *mon) readStream(i int, drain bool) {
	s := &m.streams[i]
	for s.fd >= 0 {
		n, err := unix.Read(s.fd, m.buf[:])
		if n > 0 {
			data := m.buf[:n]
			m.logOutput(s, data)
			m.broadcast(s.typ, data)
			if !drain {
				return
			}
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			if drain {
				break
			}
			return
		}
		// End of file, or EIO from a pty master whose slave side is closed.
		if s.fd != m.master {
			unix.Close(s.fd)
		}
		s.fd = -1
	}
	if drain && len(s.part) > 0 {
		m.writeLog(s, s.part)
		s.part = s.part[:0]
	}
}

// logOutput writes complete lines to the log, keeping an unfinished one for later.
func (m *mon) logOutput(s *stream, data []byte) {
	if m.noLog {
		return
	}
	for len(data) > 0 {
		nl := -1
		for j, c := range data {
			if c == '\n' {
				nl = j
				break
			}
		}
		if nl < 0 {
			s.part = append(s.part, data...)
			for len(s.part) >= maxLine {
				m.writeLog(s, s.part[:maxLine])
				s.part = append(s.part[:0], s.part[maxLine:]...)
			}
			return
		}
		line := data[:nl+1]
		if len(s.part) > 0 {
			s.part = append(s.part, line...)
			m.writeLog(s, s.part)
			s.part = s.part[:0]
		} else {
			m.writeLog(s, line)
		}
		data = data[nl+1:]
	}
}

// writeLog appends one json-file entry: {"log":"...","stream":"stdout","time":"..."}.
func (m *mon) writeLog(s *stream, msg []byte) {
	b := append(m.lineBuf[:0], `{"log":"`...)
	b = appendJSONString(b, msg)
	b = append(b, `","stream":"`...)
	b = append(b, s.name...)
	b = append(b, `","time":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, "\"}\n"...)
	m.lineBuf = b
	if m.logMax > 0 && m.logSize > 0 && m.logSize+int64(len(b)) > m.logMax {
		m.rotate()
	}
	if m.logFd < 0 {
		return
	}
	for len(b) > 0 {
		n, err := unix.Write(m.logFd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// A full disk must not stop the container: the entry is lost, the output still
			// reaches attached clients.
			return
		}
		m.logSize += int64(n)
		b = b[n:]
	}
}

// rotate shifts NAME.1 ... NAME.(files-2) up by one, NAME to NAME.1, and starts NAME anew.
func (m *mon) rotate() {
	name := monitor.LogFile(m.id)
	if m.logFiles > 1 {
		for i := m.logFiles - 1; i >= 1; i-- {
			src := name
			if i > 1 {
				src = name + "." + strconv.Itoa(i-1)
			}
			os.Rename(src, name+"."+strconv.Itoa(i))
		}
		unix.Close(m.logFd)
		fd, err := unix.Open(name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC, 0o640)
		if err != nil {
			logf("rotate %s: %s", name, err.Error())
			m.logFd = -1
			return
		}
		m.logFd = fd
	} else if err := unix.Ftruncate(m.logFd, 0); err != nil {
		logf("truncate %s: %s", name, err.Error())
	}
	m.logSize = 0
}

const hexDigits = "0123456789abcdef"

// appendJSONString escapes s as encoding/json does: quotes, backslashes, control
// characters, <, > and &, U+2028 and U+2029; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

func (m *mon) accept() {
	for {
		fd, _, err := unix.Accept4(m.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		m.clients = append(m.clients, &client{fd: fd})
	}
}

func (m *mon) acceptConsole() {
	fd, _, err := unix.Accept4(m.consFd, unix.SOCK_CLOEXEC)
	if err != nil {
		return
	}
	unix.Close(m.consFd)
	m.consFd = -1
	unix.Unlink(monitor.ConsoleSocket)
	m.consConn = fd
}

// receiveMaster takes the pty master the container's init sends on the console socket.
func (m *mon) receiveMaster() {
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(m.consConn, m.buf[:256], oob, unix.MSG_CMSG_CLOEXEC)
	if err == unix.EINTR || err == unix.EAGAIN {
		return
	}
	unix.Close(m.consConn)
	m.consConn = -1
	if err != nil || (n == 0 && oobn == 0) {
		return
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return
	}
	m.master = fds[0]
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	unix.SetNonblock(m.master, true)
	m.streams[0].fd = m.master
	m.stdinFd = m.master
	if m.ws != nil {
		unix.IoctlSetWinsize(m.master, unix.TIOCSWINSZ, m.ws)
	}
}

func (m *mon) readClient(c *client) {
	n, err := unix.Read(c.fd, m.buf[:])
	if n <= 0 {
		if err == unix.EINTR || err == unix.EAGAIN {
			return
		}
		c.dead = true
		return
	}
	c.in = append(c.in, m.buf[:n]...)
	for {
		typ, payload, rest, ok, bad := monitor.ParseFrame(c.in)
		if bad {
			c.dead = true
			return
		}
		if !ok {
			break
		}
		m.clientFrame(c, typ, payload)
		c.in = rest
	}
	if len(c.in) == 0 {
		c.in = nil
	}
}

func (m *mon) clientFrame(c *client, typ byte, payload []byte) {
	if !c.hello {
		if typ != monitor.FrameHello || len(payload) != 1 {
			c.dead = true
			return
		}
		c.hello, c.want = true, payload[0]
		return
	}
	switch typ {
	case monitor.FrameStdin:
		if c.want&monitor.WantStdin != 0 && m.stdinFd >= 0 {
			m.stdinBuf = append(m.stdinBuf, payload...)
			m.flushStdin()
		}
	case monitor.FrameCloseStdin:
		if c.want&monitor.WantStdin != 0 && m.stdinFd >= 0 && !m.tty {
			m.flushStdin()
			unix.SetNonblock(m.stdinFd, false)
			if len(m.stdinBuf) > 0 {
				writeAll(m.stdinFd, m.stdinBuf)
			}
			unix.Close(m.stdinFd)
			m.stdinFd, m.stdinBuf = -1, nil
		}
	case monitor.FrameCleaned:
		if c == m.cleaner {
			m.cleaned(string(payload))
		}
	case monitor.FrameResize:
		if len(payload) == 4 {
			m.ws = &unix.Winsize{Row: uint16(payload[0])<<8 | uint16(payload[1]), Col: uint16(payload[2])<<8 | uint16(payload[3])}
			if m.master >= 0 {
				unix.IoctlSetWinsize(m.master, unix.TIOCSWINSZ, m.ws)
			}
		}
	}
}

func writeAll(fd int, b []byte) {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		b = b[n:]
	}
}

func (m *mon) flushStdin() {
	for len(m.stdinBuf) > 0 && m.stdinFd >= 0 {
		n, err := unix.Write(m.stdinFd, m.stdinBuf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			m.stdinBuf = nil
			return
		}
		m.stdinBuf = m.stdinBuf[n:]
	}
	if len(m.stdinBuf) == 0 {
		m.stdinBuf = nil
	}
}

func (m *mon) broadcast(typ byte, data []byte) {
	want := byte(monitor.WantStdout)
	if typ == monitor.FrameStderr {
		want = monitor.WantStderr
	}
	for _, c := range m.clients {
		if c.hello && c.want&want != 0 && !c.closing && !c.dead {
			m.send(c, typ, data)
		}
	}
}

// broadcastCtl sends a control frame to every client, whatever it asked for.
func (m *mon) broadcastCtl(typ byte, data []byte) {
	for _, c := range m.clients {
		if !c.dead {
			m.send(c, typ, data)
		}
	}
}

func (m *mon) send(c *client, typ byte, data []byte) {
	c.out = monitor.AppendFrame(c.out, typ, data)
	m.flushClient(c)
	if len(c.out) > maxPending {
		c.dead = true
	}
}

func (m *mon) flushClient(c *client) {
	for len(c.out) > 0 {
		n, err := unix.Write(c.fd, c.out)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			c.dead = true
			c.out = nil
			return
		}
		c.out = c.out[n:]
	}
	c.out = nil
}

func (m *mon) sweepClients() {
	kept := m.clients[:0]
	for _, c := range m.clients {
		if c.dead && c == m.cleaner {
			// It went away without finishing: the helper does the work.
			m.cleaner = nil
			m.startExitHelper()
		}
		if c.dead || (c.closing && len(c.out) == 0) {
			unix.Close(c.fd)
			continue
		}
		kept = append(kept, c)
	}
	for i := len(kept); i < len(m.clients); i++ {
		m.clients[i] = nil
	}
	m.clients = kept
}

// finish gives clients a moment to take their last frames, then lets go of everything.
func (m *mon) finish() {
	deadline := time.Now().Add(2 * time.Second)
	for {
		var fds []unix.PollFd
		var cs []*client
		for _, c := range m.clients {
			if !c.dead && len(c.out) > 0 {
				fds = append(fds, unix.PollFd{Fd: int32(c.fd), Events: unix.POLLOUT})
				cs = append(cs, c)
			}
		}
		left := time.Until(deadline)
		if len(fds) == 0 || left <= 0 {
			break
		}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			break
		}
		for _, c := range cs {
			m.flushClient(c)
		}
	}
	for _, c := range m.clients {
		unix.Close(c.fd)
	}
	m.closeStdio()
	unix.Close(m.lfd)
	unix.Unlink(monitor.AttachSocket)
	if m.logFd >= 0 {
		unix.Close(m.logFd)
	}
}
