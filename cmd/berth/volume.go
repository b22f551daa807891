package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-containers/berth/internal/image"
)

func registerVolumeCommands() {
	vol := &cobra.Command{Use: "volume", Short: "Manage volumes", Args: cobra.NoArgs}
	var labels []string
	create := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			if d, _ := cmd.Flags().GetString("driver"); d != "local" {
				return fmt.Errorf("volume driver %q is not supported: only local", d)
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			l := map[string]string{}
			for _, kv := range labels {
				k, v, _ := strings.Cut(kv, "=")
				l[k] = v
			}
			v, err := e.VolumeCreate(name, l)
			if err != nil {
				return err
			}
			fmt.Println(v.Name)
			return nil
		},
	}
	create.Flags().StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	create.Flags().StringP("driver", "d", "local", "Specify volume driver name")

	var quiet bool
	var format string
	ls := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			vols, err := e.VolumeList()
			if err != nil {
				return err
			}
			if quiet {
				for _, v := range vols {
					fmt.Println(v.Name)
				}
				return nil
			}
			type row struct {
				Driver, Name, Mountpoint, Scope string
			}
			var rows []row
			for _, v := range vols {
				rows = append(rows, row{v.Driver, v.Name, v.Mountpoint, v.Scope})
			}
			if format == "" {
				format = "table {{.Driver}}\t{{.Name}}"
			}
			return printRows(format, rows, map[string]string{"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE"})
		},
	}
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	ls.Flags().StringVar(&format, "format", "", "Format output using a custom template")

	var iformat string
	inspect := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  requireArgs(1, "Display detailed information on one or more volumes"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			var docs []any
			var errs []string
			for _, a := range args {
				v, err := e.VolumeInspect(a)
				if err != nil {
					errs = append(errs, err.Error())
					continue
				}
				docs = append(docs, v)
			}
			if iformat != "" {
				for _, d := range docs {
					if err := executeFormat(iformat, d); err != nil {
						return err
					}
				}
			} else {
				if docs == nil {
					docs = []any{}
				}
				b, _ := json.MarshalIndent(docs, "", "    ")
				fmt.Println(string(b))
			}
			if len(errs) > 0 {
				return errors.New(strings.Join(errs, "\n"))
			}
			return nil
		},
	}
	inspect.Flags().StringVarP(&iformat, "format", "f", "", "Format output using a custom template")

	var force bool
	rm := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    requireArgs(1, "Remove one or more volumes"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return forEach(args, true, func(name string) error { return e.VolumeRemove(name, force) })
		},
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "Do not fail when a volume does not exist")

	var all, pforce bool
	prune := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !confirm(pforce, "WARNING! This will remove anonymous local volumes not used by at least one container.") {
				return nil
			}
			e, err := openEngine()
			if err != nil {
				return err
			}
			names, reclaimed, err := e.VolumePrune(all)
			if len(names) > 0 {
				fmt.Println("Deleted Volumes:")
				for _, n := range names {
					fmt.Println(n)
				}
				fmt.Println()
			}
			fmt.Printf("Total reclaimed space: %s\n", image.HumanSize(reclaimed))
			return err
		},
	}
	prune.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	prune.Flags().BoolVarP(&pforce, "force", "f", false, "Do not prompt for confirmation")

	vol.AddCommand(create, ls, inspect, rm, prune)
	rootCmd.AddCommand(vol)
}
