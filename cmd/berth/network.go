package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-containers/berth/internal/engine"
	"github.com/berth-containers/berth/internal/network"
)

// networkRoot is the engine state root of the network commands (--root, $BERTH_ROOT).
var networkRoot string

func openNetworks() (*network.Manager, error) {
	if engine.Rootless() {
		return nil, errors.New("bridge networks need root; a rootless container uses slirp4netns, none or host, and its published ports show in `berth ps` and `berth inspect`")
	}
	return network.Open(networkRoot)
}

func registerNetworkCommands() {
	netCmd := &cobra.Command{
		Use:   "network",
		Short: "Manage networks",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	netCmd.PersistentFlags().StringVar(&networkRoot, "root", network.DefaultRoot(), "engine state root (env BERTH_ROOT)")

	var copts network.CreateOptions
	create := &cobra.Command{
		Use:   "create [--subnet CIDR] [--gateway IP] [--internal] NAME",
		Short: "Create a bridge network",
		Args:  netExactArgs(1, "a network name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if d, _ := cmd.Flags().GetString("driver"); d != "bridge" {
				return fmt.Errorf("network driver %q is not supported: only bridge", d)
			}
			m, err := openNetworks()
			if err != nil {
				return err
			}
			n, err := m.Create(args[0], copts)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), n.ID)
			return nil
		},
	}
	create.Flags().StringVar(&copts.Subnet, "subnet", "", "subnet in CIDR form (default: a free /24 of 10.78.0.0/15)")
	create.Flags().StringVar(&copts.Gateway, "gateway", "", "gateway address in the subnet (default: its first address)")
	create.Flags().BoolVar(&copts.Internal, "internal", false, "no access to or from outside the host")
	create.Flags().StringP("driver", "d", "bridge", "network driver (only bridge)")

	var quiet bool
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			nets, err := m.List()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if quiet {
				for _, n := range nets {
					fmt.Fprintln(out, n.ID[:12])
				}
				return nil
			}
			w := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "NETWORK ID\tNAME\tDRIVER\tSUBNET\tGATEWAY\tBRIDGE\tCONTAINERS")
			for _, n := range nets {
				name := n.Name
				if n.Internal {
					name += " (internal)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", n.ID[:12], name, n.Driver, n.Subnet, n.Gateway, n.Bridge, len(n.Containers))
			}
			fmt.Fprintln(w, "-\thost\thost\t-\t-\t-\t-")
			fmt.Fprintln(w, "-\tnone\tnull\t-\t-\t-\t-")
			return w.Flush()
		},
	}
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "only network ids")

	inspect := &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks and their containers as JSON",
		Args:  netMinArgs(1, "a network"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			var infos []*network.NetworkInfo
			var errs []error
			for _, a := range args {
				info, err := m.Inspect(a)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				infos = append(infos, info)
			}
			if len(infos) > 0 {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "    ")
				if err := enc.Encode(infos); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}

	rm := &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks (refused while containers are on them)",
		Args:    netMinArgs(1, "a network"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			var errs []error
			for _, a := range args {
				if err := m.Remove(a); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), a)
			}
			return errors.Join(errs...)
		},
	}

	var aliases []string
	connect := &cobra.Command{
		Use:   "connect [--alias NAME] NETWORK CONTAINER",
		Short: "Connect a running container to a network",
		Args:  netExactArgs(2, "a network and a container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			_, err = m.Connect(context.Background(), args[1], args[0], aliases)
			return err
		},
	}
	connect.Flags().StringSliceVar(&aliases, "alias", nil, "more names for the container on this network")

	disconnect := &cobra.Command{
		Use:   "disconnect NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  netExactArgs(2, "a network and a container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			return m.Disconnect(args[1], args[0])
		},
	}

	netCmd.AddCommand(create, ls, inspect, rm, connect, disconnect)
	rootCmd.AddCommand(netCmd)

	port := &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List a container's published ports",
		Args:  netRangeArgs(1, 2, "a container and optionally a port"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openNetworks()
			if err != nil {
				return err
			}
			ports, err := m.Ports(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(args) == 1 {
				for _, p := range ports {
					fmt.Fprintln(out, p)
				}
				return nil
			}
			want, proto, _ := strings.Cut(args[1], "/")
			if proto == "" {
				proto = "tcp"
			}
			found := false
			for _, p := range ports {
				if fmt.Sprint(p.ContainerPort) == want && p.Protocol == proto {
					_, hp, _ := strings.Cut(p.String(), " -> ")
					fmt.Fprintln(out, hp)
					found = true
				}
			}
			if !found {
				return fmt.Errorf("no public port '%s/%s' published for %s", want, proto, args[0])
			}
			return nil
		},
	}
	port.Flags().StringVar(&networkRoot, "root", network.DefaultRoot(), "engine state root (env BERTH_ROOT)")
	rootCmd.AddCommand(port)
}

func netExactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%q needs %s (see %s --help)", cmd.CommandPath(), what, cmd.CommandPath())
		}
		return nil
	}
}

func netMinArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%q needs at least %s (see %s --help)", cmd.CommandPath(), what, cmd.CommandPath())
		}
		return nil
	}
}

func netRangeArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return fmt.Errorf("%q needs %s (see %s --help)", cmd.CommandPath(), what, cmd.CommandPath())
		}
		return nil
	}
}
