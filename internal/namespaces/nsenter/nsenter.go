// Package nsenter runs, before the Go runtime starts, the namespace stage of a berth
// process that must join or create namespaces (see nsenter.c). Importing it for its side
// effect is all a binary needs; it does nothing unless the parent set _BERTH_INITPIPE.
package nsenter

/*
#cgo CFLAGS: -Wall -Wextra -O2
*/
import "C"
