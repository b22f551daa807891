package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-containers/berth/internal/engine"
	"github.com/berth-containers/berth/internal/engine/monitor"
	"github.com/berth-containers/berth/internal/runtime"
)

// runFlags are the options `run` and `create` share, as Docker spells them.
type runFlags struct {
	detach, interactive, tty, rm               bool
	name, workdir, user, hostname, domainname  string
	entrypoint                                 string
	env, envFile, volumes, mounts, tmpfs       []string
	readOnly, privileged, init, publishAll     bool
	memory, memorySwap, shmSize                string
	cpus                                       float64
	cpuShares                                  int64
	cpusetCpus                                 string
	pidsLimit                                  int64
	ulimits, devices, sysctls, capAdd, capDrop []string
	securityOpt                                []string
	userns, restart, stopSignal                string
	pidMode, ipcMode, utsMode                  string
	stopTimeout                                int
	labels, labelFiles, addHosts, dns          []string
	dnsSearch, dnsOptions                      []string
	runtime, pull                              string
	networks, aliases, publish, expose         []string
	logDriver                                  string
	logOpts                                    []string
	detachKeys                                 string
	sigProxy, quiet                            bool
	health                                     healthFlags
}

func (f *runFlags) add(fs *pflag.FlagSet, isRun bool) {
	// -h is --hostname, as on Docker; help is --help only.
	fs.Bool("help", false, "Print usage")
	if isRun {
		fs.BoolVarP(&f.detach, "detach", "d", false, "Run container in background and print container ID")
		fs.BoolVar(&f.sigProxy, "sig-proxy", true, "Proxy received signals to the process")
		fs.StringVar(&f.detachKeys, "detach-keys", "ctrl-p,ctrl-q", "Override the key sequence for detaching a container")
	}
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fs.BoolVarP(&f.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fs.BoolVar(&f.rm, "rm", false, "Automatically remove the container and its anonymous volumes when it exits")
	fs.StringVar(&f.name, "name", "", "Assign a name to the container")
	stringArrayVarP(fs, &f.env, "env", "e", "Set environment variables")
	stringArrayVarP(fs, &f.envFile, "env-file", "", "Read in a file of environment variables")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "Working directory inside the container")
	fs.StringVarP(&f.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fs.StringVarP(&f.hostname, "hostname", "h", "", "Container host name")
	fs.StringVar(&f.domainname, "domainname", "", "Container NIS domain name")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	stringArrayVarP(fs, &f.volumes, "volume", "v", "Bind mount a volume")
	stringArrayVarP(fs, &f.mounts, "mount", "", "Attach a filesystem mount to the container")
	stringArrayVarP(fs, &f.tmpfs, "tmpfs", "", "Mount a tmpfs directory")
	fs.BoolVar(&f.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	fs.StringVarP(&f.memory, "memory", "m", "", "Memory limit")
	fs.StringVar(&f.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	fs.StringVar(&f.shmSize, "shm-size", "", "Size of /dev/shm")
	fs.Float64Var(&f.cpus, "cpus", 0, "Number of CPUs")
	fs.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fs.Int64Var(&f.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	stringArrayVarP(fs, &f.ulimits, "ulimit", "", "Ulimit options")
	stringArrayVarP(fs, &f.devices, "device", "", "Add a host device to the container")
	stringArrayVarP(fs, &f.sysctls, "sysctl", "", "Sysctl options")
	stringArrayVarP(fs, &f.capAdd, "cap-add", "", "Add Linux capabilities")
	stringArrayVarP(fs, &f.capDrop, "cap-drop", "", "Drop Linux capabilities")
	fs.BoolVar(&f.privileged, "privileged", false, "Give extended privileges to this container")
	stringArrayVarP(fs, &f.securityOpt, "security-opt", "", "Security Options")
	fs.StringVar(&f.userns, "userns", "", "User namespace to use (host, or auto: a range of 65536 host ids of its own)")
	fs.StringVar(&f.pidMode, "pid", "", "PID namespace to use (host, or container:<name|id>)")
	fs.StringVar(&f.ipcMode, "ipc", "", `IPC mode to use ("private" by default; "shareable", "host", "none", or container:<name|id>)`)
	fs.StringVar(&f.utsMode, "uts", "", "UTS namespace to use (host)")
	fs.BoolVar(&f.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	fs.StringVar(&f.restart, "restart", "no", "Restart policy to apply when a container exits")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "Signal to stop the container")
	fs.IntVar(&f.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	stringArrayVarP(fs, &f.labels, "label", "l", "Set meta data on a container")
	stringArrayVarP(fs, &f.labelFiles, "label-file", "", "Read in a line delimited file of labels")
	stringArrayVarP(fs, &f.addHosts, "add-host", "", "Add a custom host-to-IP mapping (host:ip)")
	stringArrayVarP(fs, &f.dns, "dns", "", "Set custom DNS servers")
	stringArrayVarP(fs, &f.dnsSearch, "dns-search", "", "Set custom DNS search domains")
	stringArrayVarP(fs, &f.dnsOptions, "dns-option", "", "Set DNS options")
	fs.StringVar(&f.runtime, "runtime", "", "Runtime to use for this container (default: the built-in one; or runc, crun, ...)")
	fs.StringVar(&f.pull, "pull", "missing", `Pull image before running ("always", "missing", "never")`)
	stringArrayVarP(fs, &f.networks, "network", "", "Connect a container to a network")
	stringArrayVarP(fs, &f.networks, "net", "", "Connect a container to a network")
	fs.MarkHidden("net")
	stringArrayVarP(fs, &f.aliases, "network-alias", "", "Add network-scoped alias for the container")
	stringArrayVarP(fs, &f.publish, "publish", "p", "Publish a container's port(s) to the host")
	fs.BoolVarP(&f.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	stringArrayVarP(fs, &f.expose, "expose", "", "Expose a port or a range of ports")
	fs.StringVar(&f.logDriver, "log-driver", "", "Logging driver for the container (json-file or none)")
	stringArrayVarP(fs, &f.logOpts, "log-opt", "", "Log driver options (max-size, max-file)")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "Suppress the pull output")
	f.health.add(fs)
}

// options turns the flags into the engine's create options.
func (f *runFlags) options(cmd *cobra.Command, args []string) (engine.CreateOptions, error) {
	fs := cmd.Flags()
	o := engine.CreateOptions{Name: f.name, Pull: f.pull, PullOutput: os.Stderr}
	if f.quiet {
		o.PullOutput = nil
	}
	switch f.pull {
	case "always", "missing", "never":
	default:
		return o, fmt.Errorf("invalid pull option: '%s': must be one of \"always\", \"missing\" or \"never\"", f.pull)
	}
	cfg := &o.Config
	cfg.Image = args[0]
	if len(args) > 1 {
		cfg.Cmd = append([]string{}, args[1:]...)
	}
	if fs.Changed("entrypoint") {
		o.EntrypointSet = true
		cfg.Entrypoint = []string{f.entrypoint}
	}
	cfg.Tty, cfg.OpenStdin = f.tty, f.interactive
	cfg.AttachStdin = f.interactive && !f.detach
	cfg.StdinOnce = f.interactive && !f.detach
	cfg.WorkingDir, cfg.User = f.workdir, f.user
	cfg.Hostname, cfg.Domainname = f.hostname, f.domainname
	cfg.StopSignal = f.stopSignal
	if f.stopSignal != "" {
		if _, err := engine.ParseSignal(f.stopSignal); err != nil {
			return o, err
		}
	}
	if fs.Changed("stop-timeout") {
		t := f.stopTimeout
		cfg.StopTimeout = &t
	}
	env, err := readEnv(f.envFile, f.env)
	if err != nil {
		return o, err
	}
	cfg.Env = env
	if cfg.Healthcheck, err = f.health.config(); err != nil {
		return o, err
	}
	labels, err := readLabels(f.labelFiles, f.labels)
	if err != nil {
		return o, err
	}
	cfg.Labels = labels
	cfg.ExposedPorts = map[string]struct{}{}
	for _, e := range f.expose {
		p, proto, _ := strings.Cut(e, "/")
		if proto == "" {
			proto = "tcp"
		}
		lo, hi, isRange := strings.Cut(p, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		if isRange {
			b, err = strconv.Atoi(hi)
		}
		if err1 != nil || err != nil || a < 1 || b > 65535 || b < a {
			return o, fmt.Errorf("invalid range format for --expose: %s", e)
		}
		for port := a; port <= b; port++ {
			cfg.ExposedPorts[strconv.Itoa(port)+"/"+proto] = struct{}{}
		}
	}

	hc := &o.HostConfig
	hc.AutoRemove = f.rm
	hc.Binds = f.volumes
	hc.ReadonlyRootfs, hc.Privileged = f.readOnly, f.privileged
	hc.CapAdd, hc.CapDrop, hc.SecurityOpt = f.capAdd, f.capDrop, f.securityOpt
	hc.UsernsMode, hc.Runtime = f.userns, f.runtime
	hc.PidMode, hc.IpcMode, hc.UTSMode = f.pidMode, f.ipcMode, f.utsMode
	hc.ExtraHosts, hc.DNS, hc.DNSSearch, hc.DNSOptions = f.addHosts, f.dns, f.dnsSearch, f.dnsOptions
	hc.PublishAllPorts = f.publishAll
	hc.CpusetCpus, hc.CPUShares = f.cpusetCpus, f.cpuShares
	if fs.Changed("init") {
		b := f.init
		hc.Init = &b
	}
	for _, h := range f.addHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" || ip == "" {
			return o, fmt.Errorf("invalid argument %q for \"--add-host\" flag: invalid IP address in add-host: %q", h, ip)
		}
	}
	if f.memory != "" {
		if hc.Memory, err = engine.ParseSize(f.memory); err != nil {
			return o, fmt.Errorf("invalid argument %q for \"-m, --memory\" flag: %w", f.memory, err)
		}
	}
	if f.memorySwap != "" {
		if f.memorySwap == "-1" {
			hc.MemorySwap = -1
		} else if hc.MemorySwap, err = engine.ParseSize(f.memorySwap); err != nil {
			return o, fmt.Errorf("invalid argument %q for \"--memory-swap\" flag: %w", f.memorySwap, err)
		}
	}
	if f.shmSize != "" {
		if hc.ShmSize, err = engine.ParseSize(f.shmSize); err != nil {
			return o, fmt.Errorf("invalid argument %q for \"--shm-size\" flag: %w", f.shmSize, err)
		}
	}
	if f.cpus < 0 {
		return o, fmt.Errorf("invalid argument \"%v\" for \"--cpus\" flag: must be positive", f.cpus)
	}
	hc.NanoCpus = int64(f.cpus * 1e9)
	if fs.Changed("pids-limit") {
		l := f.pidsLimit
		hc.PidsLimit = &l
	}
	for _, u := range f.ulimits {
		ul, err := parseUlimit(u)
		if err != nil {
			return o, err
		}
		hc.Ulimits = append(hc.Ulimits, ul)
	}
	for _, d := range f.devices {
		dm, err := parseDevice(d)
		if err != nil {
			return o, err
		}
		hc.Devices = append(hc.Devices, dm)
	}
	if len(f.sysctls) > 0 {
		hc.Sysctls = map[string]string{}
		for _, s := range f.sysctls {
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return o, fmt.Errorf("invalid argument %q for \"--sysctl\" flag: sysctl '%s' is not allowed", s, s)
			}
			hc.Sysctls[k] = v
		}
	}
	if len(f.tmpfs) > 0 {
		hc.Tmpfs = map[string]string{}
		for _, t := range f.tmpfs {
			dst, opts, _ := strings.Cut(t, ":")
			hc.Tmpfs[dst] = opts
		}
	}
	for _, m := range f.mounts {
		mt, err := parseMount(m)
		if err != nil {
			return o, err
		}
		hc.Mounts = append(hc.Mounts, mt)
	}
	policy, count, _ := strings.Cut(f.restart, ":")
	hc.RestartPolicy.Name = policy
	if count != "" {
		n, err := strconv.Atoi(count)
		if err != nil {
			return o, fmt.Errorf("invalid restart policy format: maximum retry count must be an integer")
		}
		hc.RestartPolicy.MaximumRetryCount = n
	}
	hc.LogConfig.Type = f.logDriver
	if len(f.logOpts) > 0 {
		hc.LogConfig.Config = map[string]string{}
		for _, lo := range f.logOpts {
			k, v, ok := strings.Cut(lo, "=")
			if !ok {
				return o, fmt.Errorf("invalid key/value pair format in logging opts: %s", lo)
			}
			hc.LogConfig.Config[k] = v
		}
	}
	if len(f.networks) > 0 {
		hc.NetworkMode = f.networks[0]
		o.Networks = f.networks[1:]
	}
	o.NetworkAliases = f.aliases
	if len(f.publish) > 0 {
		if hc.PortBindings, err = engine.PortBindingsFrom(f.publish); err != nil {
			return o, err
		}
	}
	return o, nil
}

func readEnv(files, vals []string) ([]string, error) {
	var env []string
	add := func(kv string) {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			// "NAME" alone takes the value from our environment, or is left out.
			if v, set := os.LookupEnv(k); set {
				env = append(env, k+"="+v)
			}
			return
		}
		env = append(env, kv)
	}
	for _, f := range files {
		lines, err := readLines(f)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			if k, _, _ := strings.Cut(l, "="); strings.ContainsAny(k, " \t") {
				return nil, fmt.Errorf("variable '%s' contains whitespaces", k)
			}
			add(l)
		}
	}
	for _, v := range vals {
		add(v)
	}
	return env, nil
}

func readLabels(files, vals []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, f := range files {
		lines, err := readLines(f)
		if err != nil {
			return nil, err
		}
		vals = append(lines, vals...)
	}
	for _, l := range vals {
		k, v, _ := strings.Cut(l, "=")
		labels[k] = v
	}
	return labels, nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimLeft(sc.Text(), " \t")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

func parseUlimit(s string) (engine.Ulimit, error) {
	name, vals, ok := strings.Cut(s, "=")
	if !ok {
		return engine.Ulimit{}, fmt.Errorf("invalid argument %q for \"--ulimit\" flag: invalid ulimit argument: %s", s, s)
	}
	soft, hard, hasHard := strings.Cut(vals, ":")
	ps := func(v string) (int64, error) {
		if v == "-1" || v == "unlimited" {
			return -1, nil
		}
		return strconv.ParseInt(v, 10, 64)
	}
	sv, err := ps(soft)
	if err != nil {
		return engine.Ulimit{}, fmt.Errorf("invalid argument %q for \"--ulimit\" flag: invalid ulimit soft value %s", s, soft)
	}
	hv := sv
	if hasHard {
		if hv, err = ps(hard); err != nil {
			return engine.Ulimit{}, fmt.Errorf("invalid argument %q for \"--ulimit\" flag: invalid ulimit hard value %s", s, hard)
		}
	}
	return engine.Ulimit{Name: name, Soft: sv, Hard: hv}, nil
}

func parseDevice(s string) (engine.DeviceMapping, error) {
	parts := strings.Split(s, ":")
	d := engine.DeviceMapping{PathOnHost: parts[0], CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
		d.PathInContainer = parts[0]
	case 2:
		if isPerms(parts[1]) {
			d.PathInContainer, d.CgroupPermissions = parts[0], parts[1]
		} else {
			d.PathInContainer = parts[1]
		}
	case 3:
		if !isPerms(parts[2]) {
			return d, fmt.Errorf("invalid device mode: %s", parts[2])
		}
		d.PathInContainer, d.CgroupPermissions = parts[1], parts[2]
	default:
		return d, fmt.Errorf("invalid device specification: %s", s)
	}
	if !filepath.IsAbs(d.PathInContainer) {
		return d, fmt.Errorf("invalid device specification: %s: the container path must be absolute", s)
	}
	return d, nil
}

func isPerms(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c != 'r' && c != 'w' && c != 'm' {
			return false
		}
	}
	return true
}

func parseMount(s string) (engine.Mount, error) {
	m := engine.Mount{Type: "volume"}
	for _, field := range strings.Split(s, ",") {
		k, v, hasV := strings.Cut(field, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "dst", "destination":
			m.Target = v
		case "readonly", "ro":
			m.ReadOnly = !hasV || v == "true" || v == "1"
		case "bind-propagation":
			m.BindPropagation = v
		case "tmpfs-size":
			n, err := engine.ParseSize(v)
			if err != nil {
				return m, fmt.Errorf("invalid argument %q for \"--mount\" flag: %w", s, err)
			}
			m.TmpfsSize = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, fmt.Errorf("invalid argument %q for \"--mount\" flag: bad tmpfs-mode %s", s, v)
			}
			m.TmpfsMode = uint32(n)
		case "volume-nocopy", "consistency", "bind-nonrecursive":
		default:
			return m, fmt.Errorf("invalid argument %q for \"--mount\" flag: unexpected key '%s' in '%s'", s, k, field)
		}
	}
	if m.Target == "" {
		return m, fmt.Errorf("invalid argument %q for \"--mount\" flag: target is required", s)
	}
	return m, nil
}

