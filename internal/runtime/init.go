package runtime

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/berth-containers/berth/internal/rootfs"
	"github.com/berth-containers/berth/internal/security"
	"github.com/berth-containers/berth/internal/security/landlock"
	"github.com/berth-containers/berth/internal/security/lsm"
	"github.com/berth-containers/berth/internal/security/seccomp"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// IsInit tells whether this process was started as a container's init.
func IsInit() bool { return os.Getenv("_BERTH_INITPIPE") != "" }

// InitMain is the Go half of a container's init. The binary's main calls it first thing
// when IsInit is true. It never returns: it execs the user's program or exits. A container
// whose setup the C init runs as a plan (plan.go) never gets here; InitMain serves exec and
// the configurations planFallback names.
func InitMain() {
	goruntime.LockOSThread()
	fd, err := strconv.Atoi(os.Getenv("_BERTH_INITPIPE"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth init: bad _BERTH_INITPIPE: %v\n", err)
		os.Exit(1)
	}
	os.Unsetenv("_BERTH_INITPIPE")
	sock := os.NewFile(uintptr(fd), "init-socket")
	in := &initProcess{sock: sock}
	err = in.run()
	// run returns only on failure; before `start` the parent reports it, after it the
	// container's stderr is the only place left.
	if in.ready {
		fmt.Fprintf(os.Stderr, "berth init: %v\n", err)
		os.Exit(127)
	}
	writeFrame(sock, initReply{Error: err.Error(), Warnings: in.warnings})
	os.Exit(1)
}

type initProcess struct {
	sock     *os.File
	cfg      initConfig
	warnings []string
	ready    bool
}

func (in *initProcess) run() error {
	// Until exec, no process in the container may open our /proc files (exe, mem, fds).
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE: %w", err)
	}
	if err := readFrame(in.sock, &in.cfg); err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	if in.cfg.Exec {
		p := in.cfg.Spec.Process
		if err := lsm.ApplyProcessLabel(p.ApparmorProfile, p.SelinuxLabel); err != nil {
			return err
		}
		if p.Terminal {
			root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			_, err = in.openConsole(root)
			root.Close()
			if err != nil {
				return fmt.Errorf("console: %w", err)
			}
		}
	} else if err := in.setupContainer(); err != nil {
		return err
	}
	return in.startProcess()
}

// setupContainer builds the new container: keyring, sysctls, hostname, rootfs, and the switch
// of root. An exec'd process finds all of this done.
func (in *initProcess) setupContainer() error {
	spec := in.cfg.Spec
	proc := spec.Process
	if !in.cfg.NoNewKeyring {
		// A fresh session keyring, so the container can't read the host's keys.
		if _, err := unix.KeyctlJoinSessionKeyring("_ses." + in.cfg.ID); err != nil && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("join a new session keyring: %w", err)
		}
	}
	// LSM labels apply at the next execve, which is the user's program; set through the
	// host's /proc before pivot_root.
	if err := lsm.ApplyProcessLabel(proc.ApparmorProfile, proc.SelinuxLabel); err != nil {
		return err
	}
	// Sysctls go through the host's /proc before pivot_root: /proc/sys shows the namespaces
	// of the writer, and nothing in the image can redirect these writes.
	for k, v := range spec.Linux.Sysctl {
		if err := writeSysctl(k, v); err != nil {
			return err
		}
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname %q: %w", spec.Hostname, err)
		}
	}
	if in.cfg.Creates&unix.CLONE_NEWNET != 0 && spec.Annotations[AnnotationLoopback] == "up" {
		if err := LoopbackUp(); err != nil {
			return err
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("setdomainname %q: %w", spec.Domainname, err)
		}
	}

	overlay, err := rootfsOverlay(spec, false)
	if err != nil {
		return err
	}
	rcfg := &rootfs.Config{
		Rootfs:        in.cfg.Rootfs,
		Overlay:       overlay,
		Bundle:        in.cfg.Bundle,
		Mounts:        spec.Mounts,
		Propagation:   spec.Linux.RootfsPropagation,
		Readonly:      spec.Root.Readonly,
		Devices:       spec.Linux.Devices,
		MaskedPaths:   spec.Linux.MaskedPaths,
		ReadonlyPaths: spec.Linux.ReadonlyPaths,
		UserNS:        in.cfg.UserNS,
		NewNetNS:      in.cfg.Creates&unix.CLONE_NEWNET != 0,
		NewCgroupNS:   in.cfg.Creates&unix.CLONE_NEWCGROUP != 0,
		CgroupPaths:   in.cfg.CgroupPaths,
		IDMapped:      in.cfg.IDMapped,
	}
	if proc.Terminal {
		rcfg.OpenConsole = in.openConsole
	}
	root, err := rootfs.Prepare(rcfg)
	if err != nil {
		return err
	}
	if spec.Hooks != nil {
		// In the container's namespaces, before pivot_root, as the spec orders.
		if err := runHooks("createContainer", spec.Hooks.CreateContainer, in.state(specs.StateCreating)); err != nil {
			root.Close()
			return err
		}
	}
	return root.Finish(in.cfg.NoPivot)
}

