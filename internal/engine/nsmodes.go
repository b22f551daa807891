package engine

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// --pid, --ipc and --uts, as Docker has them. The record keeps the mode as given
// (HostConfig.PidMode, IpcMode, UTSMode); each start resolves it anew: "host" leaves the
// namespace out of the OCI config (the init stays in the engine's, which is the host's),
// "container:NAME" joins the namespace of NAME's init by its /proc/PID/ns path, as
// --network container:NAME does, so a restart joins whatever NAME runs now. IPC modes
// also decide /dev/shm: "private" (the default) keeps the runtime's tmpfs inside the
// container; "shareable" mounts a tmpfs in the container's directory on the host, which
// its joiners bind-mount too (a tmpfs in another container's mount namespace cannot be
// bind-mounted from ours); "host" binds the host's /dev/shm; "none" has no /dev/shm.

// Names of the IPC modes.
const (
	ipcPrivate   = "private"
	ipcShareable = "shareable"
	ipcHost      = "host"
	ipcNone      = "none"
)

// shmDir is the shareable IPC mode's /dev/shm, in the container's directory.
const shmDir = "shm"

// maxIPCHops bounds a chain of --ipc container:X whose X is itself a joiner.
const maxIPCHops = 8

// nsModes is what a start resolved the modes to; nsModes.apply puts it in the spec.
type nsModes struct {
	hostPID, hostIPC, hostUTS bool
	// pidPath and ipcPath are namespaces to join (container:NAME).
	pidPath, ipcPath string
	// shm is a host directory bind-mounted at /dev/shm instead of the runtime's tmpfs;
	// noShm drops /dev/shm (--ipc none).
	shm   string
	noShm bool
}

// checkNsModes validates the modes at create and fills in Docker's defaults. With
// --uts host the container's hostname is the host's (as with --network host), so -h is
// refused, as Docker refuses it.
func checkNsModes(hc *HostConfig, cfg *ContainerConfig, rootless bool) error {
	switch {
	case hc.PidMode == "", hc.PidMode == "host":
	case strings.HasPrefix(hc.PidMode, "container:"):
		if strings.TrimPrefix(hc.PidMode, "container:") == "" {
			return usagef("invalid --pid %q: the container name is missing", hc.PidMode)
		}
	default:
		return usagef("invalid --pid %q: use host or container:<name|id>", hc.PidMode)
	}
	if hc.IpcMode == "" {
		hc.IpcMode = ipcPrivate
	}
	switch {
	case hc.IpcMode == ipcPrivate, hc.IpcMode == ipcShareable, hc.IpcMode == ipcHost, hc.IpcMode == ipcNone:
	case strings.HasPrefix(hc.IpcMode, "container:"):
		if strings.TrimPrefix(hc.IpcMode, "container:") == "" {
			return usagef("invalid --ipc %q: the container name is missing", hc.IpcMode)
		}
	default:
		return usagef("invalid --ipc %q: use private, shareable, host, none or container:<name|id>", hc.IpcMode)
	}
	switch hc.UTSMode {
	case "", "host":
	default:
		return usagef("invalid --uts %q: use host", hc.UTSMode)
	}
	if hc.UTSMode == "host" && cfg.Hostname != "" {
		return usagef("conflicting options: hostname and the UTS mode")
	}
	if hc.PidMode == "host" && hc.UsernsMode == "auto" {
		// The host's pid namespace belongs to the initial user namespace: the container's
		// root could not mount /proc for it, and would see every host process.
		return usagef("cannot share the host PID namespace when user namespaces are enabled (--userns=auto); use --userns=host")
	}
	if strings.HasPrefix(hc.PidMode, "container:") && hc.UsernsMode == "auto" {
		// Docker joins the donor's user namespace too; a container with a range of its
		// own cannot, and /proc of a pid namespace that another user namespace owns cannot
		// be mounted.
		return usagef("--pid %s cannot be combined with --userns=auto: the container would need the user namespace of the one it joins", hc.PidMode)
	}
	if rootless {
		if hc.PidMode == "host" {
			return usagef("--pid host is not available rootless: the host's pid namespace belongs to root's user namespace, and its /proc cannot be mounted from yours")
		}
		// --uts host needs nothing of root: the init just makes no UTS namespace.
		for _, m := range []struct{ flag, mode string }{{"--pid", hc.PidMode}, {"--ipc", hc.IpcMode}} {
			if strings.HasPrefix(m.mode, "container:") || m.mode == ipcHost || m.mode == ipcShareable {
				return usagef("%s %s is not supported rootless yet", m.flag, m.mode)
			}
		}
	}
	if hc.UTSMode == "host" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--uts host: the host's name: %w", err)
		}
		cfg.Hostname = h
	}
	return nil
}

