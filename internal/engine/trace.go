package engine

import (
	"fmt"
	"os"
	"time"
)

// traceFile is $BERTH_TRACE: when set, every berth process on a container's path (the CLI,
// the helpers) appends "SECONDS.MICROSECONDS PID PHASE" lines to it, which is how the
// time of `run --rm` was broken down (docs/architecture.md, The engine). Unset, a trace
// point costs one comparison.
var traceFile = os.Getenv("BERTH_TRACE")

func trace(what string) {
	if traceFile == "" {
		return
	}
	f, err := os.OpenFile(traceFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%d.%06d %d %s\n", time.Now().Unix()%100, time.Now().Nanosecond()/1000, os.Getpid(), what)
	f.Close()
}
