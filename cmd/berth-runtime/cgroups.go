package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/berth-containers/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func pauseCmd() *command {
	return &command{
		Use: "pause CONTAINER_ID", Short: "Freeze every process of a container", Args: oneID,
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			return r.Pause(args[0])
		},
	}
}

func resumeCmd() *command {
	return &command{
		Use: "resume CONTAINER_ID", Short: "Thaw a paused container", Args: oneID,
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			return r.Resume(args[0])
		},
	}
}

func psCmd() *command {
	var format string
	cmd := &command{
		Use:   "ps [flags] CONTAINER_ID [ps options]",
		Short: "List the processes of a container (ps -ef by default)",
		Args:  minArgs(1),
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			pids, err := r.Pids(args[0])
			if err != nil {
				return err
			}
			switch format {
			case "json":
				if pids == nil {
					pids = []int{}
				}
				return json.NewEncoder(os.Stdout).Encode(pids)
			case "table":
				return psTable(pids, args[1:])
			default:
				return fmt.Errorf("--format %q: must be table or json", format)
			}
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// psTable runs the host's ps and keeps the header and the container's rows, as runc does.
func psTable(pids []int, psArgs []string) error {
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	if !sc.Scan() {
		return fmt.Errorf("ps %s printed nothing", strings.Join(psArgs, " "))
	}
	header := sc.Text()
	col := -1
	for i, f := range strings.Fields(header) {
		if f == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps %s: its output has no PID column", strings.Join(psArgs, " "))
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	fmt.Println(header)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > col {
			if p, err := strconv.Atoi(f[col]); err == nil && in[p] {
				fmt.Println(sc.Text())
			}
		}
	}
	return nil
}

func eventsCmd() *command {
	var stats bool
	var interval time.Duration
	cmd := &command{
		Use:   "events [flags] CONTAINER_ID",
		Short: "Print a container's stats and OOM events as JSON lines",
		Args:  oneID,
		RunE: func(cmd *command, args []string) error {
			r, err := newRuntime()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(os.Stdout)
			if stats {
				s, err := r.Stats(args[0])
				if err != nil {
					return err
				}
				return enc.Encode(runtime.Event{Type: "stats", ID: args[0], Data: s})
			}
			ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
			defer stop()
			return r.Events(ctx, args[0], interval, func(e runtime.Event) error { return enc.Encode(e) })
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print the stats once and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "time between stats events")
	return cmd
}

// updateFlags are runc's `update` flags; each one set overrides --resources.
type updateFlags struct {
	resources                                      string
	blkioWeight                                    uint16
	cpuPeriod, cpuRtPeriod                         uint64
	cpuQuota, cpuRtRuntime                         int64
	cpuShare                                       uint64
	cpusetCpus, cpusetMems                         string
	memory, memoryReservation, memorySwap, kernMem string
	pidsLimit                                      int64
}

func updateCmd() *command {
	var u updateFlags
	cmd := &command{
		Use:   "update [flags] CONTAINER_ID",
		Short: "Change a running container's resource limits",
		Args:  oneID,
		RunE: func(cmd *command, args []string) error {
			res, err := u.build(cmd)
			if err != nil {
				return err
			}
			r, err := newRuntime()
			if err != nil {
				return err
			}
			return r.Update(args[0], res)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&u.resources, "resources", "r", "", "path to a JSON file of linux.resources, or - for stdin")
	f.Uint16Var(&u.blkioWeight, "blkio-weight", 0, "block IO weight, 10 to 1000")
	f.Uint64Var(&u.cpuPeriod, "cpu-period", 0, "CPU CFS period in microseconds")
	f.Int64Var(&u.cpuQuota, "cpu-quota", 0, "CPU CFS quota in microseconds")
	f.Uint64Var(&u.cpuRtPeriod, "cpu-rt-period", 0, "CPU realtime period in microseconds")
	f.Int64Var(&u.cpuRtRuntime, "cpu-rt-runtime", 0, "CPU realtime runtime in microseconds")
	f.Uint64Var(&u.cpuShare, "cpu-share", 0, "CPU shares (relative weight)")
	f.StringVar(&u.cpusetCpus, "cpuset-cpus", "", "CPUs to use (0-3, 0,1)")
	f.StringVar(&u.cpusetMems, "cpuset-mems", "", "memory nodes to use (0-3, 0,1)")
	f.StringVar(&u.memory, "memory", "", "memory limit, e.g. 64m (-1 for none)")
	f.StringVar(&u.memoryReservation, "memory-reservation", "", "memory soft limit")
	f.StringVar(&u.memorySwap, "memory-swap", "", "memory plus swap limit (-1 for none)")
	f.StringVar(&u.kernMem, "kernel-memory", "", "kernel memory limit (deprecated, refused)")
	f.Int64Var(&u.pidsLimit, "pids-limit", 0, "maximum number of processes (-1 for none)")
	return cmd
}

func (u *updateFlags) build(cmd *command) (*specs.LinuxResources, error) {
	res := &specs.LinuxResources{}
	if u.resources != "" {
		var rd io.Reader = os.Stdin
		if u.resources != "-" {
			f, err := os.Open(u.resources)
			if err != nil {
				return nil, fmt.Errorf("--resources: %w", err)
			}
			defer f.Close()
			rd = f
		}
		if err := json.NewDecoder(rd).Decode(res); err != nil {
			return nil, fmt.Errorf("--resources %s: not valid linux.resources JSON: %w", u.resources, err)
		}
	}
	set := cmd.Flags().Changed
	cpu := func() *specs.LinuxCPU {
		if res.CPU == nil {
			res.CPU = &specs.LinuxCPU{}
		}
		return res.CPU
	}
	mem := func() *specs.LinuxMemory {
		if res.Memory == nil {
			res.Memory = &specs.LinuxMemory{}
		}
		return res.Memory
	}
	if set("blkio-weight") {
		res.BlockIO = &specs.LinuxBlockIO{Weight: &u.blkioWeight}
	}
	if set("cpu-period") {
		cpu().Period = &u.cpuPeriod
	}
	if set("cpu-quota") {
		cpu().Quota = &u.cpuQuota
	}
	if set("cpu-rt-period") {
		cpu().RealtimePeriod = &u.cpuRtPeriod
	}
	if set("cpu-rt-runtime") {
		cpu().RealtimeRuntime = &u.cpuRtRuntime
	}
	if set("cpu-share") {
		cpu().Shares = &u.cpuShare
	}
	if set("cpuset-cpus") {
		cpu().Cpus = u.cpusetCpus
	}
	if set("cpuset-mems") {
		cpu().Mems = u.cpusetMems
	}
	for _, m := range []struct {
		flag string
		val  string
		dst  func(int64)
	}{
		{"memory", u.memory, func(v int64) { mem().Limit = &v }},
		{"memory-reservation", u.memoryReservation, func(v int64) { mem().Reservation = &v }},
		{"memory-swap", u.memorySwap, func(v int64) { mem().Swap = &v }},
	} {
		if !set(m.flag) {
			continue
		}
		v, err := parseBytes(m.val)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", m.flag, err)
		}
		m.dst(v)
	}
	if set("kernel-memory") {
		return nil, fmt.Errorf("--kernel-memory: kernel memory limits are deprecated by the kernel and not supported")
	}
	if set("pids-limit") {
		res.Pids = &specs.LinuxPids{Limit: &u.pidsLimit}
	}
	return res, nil
}

// parseBytes reads sizes such as 64m, 1G, 512k or 1048576; -1 means no limit.
func parseBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "b"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		case 't':
			mult, t = 1<<40, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid size %q (a number with an optional k, m, g or t suffix, or -1)", s)
	}
	return v * mult, nil
}
