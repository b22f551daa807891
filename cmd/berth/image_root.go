package main

import (
	"os"

	"github.com/berth-containers/berth/internal/image"
)

// The --root flag belongs to the whole CLI; it is defined here only if no other file's init
// has defined it already, so whichever area lands first owns it.
func init() {
	if rootCmd.PersistentFlags().Lookup("root") != nil {
		return
	}
	def := os.Getenv("BERTH_ROOT")
	if def == "" {
		def = image.DefaultRoot
	}
	rootCmd.PersistentFlags().String("root", def, "directory for berth's state (also BERTH_ROOT)")
}

func berthRoot() string {
	if f := rootCmd.PersistentFlags().Lookup("root"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	if r := os.Getenv("BERTH_ROOT"); r != "" {
		return r
	}
	return image.DefaultRoot
}

func openStore() (*image.Store, error) { return image.Open(berthRoot()) }
