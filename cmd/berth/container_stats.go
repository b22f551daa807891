package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-containers/berth/internal/engine"
)

func registerStatsCommands() {
	rootCmd.AddCommand(newStatsCmd(), newCpCmd())
}

// decimalSize is Docker's size for network and block I/O: decimal units, 3 significant
// digits ("1.2kB").
func decimalSize(n uint64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return trimFloat(f) + units[i]
}

// binarySize is Docker's size for memory: binary units ("1.5MiB").
func binarySize(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return trimFloat(f) + units[i]
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.3g", f)
	if strings.Contains(s, "e") {
		s = fmt.Sprintf("%.0f", f)
	}
	return s
}

type statsRow struct {
	Container string `json:"Container"`
	ID        string `json:"ID"`
	Name      string `json:"Name"`
	CPUPerc   string `json:"CPUPerc"`
	MemUsage  string `json:"MemUsage"`
	MemPerc   string `json:"MemPerc"`
	NetIO     string `json:"NetIO"`
	BlockIO   string `json:"BlockIO"`
	PIDs      string `json:"PIDs"`
}

var statsHeaders = map[string]string{"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}

func newStatsCmd() *cobra.Command {
	var all, noStream, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			refs := args
			explicit := len(args) > 0
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			tty := isTerminal(os.Stdout)
			prev := map[string]*engine.Stats{}
			if format == "" {
				format = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
			}
			sample := func() ([]statsRow, error) {
				if !explicit {
					infos, err := e.List()
					if err != nil {
						return nil, err
					}
					refs = refs[:0]
					for _, i := range infos {
						if all || i.Running() {
							refs = append(refs, i.Container.ID)
						}
					}
				}
				var rows []statsRow
				var errs []string
				for _, ref := range refs {
					s, err := e.Stat(ref)
					if err != nil {
						if explicit {
							errs = append(errs, err.Error())
						}
						continue
					}
					p := prev[s.ID]
					prev[s.ID] = s
					id := s.ID
					if !noTrunc {
						id = id[:12]
					}
					memPerc := 0.0
					if s.MemLimit > 0 {
						memPerc = float64(s.MemUsage) / float64(s.MemLimit) * 100
					}
					rows = append(rows, statsRow{Container: ref, ID: id, Name: s.Name,
						CPUPerc:  fmt.Sprintf("%.2f%%", engine.CPUPercent(p, s)),
						MemUsage: binarySize(s.MemUsage) + " / " + binarySize(s.MemLimit),
						MemPerc:  fmt.Sprintf("%.2f%%", memPerc),
						NetIO:    decimalSize(s.NetRx) + " / " + decimalSize(s.NetTx),
						BlockIO:  decimalSize(s.BlockRead) + " / " + decimalSize(s.BlockWrite),
						PIDs:     fmt.Sprint(s.Pids)})
				}
				if len(errs) > 0 {
					return rows, errors.New(strings.Join(errs, "\n"))
				}
				return rows, nil
			}
			// CPU % needs two samples: the first is taken half a second before the first
			// table, as Docker's daemon keeps the previous one.
			if _, err := sample(); err != nil {
				return err
			}
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
				rows, err := sample()
				if err != nil {
					return err
				}
				if tty && !noStream {
					fmt.Print("\033[2J\033[H")
				}
				if err := printRows(format, rows, statsHeaders); err != nil {
					return err
				}
				if noStream {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	return cmd
}

func newCpCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Args:  exactArgs(2, "Copy files/folders between a container and the local filesystem"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			splitRef := func(s string) (string, string, bool) {
				if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") {
					return "", s, false
				}
				c, p, ok := strings.Cut(s, ":")
				if !ok || c == "" {
					return "", s, false
				}
				return c, p, true
			}
			sc, sp, sIn := splitRef(args[0])
			dc, dp, dIn := splitRef(args[1])
			switch {
			case sIn && dIn:
				return errors.New("copying between containers is not supported")
			case sIn:
				return e.CopyFrom(sc, sp, dp, os.Stdout)
			case dIn:
				if dp == "" {
					dp = "/"
				}
				return e.CopyTo(dc, sp, os.Stdin, dp)
			}
			return errors.New("must specify at least one container source")
		},
	}
	cmd.Flags().BoolP("archive", "a", false, "Archive mode (copy all uid/gid information)")
	cmd.Flags().BoolP("follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	return cmd
}
