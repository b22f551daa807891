package main

import (
	"fmt"
	goruntime "runtime"

	"github.com/spf13/cobra"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Show the berth version information",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Printf("Client: berth\n Version:           %s\n Go version:        %s\n OS/Arch:           %s/%s\n",
				version, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
			fmt.Printf("\nEngine: berth (daemonless)\n Version:          %s\n Runtime:          built-in (internal/runtime)\n", version)
		},
	})
}