func registerRunCommands() {
	rootCmd.AddCommand(newRunCmd(), newCreateCmd(), newStartCmd(), newAttachCmd())
}

// registerRunOnly builds `berth run` alone, for a command line that runs it.
func registerRunOnly() { rootCmd.AddCommand(newRunCmd()) }

func newRunCmd() *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  requireArgs(1, "Create and run a new container from an image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd, f, args)
		},
	}
	cmd.Flags().SetInterspersed(false)
	f.add(cmd.Flags(), true)
	return cmd
}

func newCreateCmd() *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  requireArgs(1, "Create a new container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd, args)
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			e, err := openEngine()
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			c, err := e.Create(o)
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			fmt.Println(c.ID)
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	f.add(cmd.Flags(), false)
	return cmd
}

func runRun(cmd *cobra.Command, f *runFlags, args []string) error {
	o, err := f.options(cmd, args)
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	stdinTTY := isTerminal(os.Stdin)
	if f.tty && f.interactive && !f.detach && !stdinTTY {
		return &exitError{code: 1, err: errors.New("the input device is not a TTY")}
	}
	// Creating and starting a container allocates a few MB that all live until it runs:
	// a garbage collection meanwhile frees nothing. Collection resumes for the attach
	// loop, which may run for as long as the container does.
	gc := debug.SetGCPercent(-1)
	e, err := openEngine()
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	if f.detach {
		o.Config.AttachStdout, o.Config.AttachStderr = false, false
	}
	var proxy *sigProxy
	if !f.detach && f.sigProxy && !f.tty {
		if proxy, err = startSigProxy(e); err != nil {
			return &exitError{code: 125, err: err}
		}
	}
	o.StartAfter = true
	c, err := e.Create(o)
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	if f.detach {
		if _, err := e.Start(c.ID, 0); err != nil {
			return startFailed(e, c, err)
		}
		fmt.Println(c.ID)
		return nil
	}
	want := byte(monitor.WantStdout | monitor.WantStderr | monitor.WantCleanup)
	if f.interactive {
		want |= monitor.WantStdin
	}
	s, err := e.Start(c.ID, want)
	if err != nil {
		return startFailed(e, c, err)
	}
	debug.SetGCPercent(gc)
	code, err := attachLoop(e, s, c.ID, attachOpts{stdin: f.interactive, tty: f.tty, sigProxy: proxy != nil,
		detachKeys: f.detachKeys, untilStart: true, proxy: proxy})
	runtime.Trace("run attached")
	if err != nil {
		var se *engine.StartError
		if errors.As(err, &se) {
			return startFailed(e, c, err)
		}
		return &exitError{code: 125, err: err}
	}
	return &exitError{code: code}
}

