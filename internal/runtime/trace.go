package runtime

import (
	"os"
	"strconv"
	"time"
)

// traceFile is $BERTH_TRACE: when set, every berth process on a container's path (the
// engine's CLI and helpers, the runtime's create) appends "SECONDS.MICROSECONDS PID PHASE"
// lines to it, which is how the time of `berth run --rm` is broken down
// (docs/benchmarks.md). Unset, a trace point costs one comparison.
var traceFile = os.Getenv("BERTH_TRACE")

// Trace records that phase what is reached, when $BERTH_TRACE names a file.
func Trace(what string) {
	if traceFile == "" {
		return
	}
	TraceAt(time.Now(), what)
}

// Tracing tells whether $BERTH_TRACE is set.
func Tracing() bool { return traceFile != "" }

// TraceAt records that phase what was reached at now.
func TraceAt(now time.Time, what string) {
	if traceFile == "" {
		return
	}
	f, err := os.OpenFile(traceFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	us := strconv.Itoa(now.Nanosecond() / 1000)
	for len(us) < 6 {
		us = "0" + us
	}
	f.WriteString(strconv.FormatInt(now.Unix()%100, 10) + "." + us + " " + strconv.Itoa(os.Getpid()) + " " + what + "\n")
	f.Close()
}