// resolveNsModes resolves the modes of c for this start. A shareable container's /dev/shm
// is mounted here, in its directory l, and released by teardown (releaseShm).
func (e *Engine) resolveNsModes(l *lockedDir, c *Container) (nsModes, error) {
	hc := &c.HostConfig
	var m nsModes
	m.hostUTS = hc.UTSMode == "host"
	switch {
	case hc.PidMode == "host":
		m.hostPID = true
	case strings.HasPrefix(hc.PidMode, "container:"):
		target := strings.TrimPrefix(hc.PidMode, "container:")
		tc, tst, err := e.peer(target)
		if err != nil {
			return m, fmt.Errorf("cannot join PID of a non running container: %s: %w", target, err)
		}
		if tc.ID == c.ID {
			return m, usagef("--pid container:%s: a container cannot join its own pid namespace", target)
		}
		if !runningInit(tst) {
			return m, fmt.Errorf("cannot join PID of a non running container: %s", target)
		}
		m.pidPath = nsPath(tst.Pid, "pid")
	}
	switch {
	case hc.IpcMode == ipcHost:
		m.hostIPC, m.shm = true, "/dev/shm"
		if _, err := os.Stat(m.shm); err != nil {
			return m, errors.New("/dev/shm is not mounted, but must be for --ipc=host")
		}
	case hc.IpcMode == ipcNone:
		m.noShm = true
	case hc.IpcMode == ipcShareable && !ownShmMount(c):
		dir := l.path(shmDir)
		if err := mountShm(dir, hc.ShmSize); err != nil {
			return m, err
		}
		m.shm = dir
	case strings.HasPrefix(hc.IpcMode, "container:"):
		if err := e.joinIPC(c, strings.TrimPrefix(hc.IpcMode, "container:"), &m); err != nil {
			return m, err
		}
	}
	return m, nil
}

// joinIPC joins the IPC namespace of the running container target, which must share it:
// shareable, host, or itself a joiner of one that does (Docker's rule: a private
// container's /dev/shm cannot be reached from outside it).
func (e *Engine) joinIPC(c *Container, target string, m *nsModes) error {
	errMsg := "can't join IPC of container " + target
	for hop := 0; ; hop++ {
		tc, tst, err := e.peer(target)
		if err != nil {
			return fmt.Errorf("%s: %w", errMsg, err)
		}
		if tc.ID == c.ID {
			return usagef("%s: a container cannot join its own IPC namespace", errMsg)
		}
		if !runningInit(tst) {
			return fmt.Errorf("%s: container %s is not running", errMsg, short(tc.ID))
		}
		if m.ipcPath == "" {
			// The first container's init: any further hop shares its namespace.
			m.ipcPath = nsPath(tst.Pid, "ipc")
		}
		mode := tc.HostConfig.IpcMode
		switch {
		case mode == ipcShareable && ownShmMount(tc):
			return fmt.Errorf("%s: non-shareable IPC (its /dev/shm is a mount of its own)", errMsg)
		case mode == ipcShareable:
			dir := e.dir(tc.ID) + "/" + shmDir
			if !isMounted(dir) {
				return fmt.Errorf("%s: its /dev/shm (%s) is not mounted", errMsg, dir)
			}
			m.shm = dir
			return nil
		case mode == ipcHost:
			m.shm = "/dev/shm"
			return nil
		case strings.HasPrefix(mode, "container:") && hop < maxIPCHops:
			target = strings.TrimPrefix(mode, "container:")
		default:
			return fmt.Errorf("%s: non-shareable IPC (hint: use IpcMode:shareable for the donor container)", errMsg)
		}
	}
}

