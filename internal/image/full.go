//go:build !berth_lean

package image

// Lean tells whether this is the lean build of berth (lean.go); this is the full one.
const Lean = false
