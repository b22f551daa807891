package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine/monitor"
	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/archive"
	"github.com/berth-containers/berth/internal/network"
	"github.com/berth-containers/berth/internal/runtime"
)

// Rootless mode: an unprivileged user runs the engine. Every container then lives in a
// user namespace that maps container root to the user and container ids 1..N to the
// user's range in /etc/subuid and /etc/subgid (set through the setuid helpers newuidmap
// and newgidmap), or only root to the user when the user has no range.
//
// The user cannot give files away, so whatever must keep the owners an image or a
// container gave its files (unpacking layers, copying them into a container's root,
// removing them again) runs in a short-lived child of this binary inside a user namespace
// with the same mapping, as root there: the image package's LayerOps. That keeps one
// hardened unpacker and exact owners in one pass, where recording owners and replaying
// chowns later would need a second walk over every file and a place to keep them.
//
// The container's user and network namespaces are made by the engine before the runtime
// runs: a holder child (see holdNamespaces) creates them, slirp4netns is attached to the
// network namespace, and the runtime joins both by path. The holder goes once the
// container's init holds them.

// rootlessNet is the default network of a rootless container.
const rootlessNet = network.ModeUser

// Rootless tells whether this process runs the engine for an unprivileged user.
func Rootless() bool { return os.Geteuid() != 0 }

// DefaultRoot is the engine root unless told otherwise: $BERTH_ROOT, /var/lib/berth for
// root, ${XDG_DATA_HOME:-~/.local/share}/berth for anyone else.
func DefaultRoot() string {
	if r := os.Getenv("BERTH_ROOT"); r != "" {
		return r
	}
	if !Rootless() {
		return image.DefaultRoot
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "berth")
	}
	home := os.Getenv("HOME")
	if home == "" || !filepath.IsAbs(home) {
		if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
			home = u.HomeDir
		}
	}
	return filepath.Join(home, ".local", "share", "berth")
}

// ensureRuntimeRoot makes the rootless runtime root: the user's own directory, mode 0700.
// A fallback under /tmp that someone else made first is refused (it could be a trap).
func ensureRuntimeRoot(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("runtime root %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("runtime root %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("runtime root %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("runtime root %s: not a directory owned by uid %d (set XDG_RUNTIME_DIR or BERTH_RUNTIME_ROOT)", dir, os.Geteuid())
	}
	if st.Mode&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("runtime root %s: chmod 0700: %w", dir, err)
		}
	}
	return nil
}

// IDMapping is one line of a user namespace's map: container id -> host id, size ids.
type IDMapping = specs.LinuxIDMapping

// rootlessMaps are the container's uid and gid maps for the calling user.
func rootlessMaps() (uids, gids []IDMapping, err error) {
	uid, gid := os.Geteuid(), os.Getegid()
	name := ""
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		name = u.Username
	}
	gname := ""
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		gname = g.Name
	}
	uids = []IDMapping{{ContainerID: 0, HostID: uint32(uid), Size: 1}}
	gids = []IDMapping{{ContainerID: 0, HostID: uint32(gid), Size: 1}}
	sub, err := subIDRange("/etc/subuid", name, uid)
	if err != nil {
		return nil, nil, err
	}
	subg, err := subIDRange("/etc/subgid", name, uid)
	if err != nil {
		return nil, nil, err
	}
	if subg == nil && gname != "" {
		if subg, err = subIDRange("/etc/subgid", gname, gid); err != nil {
			return nil, nil, err
		}
	}
	if sub != nil && subg != nil {
		uids = append(uids, IDMapping{ContainerID: 1, HostID: sub[0], Size: sub[1]})
		gids = append(gids, IDMapping{ContainerID: 1, HostID: subg[0], Size: subg[1]})
	}
	return uids, gids, nil
}

// subIDRange finds the first range for name (or the numeric id) in an /etc/subuid-style
// file: {start, count}, or nil when there is none.
func subIDRange(file, name string, id int) ([]uint32, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.ParseUint(parts[1], 10, 32)
		count, err2 := strconv.ParseUint(parts[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			return nil, fmt.Errorf("%s: bad line %q", file, sc.Text())
		}
		return []uint32{uint32(start), uint32(count)}, nil
	}
	return nil, sc.Err()
}

// Kinds of the helpers that run inside a rootless user namespace.
const (
	usernsPrefix  = "userns-"
	usernsUnpack  = usernsPrefix + "unpack"
	usernsRemove  = usernsPrefix + "rm"
	usernsFlatten = usernsPrefix + "flatten"
	usernsHold    = usernsPrefix + "hold"
)

// usernsChild is a child of this binary in a new user namespace (and the other namespaces
// in flags), mapped as the container's will be; it runs only once the maps are written.
type usernsChild struct {
	cmd  *exec.Cmd
	errb bytes.Buffer
}

