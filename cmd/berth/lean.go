//go:build berth_lean

package main

// In the lean build (bin/berth) the image commands are berth-full's: handOff runs them.
func registerImageCommands() {}
