package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image"
)

// CreateOptions are `berth create`'s (and run's) options, in Docker's shapes.
type CreateOptions struct {
	// Name is --name; empty generates one.
	Name string
	// Config.Image is the image reference (required). A nil Cmd or Entrypoint means the
	// image's.
	Config ContainerConfig
	// EntrypointSet says --entrypoint was given: it replaces the image's entrypoint and
	// drops the image's Cmd, as on Docker (an empty one clears the entrypoint).
	EntrypointSet bool
	HostConfig    HostConfig
	// Networks are the --network values after the first (which is HostConfig.NetworkMode).
	Networks       []string
	NetworkAliases []string
	// Pull is "missing" (the default), "always" or "never".
	Pull string
	// PullOutput receives "Unable to find image ..." and the pull's progress.
	PullOutput io.Writer
	// Ctx bounds a pull (nil: none).
	Ctx context.Context
	// StartAfter says the caller starts the container at once (`berth run`): its cgroup
	// is made meanwhile (startEarlyCgroup).
	StartAfter bool
}

// Default log rotation: Docker's json-file keeps everything unless told; berth bounds a
// container's logs to 3 files of 10 MB unless --log-opt says otherwise.
const (
	defaultLogMaxSize  = "10m"
	defaultLogMaxFiles = "3"
)

// UsageError is bad input from the user (exit code 125, as every engine error).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// ImageNotFoundError is a missing image that could not be pulled either.
type ImageNotFoundError struct {
	Ref string
	Err error
}

func (e *ImageNotFoundError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("No such image: %s", e.Ref)
}
func (e *ImageNotFoundError) Unwrap() error { return e.Err }

