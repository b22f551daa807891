//go:build !berth_lean

package image

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is how ggcr names Docker Hub; people and Docker's own output say docker.io.
const dockerHub = "index.docker.io"

// ParseReference parses a user's image reference the way Docker does: "busybox" is
// docker.io/library/busybox:latest; a registry host is recognised by a dot, a port or
// "localhost". insecure marks the registry as reachable over plain HTTP.
func ParseReference(ref string, insecure bool) (name.Reference, error) {
	opts := []name.Option{name.WithDefaultRegistry(dockerHub)}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return r, nil
}

// CanonicalName is the fully qualified form of ref that the store keys names by:
// "docker.io/library/busybox:latest", "localhost:5000/app@sha256:...".
func CanonicalName(ref string) (string, error) {
	r, err := ParseReference(ref, false)
	if err != nil {
		return "", err
	}
	return canonical(r), nil
}

func canonical(r name.Reference) string {
	repo := canonicalRepo(r.Context())
	switch t := r.(type) {
	case name.Digest:
		return repo + "@" + t.DigestStr()
	case name.Tag:
		return repo + ":" + t.TagStr()
	}
	return r.Name()
}

func canonicalRepo(repo name.Repository) string {
	reg := repo.RegistryStr()
	if reg == dockerHub {
		reg = "docker.io"
	}
	return reg + "/" + repo.RepositoryStr()
}
