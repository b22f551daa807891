// Command berth is the daemonless container engine: images, containers, volumes, networks
// and the namespace view, with Docker's command names and habits.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// rootCmd is the `berth` command; each area of the CLI adds its subcommands from its own
// file's init(), so the engine, image, network and ns commands stay apart.
var rootCmd = &cobra.Command{
	Use:           "berth",
	Short:         "A daemonless container engine",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Show the berth version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Printf("berth version %s\n", version)
		},
	})
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "berth: %v\n", err)
		os.Exit(exitCode(err))
	}
}

// exitCode maps an error to Docker's exit codes: 125 when the engine itself failed.
func exitCode(err error) int {
	type coder interface{ ExitCode() int }
	if c, ok := err.(coder); ok {
		return c.ExitCode()
	}
	return 125
}