// Create makes a container: its record, its name, its snapshot and its volumes. Nothing
// runs yet. A create killed at any point leaves a .creating- directory that the next
// listing removes, with the name and snapshot it had taken.
func (e *Engine) Create(o CreateOptions) (*Container, error) {
	// What BeginRun made for this run: taken once the image is found (BeginRun works
	// meanwhile), used below, or dropped on the way out (main's DropBegun if never taken).
	var b *begunRun
	defer func() { b.drop() }()
	if o.Config.Image == "" {
		return nil, usagef("image name is required")
	}
	if o.Name != "" {
		if err := ValidateName(strings.TrimPrefix(o.Name, "/")); err != nil {
			return nil, &UsageError{Msg: err.Error()}
		}
		o.Name = strings.TrimPrefix(o.Name, "/")
	}
	hc := o.HostConfig
	if e.rootless {
		if err := checkRootless(&hc, append([]string{hc.NetworkMode}, o.Networks...)); err != nil {
			return nil, err
		}
	}
	if err := checkHostConfig(&hc); err != nil {
		return nil, err
	}
	if err := checkNetworks(&hc, o.Networks, o.NetworkAliases); err != nil {
		return nil, err
	}
	if err := checkNsModes(&hc, &o.Config, e.rootless); err != nil {
		return nil, err
	}
	if err := ValidateHealthConfig(o.Config.Healthcheck); err != nil {
		return nil, err
	}
	trace("create begin")
	img, cf, err := e.resolveImage(o)
	trace("create image")
	if err != nil {
		return nil, err
	}
	b = e.takeBegun()
	if b != nil && !(o.StartAfter && !e.rootless && isBuiltinRuntime(hc.Runtime)) {
		b.drop()
		b = nil
	}
	var id string
	if b != nil {
		id = b.id
	} else if id, err = newID(); err != nil {
		return nil, err
	}
	c := &Container{
		ID:             id,
		Created:        time.Now().UTC(),
		Image:          img.ID.String(),
		ImageDigest:    img.Digest.String(),
		HostConfig:     hc,
		NetworkAliases: o.NetworkAliases,
		Networks:       append([]string{hc.NetworkMode}, o.Networks...),
	}
	if err := mergeImageConfig(c, o, cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.Env, cf.Config.WorkingDir,
		cf.Config.User, cf.Config.Labels, cf.Config.ExposedPorts, cf.Config.Volumes, cf.Config.StopSignal); err != nil {
		return nil, err
	}
	c.Config.Healthcheck = mergeHealthConfig(o.Config.Healthcheck, cf.Config.Healthcheck)
	if hc.UsernsMode == "auto" {
		m, err := e.allocUserNS(id)
		if err != nil {
			return nil, err
		}
		c.UserNSMap = m
	}

	// The directory is made under a temporary name and locked: if this process dies, the
	// next listing finds it unlocked and undoes it.
	tmp := filepath.Join(e.containersPath(), creatingPfx+id)
	var df *os.File
	var preMon *preMonitor
	if b != nil {
		// Made and locked by BeginRun, with the cgroup and the monitor.
		df = b.dir
		e.keepEarlyCgroup(id, b.cg)
		preMon = b.mon
		b = nil
	} else {
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return nil, fmt.Errorf("create container directory: %w", err)
		}
		df, err = os.Open(tmp)
		if err == nil {
			err = flock(df, unix.LOCK_EX)
		}
		if err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("lock %s: %w", tmp, err)
		}
		if o.StartAfter {
			// After the directory: a process killed from here on leaves it, and its
			// removal (removeAbandoned) takes the cgroup too.
			e.startEarlyCgroup(id, &hc)
		}
	}
	defer func() {
		if df != nil {
			df.Close()
		}
	}()
	ok := false
	var claimed string
	var anon []string
	defer func() {
		if ok {
			return
		}
		e.releaseEarlyCgroup(id)
		preMon.close()
		if claimed != "" {
			e.releaseName(claimed, id)
		}
		if sn, err := e.snapshotter(); err == nil {
			sn.Remove(id)
		}
		for _, v := range anon {
			e.volumeRemoveLocked(v, true)
		}
		e.freeUserNS(id)
		os.RemoveAll(tmp)
	}()

	// The name: generated ones are retried on collision.
	for retry := 0; ; retry++ {
		name := o.Name
		if name == "" {
			name = randomName(retry)
		}
		err := e.claimName(name, id)
		if err == nil {
			c.Name, claimed = name, name
			break
		}
		var conflict *ConflictError
		if o.Name == "" && errors.As(err, &conflict) && retry < 20 {
			continue
		}
		return nil, err
	}

	unlockVols, err := e.lockVolumes(false)
	if err != nil {
		return nil, err
	}
	defer unlockVols()
	mounts, anonVols, err := e.resolveMounts(c)
	anon = anonVols
	if err != nil {
		return nil, err
	}
	c.Mounts = mounts

	sn, err := e.snapshotter()
	if err != nil {
		return nil, err
	}
	if _, err := sn.Prepare(id, img); err != nil {
		return nil, err
	}
	trace("create prepared")
	if err := writeJSON(filepath.Join(tmp, recordFile), c); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(tmp, stateFile), &State{Status: StatusCreated}); err != nil {
		return nil, err
	}
	// A monitor BeginRun is still starting goes to the .creating- directory by name.
	preMon.wait()
	if err := os.Rename(tmp, e.dir(id)); err != nil {
		return nil, fmt.Errorf("create container: rename %s: %w", tmp, err)
	}
	ok = true
	if o.StartAfter {
		// Start takes the container as made, still locked: nobody could have changed it.
		e.created = &lockedDir{id: id, dir: e.dir(id), f: df}
		e.createdC, e.createdMon = c, preMon
		df = nil
	} else {
		preMon.close()
	}
	return c, nil
}

// resolveImage finds the image, pulling it per o.Pull.
func (e *Engine) resolveImage(o CreateOptions) (*image.Image, *v1.ConfigFile, error) {
	s, err := e.imageStore()
	if err != nil {
		return nil, nil, err
	}
	ref := o.Config.Image
	pull := o.Pull
	if pull == "" {
		pull = "missing"
	}
	var img *image.Image
	if pull != "always" {
		img, err = s.Get(ref)
		if err != nil && !errors.Is(err, image.ErrNotFound) {
			return nil, nil, err
		}
	}
	if img == nil {
		if pull == "never" {
			return nil, nil, &ImageNotFoundError{Ref: ref}
		}
		if image.Lean {
			// The lean build cannot pull: berth-full runs the command instead.
			return nil, nil, image.ErrFullBinary
		}
		out := o.PullOutput
		if out == nil {
			out = io.Discard
		}
		if pull == "missing" {
			fmt.Fprintf(out, "Unable to find image '%s' locally\n", familiar(ref))
		}
		ctx := o.Ctx
		if ctx == nil {
			ctx = context.Background()
		}
		img, err = s.Pull(ctx, ref, image.PullOptions{Progress: image.NewProgress(out)})
		if err != nil {
			return nil, nil, &ImageNotFoundError{Ref: ref, Err: err}
		}
	}
	cf, err := s.ConfigFile(img)
	if err != nil {
		return nil, nil, err
	}
	return img, cf, nil
}

// familiar adds ":latest" to a reference without a tag or digest, as Docker prints it.
func familiar(ref string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if !strings.Contains(last, ":") {
		return ref + ":latest"
	}
	return ref
}

