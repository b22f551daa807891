package seccomp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/security/seccomp/internal/int80"
)

// The kernel tests re-exec the test binary. The child locks its thread,
// installs the profile it is given, runs named probes (raw syscalls on that
// thread) and prints their errnos as JSON, then optionally execs a command.

const (
	envMode    = "BERTH_SECCOMP_CHILD"
	envProfile = "BERTH_SECCOMP_PROFILE"
	envProbes  = "BERTH_SECCOMP_PROBES"
	envDir     = "BERTH_SECCOMP_DIR"
	envArgv    = "BERTH_SECCOMP_ARGV"
)

func TestMain(m *testing.M) {
	if os.Getenv(envMode) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

type childResult struct {
	InstallError string           `json:"installError,omitempty"`
	Probes       map[string]int64 `json:"probes"`
}

// probes return the errno (positive) or 0 on success; a few return a value
// encoded as a negative number.
var probes = map[string]func(dir string) int64{
	"mkdir": func(dir string) int64 {
		return errnoOf(unix.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "m"), 0o755))
	},
	"mkdirOtherThread": func(dir string) int64 {
		ch := make(chan int64)
		go func() {
			runtime.LockOSThread() // a thread other than the filtered one
			ch <- errnoOf(unix.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "other"), 0o755))
		}()
		return <-ch
	},
	"personality0":   func(string) int64 { return raw(unix.SYS_PERSONALITY, 0) },
	"personalityBad": func(string) int64 { return raw(unix.SYS_PERSONALITY, 0x0400000) }, // READ_IMPLIES_EXEC
	"mount": func(dir string) int64 {
		return errnoOf(unix.Mount("none", filepath.Join(dir, "does-not-exist"), "tmpfs", 0, ""))
	},
	"umount":  func(dir string) int64 { return errnoOf(unix.Unmount(filepath.Join(dir, "does-not-exist"), 0)) },
	"unshare": func(string) int64 { return raw(unix.SYS_UNSHARE, unix.CLONE_NEWUTS) },
	"keyctl": func(string) int64 {
		return raw(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(unix.KEY_SPEC_SESSION_KEYRING&0xffffffff), 0)
	},
	"reboot":     func(string) int64 { return raw(unix.SYS_REBOOT, 0, 0, 0, 0) }, // bad magic: EINVAL when allowed
	"clonePlain": func(string) int64 { return rawClone(17) },
	"cloneNS":    func(string) int64 { return rawClone(unix.CLONE_NEWUTS | 17) },
	"clone3":     func(string) int64 { return raw(unix.SYS_CLONE3, 0, 0) },
	"acct":       func(string) int64 { return raw(unix.SYS_ACCT, 0) },
	"listns":     func(string) int64 { return raw(470, 0, 0, 0) },
	"nr1000":     func(string) int64 { return raw(1000) },
	"socketVsock": func(string) int64 {
		return closeFd(raw6(unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM, 0))
	},
	"socketUnix": func(string) int64 {
		return closeFd(raw6(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM, 0))
	},
	"x32getpid":    func(string) int64 { return raw(x32Bit | 39) },
	"i386getpid":   func(string) int64 { return i386(20) },
	"i386getppid":  func(string) int64 { return i386(64) },
	"getppid":      func(string) int64 { return raw(unix.SYS_GETPPID) },
	"noNewPrivs":   func(string) int64 { return -raw6(unix.SYS_PRCTL, unix.PR_GET_NO_NEW_PRIVS, 0, 0) },
	"highNrNegOne": func(string) int64 { return raw(^uintptr(0)) },
	// benchGetppid returns minus the nanoseconds one getppid takes.
	"benchGetppid": func(string) int64 {
		const n = 200000
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, _, e := unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0); e != 0 {
				return int64(e)
			}
		}
		return -int64(time.Since(start)) / n
	},
}

func errnoOf(err error) int64 {
	if err == nil {
		return 0
	}
	if e, ok := err.(unix.Errno); ok {
		return int64(e)
	}
	return -1000
}

func raw(nr uintptr, args ...uintptr) int64 {
	var a [6]uintptr
	copy(a[:], args)
	_, _, e := unix.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return int64(e)
}

// raw6 returns the result as a negative number on success, errno on failure.
func raw6(nr, a1, a2, a3 uintptr) int64 {
	r, _, e := unix.RawSyscall(nr, a1, a2, a3)
	if e != 0 {
		return int64(e)
	}
	return -int64(r)
}

func closeFd(v int64) int64 {
	if v <= 0 {
		unix.Close(int(-v))
		return 0
	}
	return v
}

func i386(nr uintptr) int64 {
	r := int80.Syscall(nr, 0, 0, 0)
	if r < 0 {
		return int64(-r)
	}
	return 0
}

