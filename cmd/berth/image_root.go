package main

import (
	"github.com/berth-containers/berth/internal/engine"
	"github.com/berth-containers/berth/internal/image"
)

// The --root flag belongs to the whole CLI; it is defined here only if no other file's init
// has defined it already, so whichever area lands first owns it.
func init() {
	if rootCmd.PersistentFlags().Lookup("root") != nil {
		return
	}
	def := engine.DefaultRoot()
	rootCmd.PersistentFlags().String("root", def, "directory for berth's state (also BERTH_ROOT)")
}

func berthRoot() string {
	if f := rootCmd.PersistentFlags().Lookup("root"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return engine.DefaultRoot()
}

// openStore opens the image store; for an unprivileged user it unpacks inside the user's
// user namespace, as the engine does.
func openStore() (*image.Store, error) { return engine.OpenImageStore(berthRoot()) }