// mergeImageConfig fills the container's Config from the image's and the options', with
// Docker's precedence: the command line wins, the image fills the rest.
func mergeImageConfig(c *Container, o CreateOptions, ep, cmd, env []string, wd, user string,
	labels map[string]string, exposed, volumes map[string]struct{}, stopSignal string) error {
	cfg := o.Config
	if o.EntrypointSet {
		if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
			cfg.Entrypoint = nil
		}
		if cfg.Cmd == nil {
			cfg.Cmd = []string{}
		}
	} else {
		cfg.Entrypoint = ep
	}
	if cfg.Cmd == nil {
		cfg.Cmd = cmd
	}
	args := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	if len(args) == 0 {
		return usagef("No command specified")
	}
	c.Path, c.Args = args[0], args[1:]
	merged := append([]string{}, env...)
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, cur := range merged {
			if ck, _, _ := strings.Cut(cur, "="); ck == k {
				merged[i], replaced = kv, true
			}
		}
		if !replaced {
			merged = append(merged, kv)
		}
	}
	hasPath := false
	for _, kv := range merged {
		if strings.HasPrefix(kv, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		merged = append([]string{"PATH=" + image.DefaultPath}, merged...)
	}
	cfg.Env = merged
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = wd
	}
	if cfg.WorkingDir != "" && !path.IsAbs(cfg.WorkingDir) {
		return usagef("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
	}
	if cfg.User == "" {
		cfg.User = user
	}
	all := map[string]string{}
	for k, v := range labels {
		all[k] = v
	}
	for k, v := range cfg.Labels {
		all[k] = v
	}
	cfg.Labels = all
	ports := map[string]struct{}{}
	for k := range exposed {
		ports[k] = struct{}{}
	}
	for k := range cfg.ExposedPorts {
		ports[k] = struct{}{}
	}
	for k := range c.HostConfig.PortBindings {
		ports[k] = struct{}{}
	}
	cfg.ExposedPorts = ports
	vols := map[string]struct{}{}
	for k := range volumes {
		vols[k] = struct{}{}
	}
	for k := range cfg.Volumes {
		vols[k] = struct{}{}
	}
	cfg.Volumes = vols
	if cfg.StopSignal == "" {
		cfg.StopSignal = stopSignal
	}
	if cfg.Hostname == "" && c.HostConfig.NetworkMode != "host" && !strings.HasPrefix(c.HostConfig.NetworkMode, "container:") {
		cfg.Hostname = c.ID[:12]
	}
	cfg.AttachStdout, cfg.AttachStderr = true, true
	c.Config = cfg
	return nil
}