// ownShmMount tells whether the user mounts something at /dev/shm (-v, --mount, --tmpfs):
// that is the container's /dev/shm then, and as on Docker there is none to share.
func ownShmMount(c *Container) bool {
	for _, m := range c.Mounts {
		if m.Destination == "/dev/shm" {
			return true
		}
	}
	return false
}

func nsPath(pid int, typ string) string { return "/proc/" + strconv.Itoa(pid) + "/ns/" + typ }

// mountShm mounts the shareable IPC mode's tmpfs at dir (anew: a leftover of a run whose
// teardown never came is released first).
func mountShm(dir string, size int64) error {
	releaseShm(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("--ipc shareable: %w", err)
	}
	data := "mode=1777"
	if size > 0 {
		data += ",size=" + strconv.FormatInt(size, 10)
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
		os.Remove(dir)
		return fmt.Errorf("--ipc shareable: mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// releaseShm unmounts and removes a shareable container's /dev/shm; its joiners keep
// their bind mounts of it (detached) until they end.
func releaseShm(dir string) {
	for unix.Unmount(dir, unix.MNT_DETACH) == nil {
	}
	os.Remove(dir)
}

// apply puts the resolved modes in the spec built from the record.
func (m *nsModes) apply(s *specs.Spec) {
	l := s.Linux
	ns := l.Namespaces[:0]
	for _, n := range l.Namespaces {
		switch n.Type {
		case specs.PIDNamespace:
			if m.hostPID {
				continue
			}
			if m.pidPath != "" {
				n.Path = m.pidPath
			}
		case specs.IPCNamespace:
			if m.hostIPC {
				continue
			}
			if m.ipcPath != "" {
				n.Path = m.ipcPath
			}
		case specs.UTSNamespace:
			if m.hostUTS {
				continue
			}
		}
		ns = append(ns, n)
	}
	l.Namespaces = ns
	if (m.hostIPC || m.ipcPath != "") && newUserNS(l) {
		// A user namespace of its own cannot mount mqueue for an IPC namespace that it
		// does not own, and the host's queues, which the runtime would bind instead, are
		// not its to see when the namespace is another container's. Queues work without
		// the mount (mq_open needs none); only their files are missing.
		dropMount(s, "/dev/mqueue", "mqueue")
	}
	if m.hostUTS {
		// The host's name is the host's to set: a config hostname needs a UTS namespace.
		s.Hostname, s.Domainname = "", ""
	}
	switch {
	case m.noShm:
		dropMount(s, "/dev/shm", "shm")
	case m.shm != "":
		for i, mt := range s.Mounts {
			if mt.Destination == "/dev/shm" && mt.Source == "shm" {
				s.Mounts[i] = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: m.shm,
					Options: []string{"rbind", "rprivate", "nosuid", "noexec", "nodev"}}
			}
		}
	}
}

// dropMount removes the runtime's default mount at dest (source src); a user's mount
// there, which comes later, stays.
func dropMount(s *specs.Spec, dest, src string) {
	mounts := s.Mounts[:0]
	for _, mt := range s.Mounts {
		if mt.Destination != dest || mt.Source != src {
			mounts = append(mounts, mt)
		}
	}
	s.Mounts = mounts
}

// newUserNS tells whether the container gets a user namespace of its own.
func newUserNS(l *specs.Linux) bool {
	for _, n := range l.Namespaces {
		if n.Type == specs.UserNamespace && n.Path == "" {
			return true
		}
	}
	return false
}
