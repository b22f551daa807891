package main

import (
	"fmt"
	"os"
	goruntime "runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-containers/berth/internal/engine"
	"github.com/berth-containers/berth/internal/image"
)

func registerSystemCommands() {
	var vformat string
	versionCmd := &cobra.Command{
		Use:   "version",
		Short: "Show the berth version information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := map[string]any{"Client": map[string]string{"Version": version, "GoVersion": goruntime.Version(),
				"Os": goruntime.GOOS, "Arch": goruntime.GOARCH},
				"Server": map[string]string{"Version": version, "Runtime": "berth (built-in)", "Daemon": "none"}}
			if vformat != "" {
				return executeFormat(vformat, v)
			}
			fmt.Printf("Client: berth\n Version:           %s\n Go version:        %s\n OS/Arch:           %s/%s\n",
				version, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
			fmt.Printf("\nEngine: berth (daemonless: one berth-monitor per running container)\n Version:          %s\n Runtime:          built-in (internal/runtime)\n", version)
			return nil
		},
	}
	versionCmd.Flags().StringVarP(&vformat, "format", "f", "", "Format the output using the given Go template")

	sys := &cobra.Command{Use: "system", Short: "Manage berth", Args: cobra.NoArgs}
	df := &cobra.Command{
		Use:   "df",
		Short: "Show berth disk usage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			lines, err := e.DiskUsage()
			if err != nil {
				return err
			}
			w := newTable()
			fmt.Fprintln(w, "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE")
			for _, l := range lines {
				pct := 0
				if l.Size > 0 {
					pct = int(l.Reclaimable * 100 / l.Size)
				}
				fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s (%d%%)\n", l.Type, l.Total, l.Active, image.HumanSize(l.Size), image.HumanSize(l.Reclaimable), pct)
			}
			return w.Flush()
		},
	}
	var all, volumes, force bool
	prune := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused data",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			warning := "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n"
			if volumes {
				warning += "  - all anonymous volumes not used by at least one container\n"
			}
			if all {
				warning += "  - all images without at least one container associated to them\n"
			} else {
				warning += "  - all dangling images\n"
			}
			if !confirm(force, warning) {
				return nil
			}
			e, err := openEngine()
			if err != nil {
				return err
			}
			rep, err := e.SystemPrune(all, volumes)
			for _, s := range []struct {
				title string
				items []string
			}{{"Deleted Containers:", rep.Containers}, {"Deleted Networks:", rep.Networks}, {"Deleted Volumes:", rep.Volumes}, {"Deleted Images:", rep.Images}} {
				if len(s.items) > 0 {
					fmt.Println(s.title)
					for _, i := range s.items {
						fmt.Println(i)
					}
					fmt.Println()
				}
			}
			fmt.Printf("Total reclaimed space: %s\n", image.HumanSize(rep.Reclaimed))
			return err
		},
	}
	prune.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	prune.Flags().BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	prune.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	restore := &cobra.Command{
		Use:   "restore",
		Short: "Start the containers whose restart policy wants them running (at boot)",
		Long: "Start every container with --restart always, or unless-stopped and not stopped by the user,\n" +
			"that is not running: what a daemon does when it comes back up. Run at boot by\n" +
			"contrib/systemd/berth-restore.service.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			failed := 0
			err = e.Restore(func(c *engine.Container, err error) {
				if err != nil {
					failed++
					fmt.Fprintf(os.Stderr, "berth: restore %s: %v\n", c.Name, err)
					return
				}
				fmt.Println(c.Name)
			})
			if err != nil {
				return err
			}
			if failed > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	sys.AddCommand(df, prune, restore, newInfoCmd())
	rootCmd.AddCommand(versionCmd, newInfoCmd(), sys)
}

func newInfoCmd() *cobra.Command {
	var iformat string
	infoCmd := &cobra.Command{
		Use:   "info",
		Short: "Display system-wide information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			in, err := e.Info()
			if err != nil {
				return err
			}
			if iformat != "" {
				return executeFormat(iformat, in)
			}
			fmt.Printf("Client:\n Version:    %s\n Context:    default\n\nServer:\n", version)
			fmt.Printf(" Containers: %d\n  Running: %d\n  Paused: %d\n  Stopped: %d\n", in.Containers, in.ContainersRunning, in.ContainersPaused, in.ContainersStopped)
			fmt.Printf(" Images: %d\n Volumes: %d\n Server Version: %s\n Storage Driver: %s\n Logging Driver: %s\n Cgroup Driver: %s\n Cgroup Version: %s\n",
				in.Images, in.Volumes, version, in.Driver, in.LoggingDriver, in.CgroupDriver, in.CgroupVersion)
			fmt.Printf(" Runtimes: %s\n Default Runtime: %s\n Security Options:\n", strings.Join(in.Runtimes, " "), in.DefaultRuntime)
			for _, s := range in.SecurityOptions {
				fmt.Printf("  %s\n", s)
			}
			fmt.Printf(" Kernel Version: %s\n Operating System: %s\n OSType: %s\n Architecture: %s\n CPUs: %d\n Total Memory: %s\n Name: %s\n Berth Root Dir: %s\n Runtime Root Dir: %s\n",
				in.KernelVersion, in.OperatingSystem, in.OSType, in.Architecture, in.NCPU, binarySize(uint64(in.MemTotal)), in.Name, in.BerthRootDir, in.RuntimeRootDir)
			return nil
		},
	}
	infoCmd.Flags().StringVarP(&iformat, "format", "f", "", "Format the output using the given Go template")
	return infoCmd
}