// checkHostConfig validates the host options and fills in defaults.
func checkHostConfig(hc *HostConfig) error {
	switch hc.RestartPolicy.Name {
	case "", "no":
		hc.RestartPolicy.Name = "no"
		if hc.RestartPolicy.MaximumRetryCount != 0 {
			return usagef("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
	case "always", "unless-stopped":
		if hc.RestartPolicy.MaximumRetryCount != 0 {
			return usagef("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
	case "on-failure":
		if hc.RestartPolicy.MaximumRetryCount < 0 {
			return usagef("invalid restart policy: maximum retry count cannot be negative")
		}
	default:
		return usagef("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", hc.RestartPolicy.Name)
	}
	if hc.AutoRemove && hc.RestartPolicy.Name != "no" {
		return usagef("Conflicting options: --restart and --rm")
	}
	if err := checkLogConfig(&hc.LogConfig); err != nil {
		return err
	}
	if hc.MemorySwap > 0 && hc.Memory > 0 && hc.MemorySwap < hc.Memory {
		return usagef("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if hc.MemorySwap != 0 && hc.MemorySwap != -1 && hc.Memory == 0 {
		return usagef("You should always set the Memory limit when using Memoryswap limit, see usage")
	}
	if hc.Memory != 0 && hc.Memory < 6<<20 {
		return usagef("Minimum memory limit allowed is 6MB")
	}
	if hc.NanoCpus < 0 {
		return usagef("invalid value for --cpus: must be positive")
	}
	if hc.ShmSize < 0 {
		return usagef("SHM size can not be less than 0")
	}
	if hc.ShmSize == 0 {
		hc.ShmSize = 64 << 20
	}
	switch hc.Runtime {
	case "", "berth", "berth-runtime":
		hc.Runtime = "berth"
	default:
		if _, err := exec.LookPath(hc.Runtime); err != nil {
			return usagef("unknown or invalid runtime name: %s", hc.Runtime)
		}
	}
	switch hc.UsernsMode {
	case "", "host", "auto":
	default:
		return usagef("invalid --userns %q: use host or auto", hc.UsernsMode)
	}
	for _, so := range hc.SecurityOpt {
		if _, err := parseSecurityOpt(so); err != nil {
			return err
		}
	}
	for _, u := range hc.Ulimits {
		if _, ok := ulimitNames[u.Name]; !ok {
			return usagef("invalid ulimit type: %s", u.Name)
		}
		if u.Soft > u.Hard {
			return usagef("ulimit soft limit must be less than or equal to hard limit: %d > %d", u.Soft, u.Hard)
		}
	}
	for _, c := range append(append([]string{}, hc.CapAdd...), hc.CapDrop...) {
		if _, err := normalizeCap(c); err != nil {
			return err
		}
	}
	return nil
}

func checkNetworks(hc *HostConfig, more, aliases []string) error {
	if hc.NetworkMode == "" || hc.NetworkMode == "default" {
		hc.NetworkMode = "bridge"
	}
	all := append([]string{hc.NetworkMode}, more...)
	for _, n := range all {
		special := n == "none" || n == "host" || strings.HasPrefix(n, "container:")
		if special && len(all) > 1 {
			return usagef("conflicting options: cannot attach both user-defined and non-user-defined network-modes")
		}
	}
	if len(hc.PortBindings) > 0 || hc.PublishAllPorts {
		if hc.NetworkMode == "host" || hc.NetworkMode == "none" || strings.HasPrefix(hc.NetworkMode, "container:") {
			return usagef("conflicting options: port publishing and the container type network mode")
		}
	}
	if len(aliases) > 0 && (hc.NetworkMode == "bridge" && len(more) == 0) {
		return usagef("network-scoped alias is supported only for containers in user defined networks")
	}
	if strings.HasPrefix(hc.NetworkMode, "container:") && strings.TrimPrefix(hc.NetworkMode, "container:") == "" {
		return usagef("invalid network mode %q: the container name is missing", hc.NetworkMode)
	}
	return nil
}

// ParseSize reads Docker's sizes: a number with an optional b, k, m or g unit (binary
// multiples, as Docker's RAMInBytes).
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "ib")
	t = strings.TrimSuffix(t, "b")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size: '%s'", s)
	}
	return int64(f * float64(mult)), nil
}

// resolveMounts turns -v, --mount, --tmpfs and the image's VOLUMEs into mount points,
// creating named volumes and the anonymous ones.
func (e *Engine) resolveMounts(c *Container) ([]MountPoint, []string, error) {
	var out []MountPoint
	var anon []string
	seen := map[string]bool{}
	add := func(m MountPoint) error {
		m.Destination = path.Clean(m.Destination)
		if !path.IsAbs(m.Destination) {
			return usagef("invalid mount config: mount path must be absolute: %s", m.Destination)
		}
		if m.Destination == "/" {
			return usagef("invalid specification: destination can't be '/'")
		}
		if seen[m.Destination] {
			return usagef("Duplicate mount point: %s", m.Destination)
		}
		seen[m.Destination] = true
		out = append(out, m)
		return nil
	}
	volume := func(name, dest string, ro bool, mode string) error {
		anonymous := name == ""
		v, err := e.volumeCreate(name, nil, anonymous)
		if err != nil {
			return err
		}
		if anonymous {
			anon = append(anon, v.Name)
		}
		return add(MountPoint{Type: "volume", Name: v.Name, Source: v.Mountpoint, Destination: dest,
			Driver: "local", Mode: mode, RW: !ro, Anonymous: anonymous})
	}
	for _, b := range c.HostConfig.Binds {
		src, dst, mode, err := splitBind(b)
		if err != nil {
			return nil, anon, err
		}
		ro, prop := false, ""
		for _, o := range strings.Split(mode, ",") {
			switch o {
			case "", "rw", "z", "Z", "nocopy", "copy":
			case "ro":
				ro = true
			case "shared", "rshared", "slave", "rslave", "private", "rprivate":
				prop = o
			default:
				return nil, anon, usagef("invalid mode: %s", mode)
			}
		}
		switch {
		case src == "":
			err = volume("", dst, ro, mode)
		case filepath.IsAbs(src):
			src = filepath.Clean(src)
			if _, serr := os.Stat(src); errors.Is(serr, os.ErrNotExist) {
				// Docker's -v makes a missing host directory; --mount does not.
				if merr := os.MkdirAll(src, 0o755); merr != nil {
					return nil, anon, fmt.Errorf("create bind source %s: %w", src, merr)
				}
			}
			if prop == "" {
				prop = "rprivate"
			}
			err = add(MountPoint{Type: "bind", Source: src, Destination: dst, Mode: mode, RW: !ro, Propagation: prop})
		default:
			if verr := ValidateVolumeName(src); verr != nil {
				return nil, anon, &UsageError{Msg: verr.Error()}
			}
			err = volume(src, dst, ro, mode)
		}
		if err != nil {
			return nil, anon, err
		}
	}
	for _, m := range c.HostConfig.Mounts {
		var err error
		switch m.Type {
		case "bind":
			if !filepath.IsAbs(m.Source) {
				return nil, anon, usagef("invalid mount config for type \"bind\": invalid mount path: '%s' mount path must be absolute", m.Source)
			}
			if _, serr := os.Stat(m.Source); serr != nil {
				return nil, anon, usagef("invalid mount config for type \"bind\": bind source path does not exist: %s", m.Source)
			}
			prop := m.BindPropagation
			if prop == "" {
				prop = "rprivate"
			}
			mode := ""
			if m.ReadOnly {
				mode = "ro"
			}
			err = add(MountPoint{Type: "bind", Source: filepath.Clean(m.Source), Destination: m.Target, Mode: mode, RW: !m.ReadOnly, Propagation: prop})
		case "volume", "":
			if m.Source != "" {
				if verr := ValidateVolumeName(m.Source); verr != nil {
					return nil, anon, &UsageError{Msg: verr.Error()}
				}
			}
			mode := "z"
			if m.ReadOnly {
				mode = "ro"
			}
			err = volume(m.Source, m.Target, m.ReadOnly, mode)
		case "tmpfs":
			if m.Source != "" {
				return nil, anon, usagef("invalid mount config for type \"tmpfs\": source must not be specified")
			}
			opts := []string{"nosuid", "nodev", "noexec"}
			if m.TmpfsSize > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.TmpfsSize, 10))
			}
			if m.TmpfsMode != 0 {
				opts = append(opts, "mode="+strconv.FormatUint(uint64(m.TmpfsMode), 8))
			}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			err = add(MountPoint{Type: "tmpfs", Destination: m.Target, RW: !m.ReadOnly, Options: opts})
		default:
			return nil, anon, usagef("invalid mount config: mount type unknown: %q", m.Type)
		}
		if err != nil {
			return nil, anon, err
		}
	}
	tmpfs := make([]string, 0, len(c.HostConfig.Tmpfs))
	for dst := range c.HostConfig.Tmpfs {
		tmpfs = append(tmpfs, dst)
	}
	sort.Strings(tmpfs)
	for _, dst := range tmpfs {
		opts := []string{"nosuid", "nodev", "noexec"}
		ro := false
		if o := c.HostConfig.Tmpfs[dst]; o != "" {
			for _, x := range strings.Split(o, ",") {
				if x == "ro" {
					ro = true
				}
				opts = append(opts, x)
			}
		}
		if err := add(MountPoint{Type: "tmpfs", Destination: dst, RW: !ro, Options: opts}); err != nil {
			return nil, anon, err
		}
	}
	// The image's VOLUMEs that nothing else covers get anonymous volumes.
	vols := make([]string, 0, len(c.Config.Volumes))
	for v := range c.Config.Volumes {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	for _, v := range vols {
		if seen[path.Clean(v)] {
			continue
		}
		if err := volume("", v, false, ""); err != nil {
			return nil, anon, err
		}
	}
	return out, anon, nil
}

// splitBind splits a -v value: [SOURCE:]DEST[:MODE].
func splitBind(b string) (src, dst, mode string, err error) {
	parts := strings.Split(b, ":")
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		if strings.HasPrefix(parts[1], "/") {
			src, dst = parts[0], parts[1]
		} else {
			dst, mode = parts[0], parts[1]
		}
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	default:
		return "", "", "", usagef("invalid volume specification: '%s'", b)
	}
	if dst == "" || !strings.HasPrefix(dst, "/") {
		return "", "", "", usagef("invalid volume specification: '%s': invalid mount config for type \"volume\": invalid mount path: '%s' mount path must be absolute", b, dst)
	}
	if src == "" && len(parts) > 1 && !strings.HasPrefix(parts[1], "/") && parts[0] != "" {
		// "/dest:ro": an anonymous volume with a mode.
		return "", dst, mode, nil
	}
	return src, dst, mode, nil
}
