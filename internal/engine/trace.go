package engine

import "github.com/berth-containers/berth/internal/runtime"

// trace is a $BERTH_TRACE point (runtime.Trace).
func trace(what string) { runtime.Trace(what) }