// rawClone forks with the given flags; the new process exits at once.
func rawClone(flags uintptr) int64 {
	r, _, e := unix.RawSyscall6(unix.SYS_CLONE, flags, 0, 0, 0, 0, 0)
	if e != 0 {
		return int64(e)
	}
	if r == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	var ws unix.WaitStatus
	unix.Wait4(int(r), &ws, 0, nil)
	return 0
}

func child() int {
	runtime.LockOSThread()
	res := childResult{Probes: map[string]int64{}}
	dir := os.Getenv(envDir)
	if pj := os.Getenv(envProfile); pj != "" {
		var p specs.LinuxSeccomp
		if err := json.Unmarshal([]byte(pj), &p); err != nil {
			fmt.Fprintln(os.Stderr, "child: bad profile:", err)
			return 3
		}
		f, err := Compile(&p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 3
		}
		fd, err := f.Install()
		if err != nil {
			res.InstallError = err.Error()
		} else if fd >= 0 {
			st := specs.ContainerProcessState{
				Pid:      os.Getpid(),
				Metadata: p.ListenerMetadata,
				State:    specs.State{Version: specs.Version, ID: "seccomp-test", Status: specs.StateCreating, Pid: os.Getpid()},
			}
			if err := SendListener(p.ListenerPath, fd, st); err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				return 3
			}
			unix.Close(fd)
		}
	}
	if res.InstallError == "" {
		for _, name := range strings.FieldsFunc(os.Getenv(envProbes), func(r rune) bool { return r == ',' }) {
			fn := probes[name]
			if fn == nil {
				fmt.Fprintln(os.Stderr, "child: unknown probe", name)
				return 3
			}
			res.Probes[name] = fn(dir)
		}
	}
	b, _ := json.Marshal(res)
	os.Stdout.Write(append(b, '\n'))
	if av := os.Getenv(envArgv); av != "" && res.InstallError == "" {
		var argv []string
		json.Unmarshal([]byte(av), &argv)
		err := syscall.Exec(argv[0], argv, os.Environ())
		fmt.Fprintln(os.Stderr, "child: exec:", err)
		return 4
	}
	return 0
}

type childRun struct {
	res    childResult
	stdout string // everything after the result line
	stderr string
	ws     syscall.WaitStatus
}

func runChild(t *testing.T, p *specs.LinuxSeccomp, probeNames []string, argv ...string) childRun {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: installing filters without no_new_privs needs CAP_SYS_ADMIN")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), envMode+"=1", envDir+"="+dir, envProbes+"="+strings.Join(probeNames, ","))
	if p != nil {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, envProfile+"="+string(b))
	}
	if len(argv) > 0 {
		b, _ := json.Marshal(argv)
		cmd.Env = append(cmd.Env, envArgv+"="+string(b))
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var cr childRun
	cr.stderr = errb.String()
	if cmd.ProcessState == nil {
		t.Fatalf("running child: %v", err)
	}
	cr.ws = cmd.ProcessState.Sys().(syscall.WaitStatus)
	line, rest, _ := strings.Cut(out.String(), "\n")
	cr.stdout = rest
	if line != "" {
		if err := json.Unmarshal([]byte(line), &cr.res); err != nil {
			t.Fatalf("child output %q: %v (stderr %q)", out.String(), err, cr.stderr)
		}
	}
	return cr
}

func (cr childRun) mustExit0(t *testing.T) {
	t.Helper()
	if !cr.ws.Exited() || cr.ws.ExitStatus() != 0 {
		t.Fatalf("child ended with %v (exit %d, signal %v); stderr: %s", cr.ws, cr.ws.ExitStatus(), cr.ws.Signal(), cr.stderr)
	}
	if cr.res.InstallError != "" {
		t.Fatalf("install: %s", cr.res.InstallError)
	}
}

func (cr childRun) expect(t *testing.T, want map[string]int64) {
	t.Helper()
	for k, v := range want {
		got, ok := cr.res.Probes[k]
		if !ok {
			t.Errorf("probe %s: no result", k)
		} else if got != v {
			t.Errorf("probe %s: errno %d (%v), want %d (%v)", k, got, unix.Errno(got), v, unix.Errno(v))
		}
	}
}

func keys(m map[string]int64) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return s
}

func TestKernelErrnoRet(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: uptr(38)},
			{Names: []string{"getppid"}, Action: specs.ActErrno}, // default errno is EPERM
		},
	}
	cr := runChild(t, p, []string{"mkdir", "getppid", "noNewPrivs", "mkdirOtherThread"})
	cr.mustExit0(t)
	// no_new_privs stays off: root installs the filter through CAP_SYS_ADMIN.
	// The filter covers only the thread that installed it.
	cr.expect(t, map[string]int64{"mkdir": 38, "getppid": int64(unix.EPERM), "noNewPrivs": 0, "mkdirOtherThread": 0})
}