func (in *initProcess) state(status specs.ContainerState) specs.State {
	return hookState(in.cfg.ID, status, in.cfg.HostPid, in.cfg.Bundle, in.cfg.Spec.Annotations)
}

// startProcess applies the process's limits and privileges and execs it: at once for an
// exec'd process, after `start` for a container's init.
func (in *initProcess) startProcess() error {
	spec := in.cfg.Spec
	proc := spec.Process
	for _, rl := range proc.Rlimits {
		if err := setRlimit(rl); err != nil {
			return err
		}
	}
	if err := security.Personality(spec.Linux.Personality); err != nil {
		return err
	}
	caps, err := security.ParseCaps(proc.Capabilities)
	if err != nil {
		return err
	}
	path, err := lookPath(proc.Args[0], proc.Env)
	if err != nil {
		return err
	}
	// Every descriptor past stdio and the preserved ones closes at exec: nothing of the
	// runtime's reaches the container (CVE-2024-21626).
	if err := unix.CloseRange(uint(3+in.cfg.PreserveFDs), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	cwdErr := enterCwd(proc.Cwd)
	ll, err := landlock.FromAnnotations(spec.Annotations)
	if err != nil {
		return err
	}
	if ll != nil {
		// Needs CAP_SYS_ADMIN (or no_new_privs), which the init still has here.
		if _, err := ll.Apply(); err != nil {
			return fmt.Errorf("annotation %s: %w", landlock.Annotation, err)
		}
	}
	// seccomp goes in as late as it can: right before execve when no_new_privs allows it
	// without privileges; otherwise while CAP_SYS_ADMIN is still held (so the profile must
	// allow the credential calls that follow, as Docker's does); and before ready when the
	// listener fd must reach the parent.
	var filter *seccomp.Filter
	if in.cfg.Seccomp != nil {
		if filter, err = in.cfg.Seccomp.filter(); err != nil {
			return err
		}
	}
	late := filter != nil && proc.NoNewPrivileges && !in.cfg.Seccomp.Notify
	if filter != nil && !proc.NoNewPrivileges {
		if err := in.installSeccomp(filter); err != nil {
			return err
		}
	}
	if err := caps.DropBounding(); err != nil {
		return err
	}
	if err := security.SetUser(proc.User); err != nil {
		return fmt.Errorf("process.user: %w", err)
	}
	if cwdErr != nil {
		// The directory may be readable only by the container's user.
		if err := enterCwd(proc.Cwd); err != nil {
			return err
		}
	}
	if err := caps.Apply(); err != nil {
		return err
	}
	in.warnings = append(in.warnings, caps.Warnings...)
	if proc.NoNewPrivileges {
		if err := security.NoNewPrivs(); err != nil {
			return err
		}
		if filter != nil && in.cfg.Seccomp.Notify {
			if err := in.installSeccomp(filter); err != nil {
				return err
			}
		}
	}

	if in.cfg.Exec {
		if len(in.warnings) > 0 {
			if err := writeFrame(in.sock, initReply{Warnings: in.warnings}); err != nil {
				return fmt.Errorf("report warnings: %w", err)
			}
		}
	} else {
		if err := writeFrame(in.sock, initReply{Warnings: in.warnings}); err != nil {
			return fmt.Errorf("report ready: %w", err)
		}
		in.ready = true
		fifo := os.NewFile(uintptr(in.cfg.FifoFD), "exec.fifo")
		var b [1]byte
		for {
			_, err := unix.Read(int(fifo.Fd()), b[:])
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return fmt.Errorf("wait for start on exec.fifo: %w", err)
			}
			break
		}
	}
	if h := spec.Hooks; h != nil && !in.cfg.Exec {
		// After start, inside the container, before the user's program.
		if err := runHooks("startContainer", h.StartContainer, in.state(specs.StateCreated)); err != nil {
			return err
		}
	}
	if late {
		if _, err := filter.Install(); err != nil {
			return fmt.Errorf("linux.seccomp: %w", err)
		}
	}
	// Signals Go blocked on this thread must not stay blocked in the user's program.
	var none unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &none, nil); err != nil {
		return fmt.Errorf("reset signal mask: %w", err)
	}
	if err := unix.Exec(path, proc.Args, proc.Env); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// installSeccomp loads the filter before ready; a listener fd goes to the parent, which