func (e *Engine) startUserNS(kind string, flags uintptr, args []string, stdin io.Reader, stdout io.Writer) (*usernsChild, error) {
	uids, gids, err := rootlessMaps()
	if err != nil {
		return nil, err
	}
	self, err := e.exe()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	defer r.Close()
	defer w.Close()
	c := &usernsChild{cmd: exec.Command(self, args...)}
	c.cmd.Args[0] = "berth-" + kind
	c.cmd.Env = []string{monitor.HelperEnv + "=" + kind, "PATH=" + os.Getenv("PATH")}
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = stdin, stdout, &c.errb
	c.cmd.ExtraFiles = []*os.File{r}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | flags, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start a user namespace: %w", kind, err)
	}
	if err := runtime.WriteIDMaps(c.cmd.Process.Pid, uids, gids); err != nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if _, err := w.Write([]byte{1}); err != nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return c, nil
}

func (c *usernsChild) wait() error {
	if err := c.cmd.Wait(); err != nil {
		msg := strings.TrimSpace(c.errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return errors.New(msg)
	}
	return nil
}

func (e *Engine) inUserNS(kind string, args []string, stdin io.Reader, stdout io.Writer) error {
	c, err := e.startUserNS(kind, 0, args, stdin, stdout)
	if err != nil {
		return err
	}
	return c.wait()
}

// layerOps are the image store's LayerOps for an unprivileged user.
func (e *Engine) layerOps() image.LayerOps {
	return image.LayerOps{
		Unpack: func(r io.Reader, dest string, o archive.Options) (archive.Stats, error) {
			var out bytes.Buffer
			args := []string{dest, strconv.FormatBool(o.ApplyWhiteouts)}
			if err := e.inUserNS(usernsUnpack, args, r, &out); err != nil {
				return archive.Stats{}, fmt.Errorf("unpack into %s in the user namespace: %s", dest, err)
			}
			var st archive.Stats
			if err := json.Unmarshal(out.Bytes(), &st); err != nil {
				return st, fmt.Errorf("unpack into %s: bad report %q: %w", dest, out.String(), err)
			}
			if st.Unmapped > 0 {
				e.warn("%s: %d entries owned by ids outside your /etc/subuid or /etc/subgid range were given to root", dest, st.Unmapped)
			}
			if st.SkippedDevices > 0 {
				e.warn("%s: %d device nodes skipped (an unprivileged user cannot make them)", dest, st.SkippedDevices)
			}
			return st, nil
		},
		RemoveAll: e.removeAllRootless,
		Flatten: func(layer, dst string) error {
			if err := e.inUserNS(usernsFlatten, []string{layer, dst}, nil, nil); err != nil {
				return fmt.Errorf("copy layer %s to %s in the user namespace: %s", layer, dst, err)
			}
			return nil
		},
	}
}

// removeAllRootless removes a tree whose files may belong to the user's subordinate ids:
// directly if it can, else as root of the user namespace.
func (e *Engine) removeAllRootless(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.RemoveAll(path); err == nil || !(errors.Is(err, os.ErrPermission)) {
		return err
	}
	if err := e.inUserNS(usernsRemove, []string{path}, nil, nil); err != nil {
		return fmt.Errorf("remove %s in the user namespace: %s", path, err)
	}
	return nil
}

// usernsMappedEnv marks the second start of a user namespace helper.
const usernsMappedEnv = "_BERTH_USERNS_MAPPED"

// runUserNSHelper is the child's side. fd 3 says when the maps are written. The child
// then executes itself again: it was started in the namespace before it had maps, as an
// unmapped user, and execve dropped the capabilities the new namespace gave it; run again
// as the namespace's root, it has them all.
func runUserNSHelper(kind string) int {
	if os.Getenv(usernsMappedEnv) == "" {
		sync := os.NewFile(3, "sync")
		b := make([]byte, 1)
		if n, _ := sync.Read(b); n != 1 {
			fmt.Fprintln(os.Stderr, "user namespace: the parent did not finish the maps")
			return 1
		}
		sync.Close()
		env := append(os.Environ(), monitor.HelperEnv+"="+kind, usernsMappedEnv+"=1")
		err := syscall.Exec("/proc/self/exe", os.Args, env)
		fmt.Fprintf(os.Stderr, "user namespace: execute %s again as its root: %v\n", os.Args[0], err)
		return 1
	}
	os.Unsetenv(usernsMappedEnv)
	args := os.Args[1:]
	var err error
	switch kind {
	case usernsUnpack:
		if len(args) != 2 {
			err = errors.New("want DEST APPLY-WHITEOUTS")
			break
		}
		var st archive.Stats
		st, err = archive.UnpackWith(os.Stdin, args[0], archive.Options{ApplyWhiteouts: args[1] == "true", Rootless: true})
		io.Copy(io.Discard, os.Stdin)
		if err == nil {
			err = json.NewEncoder(os.Stdout).Encode(st)
		}
	case usernsRemove:
		for _, p := range args {
			if rerr := os.RemoveAll(p); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	case usernsFlatten:
		if len(args) != 2 {
			err = errors.New("want LAYER DEST")
			break
		}
		err = image.FlattenLayer(args[0], args[1], true)
	case usernsHold:
		err = holdMain(args)
	case usernsProbeOverlay:
		err = probeOverlayMain(args)
	case usernsOpenRoot:
		err = openRootMain(args)
	default:
		err = fmt.Errorf("unknown helper %q", kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// holdMain keeps the new namespaces alive for the runtime to join: it brings the network
// namespace's loopback up (nothing else will, as the runtime joins the namespace rather
// than making it), says so, and waits for its stdin to close.
func holdMain(args []string) error {
	if len(args) == 1 && args[0] == "netns" {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("network namespace: find lo: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("network namespace: set lo up: %w", err)
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// nsHolder holds a rootless container's user namespace (and network namespace) until the
// runtime has joined them.
type nsHolder struct {
	c     *usernsChild
	stdin io.WriteCloser
	Pid   int
}

func (e *Engine) holdNamespaces(netns bool) (*nsHolder, error) {
	var flags uintptr
	args := []string{"hostnet"}
	if netns {
		flags, args = syscall.CLONE_NEWNET, []string{"netns"}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("rootless namespaces: %w", err)
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("rootless namespaces: %w", err)
	}
	c, err := e.startUserNS(usernsHold, flags, args, pr, wr)
	pr.Close()
	wr.Close()
	if err != nil {
		pw.Close()
		rd.Close()
		return nil, err
	}
	h := &nsHolder{c: c, stdin: pw, Pid: c.cmd.Process.Pid}
	line, _ := bufio.NewReader(rd).ReadString('\n')
	rd.Close()
	if strings.TrimSpace(line) != "ready" {
		pw.Close()
		err := c.wait()
		if err == nil {
			err = errors.New("it exited")
		}
		return nil, fmt.Errorf("rootless namespaces: %w", err)
	}
	return h, nil
}

func (h *nsHolder) path(kind string) string { return fmt.Sprintf("/proc/%d/ns/%s", h.Pid, kind) }

func (h *nsHolder) release() {
	h.stdin.Close()
	h.c.cmd.Wait()
}

// checkRootless refuses what an unprivileged user cannot have, with the reason.
func checkRootless(hc *HostConfig, networks []string) error {
	if len(flagControllers(hc)) > 0 {
		if err := checkRootlessLimits(hc, rootlessDelegation()); err != nil {
			return err
		}
	}
	if hc.UsernsMode == "auto" {
		return usagef("--userns=auto needs root: a rootless container already has a user namespace (yours, with your /etc/subuid range)")
	}
	if hc.Privileged {
		return usagef("--privileged is not available rootless: the host's devices belong to root")
	}
	if hc.NetworkMode == "" || hc.NetworkMode == "default" {
		hc.NetworkMode = string(rootlessNet)
		networks[0] = hc.NetworkMode
	}
	for _, n := range networks {
		switch {
		case n == "none" || n == "host" || n == string(rootlessNet):
		case strings.HasPrefix(n, "container:"):
			return usagef("--network %s is not supported rootless yet", n)
		default:
			return usagef("network %q: bridge and user-defined networks need root (veths, a bridge and NAT on the host); rootless containers use slirp4netns (the default), none or host", n)
		}
	}
	return nil
}

// rootlessSpec adapts the spec for a rootless container whose user (and network)
// namespace the holder made: both are joined by path. The container gets a cgroup in the
// user's delegated cgroup v2 subtree where there is one (see rootless_cgroup.go), and
// none otherwise; then the host's cgroup tree is bound read-only (a user namespace cannot
// mount cgroup v1).
func rootlessSpec(s *specs.Spec, h *nsHolder, hostNet bool, id string) error {
	l := s.Linux
	var ns []specs.LinuxNamespace
	for _, n := range l.Namespaces {
		switch n.Type {
		case specs.NetworkNamespace:
			if hostNet {
				continue
			}
			n.Path = h.path("net")
		case specs.UserNamespace:
			continue
		}
		ns = append(ns, n)
	}
	ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace, Path: h.path("user")})
	l.Namespaces = ns
	l.UIDMappings, l.GIDMappings = nil, nil
	if err := rootlessCgroupSpec(l, id, rootlessDelegation()); err != nil {
		return err
	}
	mounts := s.Mounts[:0]
	for _, m := range s.Mounts {
		switch m.Destination {
		case "/sys/fs/cgroup":
			if l.CgroupsPath != "" {
				// cgroup v2 with the container's own cgroup: the runtime mounts cgroup2 in
				// the container's cgroup namespace, rooted at that cgroup, as for root.
				break
			}
			m = specs.Mount{Destination: "/sys/fs/cgroup", Type: "bind", Source: "/sys/fs/cgroup", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
		case "/dev/pts":
			if uids, gids, err := rootlessMaps(); err == nil && (len(uids) == 1 || len(gids) == 1) {
				// gid 5 (tty) is not mapped without a subordinate range.
				m.Options = removeOpt(m.Options, "gid=5")
			}
		}
		mounts = append(mounts, m)
	}
	s.Mounts = mounts
	delete(s.Annotations, runtime.AnnotationOwnedNamespaces)
	return nil
}
