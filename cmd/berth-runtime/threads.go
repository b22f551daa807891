package main

// threads.c sets how the Go runtime's threads start (sysmon's timer slack, one P); the
// reasons and the measurements are there.

// #cgo LDFLAGS: -Wl,--wrap=pthread_create
import "C"
