package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-containers/berth/internal/engine"
)

// healthFlags are run's and create's --health-* and --no-healthcheck.
type healthFlags struct {
	cmd                                        string
	interval, timeout, startPeriod, startEvery time.Duration
	retries                                    int
	none                                       bool
}

func (f *healthFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.cmd, "health-cmd", "", "Command to run to check health")
	fs.DurationVar(&f.interval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	fs.DurationVar(&f.timeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	fs.DurationVar(&f.startPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	fs.DurationVar(&f.startEvery, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
	fs.IntVar(&f.retries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	fs.BoolVar(&f.none, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
}

// config turns the flags into Config.Healthcheck, as Docker's CLI does: nil when none is
// given (the image's applies), ["NONE"] for --no-healthcheck.
func (f *healthFlags) config() (*engine.HealthConfig, error) {
	set := f.cmd != "" || f.interval != 0 || f.timeout != 0 || f.startPeriod != 0 || f.retries != 0 || f.startEvery != 0
	if f.none {
		if set {
			return nil, errors.New("--no-healthcheck conflicts with --health-* options")
		}
		return &engine.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !set {
		return nil, nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", f.interval}, {"timeout", f.timeout}, {"start-period", f.startPeriod}, {"start-interval", f.startEvery}} {
		if d.v < 0 {
			return nil, fmt.Errorf("--health-%s cannot be negative", d.name)
		}
	}
	if f.retries < 0 {
		return nil, errors.New("--health-retries cannot be negative")
	}
	h := &engine.HealthConfig{Interval: f.interval, Timeout: f.timeout, StartPeriod: f.startPeriod,
		StartInterval: f.startEvery, Retries: f.retries}
	if f.cmd != "" {
		h.Test = []string{"CMD-SHELL", f.cmd}
	}
	return h, nil
}

func registerHealthCommands() {
	hc := &cobra.Command{Use: "healthcheck", Short: "Manage health checks of containers", Args: cobra.NoArgs}
	var fromMonitor bool
	run := &cobra.Command{
		Use:   "run CONTAINER",
		Short: "Run the container's health check once and record its result",
		Long: "Run the container's health check once and record its result, as the container's monitor does at each interval.\n" +
			"Prints healthy and exits 0 when the check passes, prints unhealthy and exits 1 when it fails.",
		Args: exactArgs(1, "Run the container's health check once"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			_, passed, err := e.HealthcheckRun(args[0], fromMonitor)
			if errors.Is(err, engine.ErrHealthcheckSkipped) {
				return &exitError{code: 2}
			}
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			if !passed {
				fmt.Println(engine.HealthUnhealthy)
				return &exitError{code: 1}
			}
			fmt.Println(engine.HealthHealthy)
			return nil
		},
	}
	run.Flags().BoolVar(&fromMonitor, "from-monitor", false, "")
	run.Flags().MarkHidden("from-monitor")
	hc.AddCommand(run)
	rootCmd.AddCommand(hc)
}

// healthText is ps's suffix to "Up ...": Docker's " (healthy)", " (unhealthy)", " (health:
// starting)"; nothing for a paused container or one without a check.
func healthText(i *engine.Info) string {
	if i.Health == nil || i.State.Status != engine.StatusRunning {
		return ""
	}
	if i.Health.Status == engine.HealthStarting {
		return " (health: starting)"
	}
	return " (" + i.Health.Status + ")"
}

// healthFilter is ps's --filter health=...
func healthFilter(i *engine.Info, v string) (bool, error) {
	switch v {
	case engine.HealthStarting, engine.HealthHealthy, engine.HealthUnhealthy, engine.HealthNone:
	default:
		return false, engine.Message("Unrecognised filter value for health: " + v)
	}
	if i.Health == nil {
		return v == engine.HealthNone, nil
	}
	return i.Health.Status == v, nil
}