func TestKernelArgs(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0, Op: specs.OpEqualTo}}},
			{Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EACCES)), Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0, Op: specs.OpNotEqual}}},
		},
	}
	cr := runChild(t, p, []string{"personality0", "personalityBad"})
	cr.mustExit0(t)
	cr.expect(t, map[string]int64{"personality0": 0, "personalityBad": int64(unix.EACCES)})
}

var defaultProbes = map[string]int64{
	"mount": int64(unix.EPERM), "umount": int64(unix.EPERM), "unshare": int64(unix.EPERM),
	"keyctl": int64(unix.EPERM), "reboot": int64(unix.EPERM), "cloneNS": int64(unix.EPERM),
	"clone3": int64(unix.ENOSYS), "acct": int64(unix.EPERM), "personalityBad": int64(unix.EPERM),
	"socketVsock": int64(unix.EPERM),
	// Newer than the profile, or never assigned: ENOSYS so libc falls back.
	"listns": int64(unix.ENOSYS), "nr1000": int64(unix.ENOSYS),
	"clonePlain": 0, "personality0": 0, "socketUnix": 0, "mkdir": 0, "getppid": 0,
	// A tracer's "skip this syscall" number runs nothing; the kernel says ENOSYS.
	"highNrNegOne": int64(unix.ENOSYS),
}

func TestKernelDefaultProfile(t *testing.T) {
	// Without a filter the same probes fail differently (or succeed), so the
	// errnos below come from the filter and not from the probes' arguments.
	base := runChild(t, nil, keys(defaultProbes))
	base.mustExit0(t)
	base.expect(t, map[string]int64{"mount": int64(unix.ENOENT), "reboot": int64(unix.EINVAL), "unshare": 0, "cloneNS": 0, "personalityBad": 0})

	cr := runChild(t, DefaultProfile(), keys(defaultProbes))
	cr.mustExit0(t)
	cr.expect(t, defaultProbes)
	t.Logf("default profile probes: %v", cr.res.Probes)
}

func TestKernelDefaultProfileShell(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox is required (hack/deps-security.sh installs busybox-static): %v", err)
	}
	tmp := t.TempDir()
	script := fmt.Sprintf(`set -e
cd %s
echo hello > f
cat f | tr a-z A-Z
ls
sh -c 'echo nested $((1+2))'
x=$(echo sub | wc -c); echo "count $x"
mkdir d && rmdir d && rm f
if %s unshare -u %s true 2>/dev/null; then echo unshare-allowed; else echo unshare-denied; fi
echo done`, tmp, bb, bb)
	cr := runChild(t, DefaultProfile(), nil, bb, "sh", "-c", script)
	cr.mustExit0(t)
	want := "HELLO\nf\nnested 3\ncount 4\nunshare-denied\ndone\n"
	if cr.stdout != want {
		t.Fatalf("shell under the default profile printed %q, want %q (stderr %q)", cr.stdout, want, cr.stderr)
	}
	// The same script without the filter can unshare, so "denied" above is the filter's doing.
	plain := runChild(t, nil, nil, bb, "sh", "-c", script)
	plain.mustExit0(t)
	if !strings.Contains(plain.stdout, "unshare-allowed") {
		t.Fatalf("unfiltered shell: %q", plain.stdout)
	}
}

func TestKernelArchitectures(t *testing.T) {
	allow := func(arches ...specs.Arch) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: arches,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uptr(38)}},
		}
	}
	// x32 numbers under a filter without SCMP_ARCH_X32: the process dies.
	cr := runChild(t, allow(specs.ArchX86_64), []string{"x32getpid"})
	if !cr.ws.Signaled() || cr.ws.Signal() != unix.SIGSYS {
		t.Errorf("x32 syscall without SCMP_ARCH_X32: child ended with %v, want killed by SIGSYS", cr.ws)
	}
	// With it, the syscall reaches the kernel (which lacks x32 here: ENOSYS).
	cr = runChild(t, allow(specs.ArchX86_64, specs.ArchX32), []string{"x32getpid"})
	cr.mustExit0(t)
	if e := cr.res.Probes["x32getpid"]; e != 0 && e != int64(unix.ENOSYS) {
		t.Errorf("x32 getpid with SCMP_ARCH_X32: errno %d", e)
	}
	// i386 via int 0x80.
	if runChild(t, nil, []string{"i386getpid"}).res.Probes["i386getpid"] != 0 {
		t.Skipf("kernel has no IA32 emulation (int 0x80 getpid fails without a filter)")
	}
	cr = runChild(t, allow(specs.ArchX86_64), []string{"i386getpid"})
	if !cr.ws.Signaled() || cr.ws.Signal() != unix.SIGSYS {
		t.Errorf("i386 syscall without SCMP_ARCH_X86: child ended with %v, want killed by SIGSYS", cr.ws)
	}
	cr = runChild(t, allow(specs.ArchX86_64, specs.ArchX86), []string{"i386getpid", "i386getppid", "getppid"})
	cr.mustExit0(t)
	cr.expect(t, map[string]int64{"i386getpid": 0, "i386getppid": 38, "getppid": 38})
}