// forwards it to listenerPath (the init can no longer reach host paths).
func (in *initProcess) installSeccomp(f *seccomp.Filter) error {
	fd, err := f.Install()
	if err != nil {
		return fmt.Errorf("linux.seccomp: %w", err)
	}
	if fd < 0 {
		return nil
	}
	defer unix.Close(fd)
	b, err := json.Marshal(initReply{Listener: true})
	if err != nil {
		return err
	}
	frame := append(binary.NativeEndian.AppendUint32(nil, uint32(len(b))), b...)
	if err := unix.Sendmsg(int(in.sock.Fd()), frame, unix.UnixRights(fd), nil, 0); err != nil {
		return fmt.Errorf("send the seccomp listener to the runtime: %w", err)
	}
	return nil
}

// enterCwd changes into the container's working directory and makes sure it is inside the
// container's root: a cwd such as /proc/self/fd/N must not reach the host.
func enterCwd(cwd string) error {
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("process.cwd %s: %w", cwd, err)
	}
	got, err := unix.Getwd()
	if err != nil || !strings.HasPrefix(got, "/") {
		return fmt.Errorf("process.cwd %s resolves outside the container's root", cwd)
	}
	return nil
}

// openConsole makes the container's pty in its own devpts, sends the master to the console
// socket, and makes the slave the init's controlling terminal and stdio.
func (in *initProcess) openConsole(root *os.File) (string, error) {
	ptmx, err := pathrs.OpenatInRoot(root, "/dev/pts/ptmx")
	if err != nil {
		return "", fmt.Errorf("find /dev/pts/ptmx (is devpts mounted with newinstance?): %w", err)
	}
	master, err := pathrs.Reopen(ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	ptmx.Close()
	if err != nil {
		return "", fmt.Errorf("open /dev/pts/ptmx: %w", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return "", fmt.Errorf("unlock pty: %w", err)
	}
	// TIOCGPTPEER's argument is the slave's open flags.
	r1, _, errno := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return "", fmt.Errorf("open pty peer: %w", errno)
	}
	sfd := int(r1)
	if cs := in.cfg.Spec.Process.ConsoleSize; cs != nil {
		ws := &unix.Winsize{Row: uint16(cs.Height), Col: uint16(cs.Width)}
		if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws); err != nil {
			return "", fmt.Errorf("set console size: %w", err)
		}
	}
	oob := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(in.cfg.ConsoleFD, []byte("/dev/pts/ptmx"), oob, nil, 0); err != nil {
		return "", fmt.Errorf("send pty master to the console socket: %w", err)
	}
	unix.Close(in.cfg.ConsoleFD)
	if _, err := unix.Setsid(); err != nil {
		return "", fmt.Errorf("setsid: %w", err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(sfd, i, 0); err != nil {
			return "", fmt.Errorf("dup pty onto fd %d: %w", i, err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return "", fmt.Errorf("set controlling terminal: %w", err)
	}
	unix.CloseOnExec(sfd)
	return fmt.Sprintf("/proc/self/fd/%d", sfd), nil
}

func writeSysctl(key, value string) error {
	rel := "sys/" + strings.ReplaceAll(key, ".", "/")
	proc, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("linux.sysctl %s: open /proc: %w", key, err)
	}
	defer unix.Close(proc)
	fd, err := unix.Openat2(proc, rel, &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_CLOEXEC | unix.O_TRUNC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return fmt.Errorf("linux.sysctl %s: open /proc/%s: %w", key, rel, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("linux.sysctl %s=%q: %w", key, value, err)
	}
	return nil
}

var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC,
	"RLIMIT_RSS": unix.RLIMIT_RSS, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

func setRlimit(rl specs.POSIXRlimit) error {
	res := rlimitNames[rl.Type]
	var cur unix.Rlimit
	if err := unix.Prlimit(0, res, nil, &cur); err != nil {
		return fmt.Errorf("process.rlimits %s: read current limit: %w", rl.Type, err)
	}
	if err := unix.Prlimit(0, res, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}, nil); err != nil {
		if errors.Is(err, unix.EPERM) && rl.Hard > cur.Max {
			return fmt.Errorf("process.rlimits %s: hard limit %d is above the runtime's own (%d), and raising it needs CAP_SYS_RESOURCE, which this runtime does not have: %w",
				rl.Type, rl.Hard, cur.Max, err)
		}
		return fmt.Errorf("process.rlimits %s: setrlimit soft %d hard %d: %w", rl.Type, rl.Soft, rl.Hard, err)
	}
	return nil
}

// lookPath finds the program inside the container (after pivot_root), with the PATH of
// the process's environment, so a missing program is reported by create.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			return "", fmt.Errorf("process.args[0] %s: %w", name, err)
		}
		return name, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("process.args[0] %q: executable file not found in $PATH (%s) inside the container", name, pathEnv)
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return errors.New("is not executable")
	}
	return nil
}

// LoopbackUp sets lo up in the calling thread's network namespace (AnnotationLoopback; the
// engine's loUpIn for another runtime's container), with the ioctls that need no netlink.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set lo up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: SIOCSIFFLAGS: %w", err)
	}
	return nil
}
