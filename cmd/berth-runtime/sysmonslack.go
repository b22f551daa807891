package main

// sysmonslack.c gives the Go runtime's sysmon thread a timer slack; the reason and the
// measurement are there.

// #cgo LDFLAGS: -Wl,--wrap=pthread_create
import "C"
