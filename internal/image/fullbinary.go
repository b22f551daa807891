package image

import "errors"

// ErrFullBinary is what the lean build of berth (lean.go) answers for work it leaves to the
// full one, berth-full: registries, compression, archives, references it does not parse.
// The command is then run again by berth-full, from the start.
var ErrFullBinary = errors.New("this needs berth-full (registries, compressed layers, archives)")
