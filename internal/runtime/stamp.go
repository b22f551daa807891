package runtime

import "os"

// BuildStamp names the build this binary comes from; the build sets it for all of its
// binaries at once (-ldflags "-X github.com/berth-containers/berth/internal/runtime.BuildStamp=...").
// Two binaries with the same non-empty stamp speak the same init protocol, so one may
// drive a create whose init is the other: the engine (a large, dynamically linked berth)
// has the small static berth-runtime next to it be the containers' init, which starts
// faster. Empty means unknown: no other binary is trusted to match.
var BuildStamp string

// StampQueryEnv, set to 1 in a binary's environment, makes it print its BuildStamp and
// exit before anything else runs; it is how the engine reads berth-runtime's.
const StampQueryEnv = "_BERTH_BUILD_STAMP_QUERY"

func init() {
	if os.Getenv(StampQueryEnv) == "1" {
		os.Stdout.WriteString(BuildStamp + "\n")
		os.Exit(0)
	}
}
