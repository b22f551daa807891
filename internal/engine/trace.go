package engine

import (
	"fmt"
	"os"
	"time"
)

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
