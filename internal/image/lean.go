//go:build berth_lean

package image

// The lean build (go build -tags berth_lean), which is bin/berth: the image store without
// go-containerregistry's registry and name packages, klauspost/compress, net/http and
// crypto/tls. Their package initialisation (go-digest's regexps, the CRC tables, CPU
// probes) and the page faults of a binary half again as large: from the C constructor to
// main, `berth run` took 2.0 ms with them and 1.4 ms without, and the whole run 0.8 ms
// less (paired runs, docs/benchmarks.md). What is left out answers ErrFullBinary, and
// cmd/berth hands the command to berth-full (the same program, built without the tag),
// which does it all.

import (
	"context"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Lean tells whether this is the lean build.
const Lean = true

// CanonicalName is the store's key for ref, for the references canonicalFast knows.
func CanonicalName(ref string) (string, error) {
	if c, ok := canonicalFast(ref); ok {
		return c, nil
	}
	return "", ErrFullBinary
}

func (s *Store) ensureLayer(blob, diffID v1.Hash, fetch func() (io.ReadCloser, error), prog *progressLayer) (struct{}, error) {
	return struct{}{}, ErrFullBinary
}

// PullOptions and the rest are the full build's; here they only let the engine compile.
type PullOptions struct {
	Progress *Progress
}

// Pull is the full build's.
func (s *Store) Pull(ctx context.Context, ref string, o PullOptions) (*Image, error) {
	return nil, ErrFullBinary
}
