package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func registerExportCommands() {
	rootCmd.AddCommand(newExportCmd())
}

func newExportCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  requireArgs(1, "Export a container's filesystem as a tar archive"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("\"berth export\" requires exactly 1 argument")
			}
			var w io.Writer = os.Stdout
			if output == "" && term.IsTerminal(int(os.Stdout.Fd())) {
				return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			e, err := openEngine()
			if err != nil {
				return err
			}
			if output != "" {
				tmp := output + ".tmp"
				f, err := os.Create(tmp)
				if err != nil {
					return fmt.Errorf("export -o %s: %w", output, err)
				}
				if err := e.Export(args[0], f); err != nil {
					f.Close()
					os.Remove(tmp)
					return err
				}
				if err := f.Close(); err != nil {
					os.Remove(tmp)
					return err
				}
				return os.Rename(tmp, output)
			}
			return e.Export(args[0], w)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}
