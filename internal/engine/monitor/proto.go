// Package monitor is what berth-monitor, the engine and its clients agree on: the frames on
// a container's attach socket, the helper commands the monitor runs, and the files it keeps
// in the container's directory.
//
// It imports nothing but the standard library's smallest packages, because berth-monitor
// links it and must stay small: one monitor runs per container for its whole life.
package monitor

// Frames are a type byte, a 4-byte big-endian payload length, and the payload.
const (
	// Monitor to client.
	FrameStdout     = 'o' // container output
	FrameStderr     = 'e'
	FrameStarted    = 's' // payload: the init's pid in decimal
	FrameStartError = 'E' // payload: "CODE message", CODE being Docker's 125, 126 or 127
	FrameExit       = 'x' // payload: the exit code in decimal; sent once cleanup is done
	// FrameExited offers the cleanup of a run to a client that said WantCleanup (a
	// foreground `run`, already loaded and waiting): payload the exit code. The client
	// answers FrameCleaned when it has done what the exit helper would have, or goes away,
	// and the monitor then runs the helper itself.
	FrameExited = 'X'

	// Client to monitor.
	FrameHello      = 'h' // payload: one byte of Want flags; must come first
	FrameStdin      = 'i'
	FrameCloseStdin = 'c' // the client's input ended: close the container's stdin
	FrameResize     = 'w' // payload: rows and columns, 2 bytes each, big-endian
	FrameCleaned    = 'C' // payload: what the exit helper would have printed
)

// Want flags of the hello frame: which streams the client wants.
const (
	WantStdout = 1 << iota
	WantStderr
	WantStdin
	WantCleanup
)

// HeaderSize is the length of a frame header; MaxFrame bounds a payload.
const (
	HeaderSize = 5
	MaxFrame   = 1 << 20
)

// AppendFrame appends one frame to b.
func AppendFrame(b []byte, typ byte, payload []byte) []byte {
	n := len(payload)
	b = append(b, typ, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(b, payload...)
}

// ParseFrame splits the first frame off b. ok is false while b holds less than a frame;
// bad is true when the header announces a payload over MaxFrame.
func ParseFrame(b []byte) (typ byte, payload, rest []byte, ok, bad bool) {
	if len(b) < HeaderSize {
		return 0, nil, b, false, false
	}
	n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
	if n < 0 || n > MaxFrame {
		return 0, nil, b, false, true
	}
	if len(b) < HeaderSize+n {
		return 0, nil, b, false, false
	}
	return b[0], b[HeaderSize : HeaderSize+n], b[HeaderSize+n:], true, false
}

// The monitor runs the berth binary with HelperEnv set to one of these, the container id as
// its only argument, the status pipe as stdout and stderr, and (for start) the container's
// stdin, stdout and stderr as descriptors 3, 4 and 5. A start helper prints "ok PID" or
// "stopped" (a restart found the container stopped by the user), anything else being an
// error ("CODE message"); an exited helper prints "restart MILLISECONDS", "done" or
// "removed" (done, and an --rm container removed: see RemovedPfx).
const (
	HelperEnv     = "_BERTH_HELPER"
	HelperStart   = "start"
	HelperRestart = "restart"
	HelperExited  = "exited"
)

// RemovedPfx begins the name of a removed container's directory whose files remain to be
// deleted. An --rm container's run ends with its record, snapshot, cgroups, mounts and
// name gone, and its directory (with its snapshot's upper and work directories moved into
// it) renamed to RemovedPfx+ID; the exited helper then says "removed" and the monitor,
// whose working directory it is, deletes it on its way out, under the directory's lock.
// A berth listing deletes one that no process holds (a monitor killed first).
const RemovedPfx = ".removed-"

// The spawn socket (berth-monitor's spawn-fd, SOCK_SEQPACKET): the berth command that
// starts a container drives the runtime's create itself, and the monitor forks the init
// for it so that the init is the monitor's child. Each packet is a type byte and a payload.
const (
	// Monitor to berth.
	SpawnReady = 'K' // the container's stdio (or console socket) is made
	SpawnPid   = 'P' // payload: the pid of the process just forked
	SpawnError = 'E' // payload: why the fork failed
	// Berth to monitor.
	// SpawnInit asks for a fork: payload "CG\0ARGC\0ARGV...\0ENV..." fields separated by
	// NUL, CG "1" when a cgroup descriptor follows the executable's; the descriptors
	// (SCM_RIGHTS) are the executable, the cgroup if any, then the child's from 3 on. Its
	// stdio is the monitor's.
	SpawnInit    = 'S'
	SpawnCreated = 'C' // payload: the init's pid, created and recorded
	SpawnStarted = 'R' // payload: the init's pid, started and recorded as running
	SpawnFailed  = 'F' // payload: "CODE message", as a start helper's error; torn down
	// SpawnArgs gives a monitor started with LateArgs the rest of its command line:
	// payload the arguments after the container id, NUL-separated. It is the first
	// message; end of file instead means berth gave the start up.
	SpawnArgs = 'A'
	// SpawnMaxFDs bounds the descriptors of one SpawnInit.
	SpawnMaxFDs = 32
)

// PtyHoldName is berth-monitor's argv[0] when it holds the terminal of a detached `exec
// -it` (descriptor 3, the pty master) until its processes are gone.
const PtyHoldName = "berth-pty-hold"

// Files in the container's directory. The monitor runs with that directory as its working
// directory and names them relative to it, so socket paths stay short.
const (
	AttachSocket  = "attach.sock"
	ConsoleSocket = "console.sock"
	// ExitFile is written by the monitor, atomically, as soon as the init is reaped:
	// "CODE UNIX-NANOSECONDS\n".
	ExitFile = "exit"
	// MonitorLog receives the monitor's own errors.
	MonitorLog = "monitor.log"
)

// LogFile is the name of a container's json-file log, Docker's.
func LogFile(id string) string { return id + "-json.log" }

// LateArgs, as a monitor's third argument (followed by spawn-fd=N and client-fd=N), has it
// wait for the rest of its arguments on the spawn socket (SpawnArgs): berth starts it
// before the container's options are known, while the command line is parsed. A
// client-fd the late arguments do not name is closed.
const LateArgs = "later"
