//go:build tools

// Package suite pins the OCI runtime-tools validation suite (v0.9.0) and the versions of
// runtime-spec and selinux its programs build with. It is a module of its own so that the
// project's go.mod keeps its current runtime-spec; build.sh builds the programs from here.
package suite

import (
	_ "github.com/opencontainers/runtime-tools/cmd/runtimetest"
	_ "github.com/opencontainers/runtime-tools/validation/util"
)
