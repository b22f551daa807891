package nsenter

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// These tests run the plan interpreter (plan.c) in a re-exec of the test binary, which
// carries the constructor, with no namespaces to make: they check what it does with good and
// malformed plans, not the mounts (tests/integration runs those in real containers).

type op struct {
	code uint32
	ints []uint64
	strs []string
}

func encode(ops []op) []byte {
	body := make([]byte, 4)
	for _, o := range ops {
		start := len(body)
		body = binary.NativeEndian.AppendUint32(body, o.code)
		body = binary.NativeEndian.AppendUint32(body, 0)
		body = binary.NativeEndian.AppendUint32(body, uint32(len(o.ints)))
		body = binary.NativeEndian.AppendUint32(body, uint32(len(o.strs)))
		for _, v := range o.ints {
			body = binary.NativeEndian.AppendUint64(body, v)
		}
		for _, s := range o.strs {
			body = binary.NativeEndian.AppendUint32(body, uint32(len(s)))
			body = append(append(body, s...), 0)
		}
		binary.NativeEndian.PutUint32(body[start+4:], uint32(len(body)-start-8))
	}
	binary.NativeEndian.PutUint32(body, uint32(len(body)-4))
	return body
}

type outcome struct {
	tag    byte
	op     int32
	errno  unix.Errno
	ctx    string
	stdout string
	exit   int
}

// runPlan starts the interpreter, sends frame as its plan and returns what it answered.
func runPlan(t *testing.T, frame []byte) outcome {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent := os.NewFile(uintptr(fds[0]), "parent")
	child := os.NewFile(uintptr(fds[1]), "child")
	defer parent.Close()
	var stdout bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{"_BERTH_INITPIPE=3"}
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	// The namespace stage: nothing to create or join, then "a plan follows".
	boot := binary.NativeEndian.AppendUint32(nil, 20)
	boot = binary.NativeEndian.AppendUint32(boot, 1) // clone flags
	boot = binary.NativeEndian.AppendUint32(boot, 4)
	boot = binary.NativeEndian.AppendUint32(boot, 0)
	boot = binary.NativeEndian.AppendUint32(boot, 4) // plan
	boot = binary.NativeEndian.AppendUint32(boot, 0)
	if _, err := parent.Write(boot); err != nil {
		t.Fatal(err)
	}
	var tag [1]byte
	var pid int32
	if _, err := io.ReadFull(parent, tag[:]); err != nil || tag[0] != 'P' {
		t.Fatalf("namespace stage: %q %v", tag, err)
	}
	binary.Read(parent, binary.NativeEndian, &pid)
	if int(pid) != cmd.Process.Pid {
		t.Errorf("the init reported pid %d, is %d", pid, cmd.Process.Pid)
	}
	if _, err := parent.Write(frame); err != nil {
		t.Fatal(err)
	}
	var o outcome
	if _, err := io.ReadFull(parent, tag[:]); err == nil {
		o.tag = tag[0]
		switch o.tag {
		case 'F':
			var hdr struct {
				Op, Errno int32
				Len       uint32
			}
			binary.Read(parent, binary.NativeEndian, &hdr)
			ctx := make([]byte, hdr.Len)
			io.ReadFull(parent, ctx)
			o.op, o.errno, o.ctx = hdr.Op, unix.Errno(hdr.Errno), string(ctx)
		case 'R':
			var missing uint64
			binary.Read(parent, binary.NativeEndian, &missing)
		}
	}
	cmd.Wait()
	o.stdout, o.exit = stdout.String(), cmd.ProcessState.ExitCode()
	return o
}

const (
	opLookPath   = 17
	opCloseRange = 18
	opChdir      = 19
	opReady      = 26
	opExec       = 28
)

func TestPlanRunsAndExecs(t *testing.T) {
	o := runPlan(t, encode([]op{
		{opLookPath, nil, []string{"echo", "/nonexistent:" + "/usr/bin:/bin"}},
		{opCloseRange, []uint64{3}, nil},
		{opChdir, []uint64{0}, []string{"/"}},
		{opReady, nil, nil},
		{opExec, []uint64{2}, []string{"echo", "hello from the plan", "A=1"}},
	}))
	if o.tag != 'R' || o.exit != 0 || o.stdout != "hello from the plan\n" {
		t.Errorf("got tag %q exit %d stdout %q (ctx %q); want ready, then echo's output", o.tag, o.exit, o.stdout, o.ctx)
	}
}

func TestPlanReportsTheFailingOperation(t *testing.T) {
	for _, c := range []struct {
		name  string
		ops   []op
		op    int32
		errno unix.Errno
		ctx   string
	}{
		{"missing program", []op{{opCloseRange, []uint64{3}, nil}, {opLookPath, nil, []string{"nosuch-berth", "/bin"}}}, 1, unix.ENOENT, "not found"},
		{"cwd", []op{{opChdir, []uint64{0}, []string{"/nonexistent"}}, {opChdir, []uint64{1}, []string{"/nonexistent"}}}, 1, unix.ENOENT, "chdir /nonexistent"},
		{"no exec", []op{{opReady - 1, nil, nil}}, -1, unix.EINVAL, "ended without an exec"},
		{"unknown op", []op{{opChdir, []uint64{0}, []string{"/"}}, {99, nil, nil}}, 1, unix.EINVAL, "unknown operation 99"},
		{"bad shape", []op{{opExec, nil, []string{"x"}}}, 0, unix.EINVAL, "0 ints"},
		{"exec argc", []op{{opExec, []uint64{3}, []string{"x"}}}, 0, unix.EINVAL, "exec with 3 arguments"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := runPlan(t, encode(c.ops))
			if o.tag != 'F' || o.op != c.op || o.errno != c.errno || !strings.Contains(o.ctx, c.ctx) || o.exit != 1 {
				t.Errorf("got %q op %d errno %v ctx %q exit %d; want F op %d errno %v ctx with %q, exit 1",
					o.tag, o.op, o.errno, o.ctx, o.exit, c.op, c.errno, c.ctx)
			}
		})
	}
}

func TestPlanRefusesMalformedFrames(t *testing.T) {
	good := encode([]op{{opChdir, []uint64{0}, []string{"/"}}})
	for name, frame := range map[string][]byte{
		"truncated header": append(binary.NativeEndian.AppendUint32(nil, 6), 1, 2, 3, 4, 5, 6),
		"length overrun": func() []byte {
			b := bytes.Clone(good)
			binary.NativeEndian.PutUint32(b[8:], 1000)
			return b
		}(),
		"string without NUL": func() []byte {
			b := bytes.Clone(good)
			b[len(b)-1] = 'x'
			return b
		}(),
		"string overrun": func() []byte {
			b := bytes.Clone(good)
			binary.NativeEndian.PutUint32(b[len(b)-6:], 50)
			return b
		}(),
		"NUL in a path": encode([]op{{opChdir, []uint64{0}, []string{"/tmp\x00/../etc"}}}),
		"too many strings": func() []byte {
			b := bytes.Clone(good)
			binary.NativeEndian.PutUint32(b[16:], 1<<30)
			return b
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			o := runPlan(t, frame)
			if o.tag != 'F' || o.errno != unix.EINVAL || !strings.HasPrefix(o.ctx, "plan") || o.exit != 1 {
				t.Errorf("got %q errno %v ctx %q exit %d; want a refusal of the plan", o.tag, o.errno, o.ctx, o.exit)
			}
		})
	}
}