func TestKernelFlags(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
	}
	cr := runChild(t, p, []string{"mkdir", "mkdirOtherThread"})
	cr.mustExit0(t)
	// TSYNC puts every thread of the process under the filter.
	cr.expect(t, map[string]int64{"mkdir": int64(unix.EPERM), "mkdirOtherThread": int64(unix.EPERM)})
}

func TestKernelInstallNeedsPrivilege(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("needs root")
	}
	// Drop CAP_SYS_ADMIN from this locked thread only (capabilities are per
	// thread), then install: the kernel refuses without no_new_privs.
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // the thread is discarded when the goroutine exits locked
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_SYS_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		f, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow})
		if err != nil {
			done <- err
			return
		}
		_, err = f.Install()
		done <- err
	}()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "no_new_privs or CAP_SYS_ADMIN") {
		t.Fatalf("Install without CAP_SYS_ADMIN and no_new_privs: %v", err)
	}
}

// seccompNotif and seccompNotifResp mirror the kernel's structs.
type seccompNotif struct {
	id    uint64
	pid   uint32
	flags uint32
	data  [64]byte
}

type seccompNotifResp struct {
	id    uint64
	val   int64
	error int32
	flags uint32
}

func TestKernelNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "listener.sock")
	l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(l) })
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 1); err != nil {
		t.Fatal(err)
	}
	p := &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     sock,
		ListenerMetadata: "meta=1",
		Flags:            []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv},
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
	type answer struct {
		st  specs.ContainerProcessState
		nr  int32
		pid uint32
		err error
	}
	ans := make(chan answer, 1)
	go func() {
		var a answer
		defer func() { ans <- a }()
		c, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if err != nil {
			a.err = err
			return
		}
		defer unix.Close(c)
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := unix.Recvmsg(c, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			a.err = err
			return
		}
		if err := json.Unmarshal(buf[:n], &a.st); err != nil {
			a.err = fmt.Errorf("state %q: %w", buf[:n], err)
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			a.err = fmt.Errorf("control messages %v: %v", msgs, err)
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			a.err = fmt.Errorf("rights %v: %v", fds, err)
			return
		}
		defer unix.Close(fds[0])
		var req seccompNotif
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fds[0]), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); e != 0 {
			a.err = fmt.Errorf("NOTIF_RECV: %w", e)
			return
		}
		a.nr, a.pid = int32(req.data[0])|int32(req.data[1])<<8, req.pid
		resp := seccompNotifResp{id: req.id, error: -int32(unix.EXDEV)}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fds[0]), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp))); e != 0 {
			a.err = fmt.Errorf("NOTIF_SEND: %w", e)
		}
	}()
	cr := runChild(t, p, []string{"mkdir"})
	a := <-ans
	if a.err != nil {
		t.Fatalf("listener side: %v", a.err)
	}
	cr.mustExit0(t)
	// The supervisor's answer is what the container sees.
	cr.expect(t, map[string]int64{"mkdir": int64(unix.EXDEV)})
	if a.nr != unix.SYS_MKDIRAT {
		t.Errorf("notification for syscall %d, want mkdirat (%d)", a.nr, unix.SYS_MKDIRAT)
	}
	if a.st.Version != specs.Version || len(a.st.Fds) != 1 || a.st.Fds[0] != "seccompFd" || a.st.Metadata != "meta=1" ||
		a.st.Pid == 0 || a.st.Pid != int(a.pid) || a.st.State.ID != "seccomp-test" {
		t.Errorf("container process state %+v (notification pid %d)", a.st, a.pid)
	}
}

// TestKernelFilterCost measures what the default profile adds to a cheap
// syscall (logged for the report); the bound only catches a pathological
// program.
func TestKernelFilterCost(t *testing.T) {
	base := runChild(t, nil, []string{"benchGetppid"})
	base.mustExit0(t)
	cr := runChild(t, DefaultProfile(), []string{"benchGetppid"})
	cr.mustExit0(t)
	b, f := -base.res.Probes["benchGetppid"], -cr.res.Probes["benchGetppid"]
	if b <= 0 || f <= 0 {
		t.Fatalf("getppid loop failed: unfiltered %d, filtered %d (negative means errno)", -b, -f)
	}
	t.Logf("getppid: %d ns unfiltered, %d ns under the default profile", b, f)
	if f > 20000 {
		t.Fatalf("getppid takes %d ns under the default profile", f)
	}
}