// startFailed reports a container that could not start with Docker's exit code (126, 127,
// else 125), removing it first if it was --rm.
func startFailed(e *engine.Engine, c *engine.Container, err error) error {
	if c.HostConfig.AutoRemove {
		e.Remove(c.ID, true, true)
	}
	var se *engine.StartError
	if errors.As(err, &se) {
		return &exitError{code: se.Code, err: err}
	}
	return &exitError{code: 125, err: err}
}

func newStartCmd() *cobra.Command {
	var attach, interactive bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  requireArgs(1, "Start one or more stopped containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			if attach || interactive {
				if len(args) > 1 {
					return errors.New("you cannot start and attach multiple containers at once")
				}
				info, err := e.Inspect(args[0])
				if err != nil {
					return err
				}
				want := byte(monitor.WantStdout | monitor.WantStderr | monitor.WantCleanup)
				if interactive && info.Container.Config.OpenStdin {
					want |= monitor.WantStdin
				}
				s, err := e.Start(args[0], want)
				if err != nil {
					return err
				}
				code, err := attachLoop(e, s, info.Container.ID, attachOpts{stdin: want&monitor.WantStdin != 0,
					tty: info.Container.Config.Tty, sigProxy: !info.Container.Config.Tty, detachKeys: detachKeys, untilStart: !info.Running()})
				if err != nil {
					return err
				}
				return &exitError{code: code}
			}
			return forEach(args, true, func(ref string) error {
				_, err := e.Start(ref, 0)
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "ctrl-p,ctrl-q", "Override the key sequence for detaching a container")
	return cmd
}

func newAttachCmd() *cobra.Command {
	var noStdin bool
	var sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1, "Attach local standard input, output, and error streams to a running container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			info, err := e.Inspect(args[0])
			if err != nil {
				return err
			}
			c := info.Container
			stdin := c.Config.OpenStdin && !noStdin
			if stdin && c.Config.Tty && !isTerminal(os.Stdin) {
				return errors.New("the input device is not a TTY")
			}
			want := byte(monitor.WantStdout | monitor.WantStderr)
			if stdin {
				want |= monitor.WantStdin
			}
			s, err := e.Attach(c.ID, want)
			if err != nil {
				return err
			}
			code, err := attachLoop(e, s, c.ID, attachOpts{stdin: stdin, tty: c.Config.Tty, sigProxy: sigProxy && !c.Config.Tty, detachKeys: detachKeys})
			if err != nil {
				return err
			}
			return &exitError{code: code}
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "ctrl-p,ctrl-q", "Override the key sequence for detaching a container")
	return cmd
}
