package image

import (
	"fmt"
	"strings"

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

// FamiliarName shortens a canonical name the way Docker prints it: docker.io/library/busybox
// becomes busybox, docker.io/user/app becomes user/app, other registries stay.
func FamiliarName(canon string) string {
	s := strings.TrimPrefix(canon, "docker.io/")
	if s != canon {
		s = strings.TrimPrefix(s, "library/")
	}
	return s
}

// SplitName splits a canonical or familiar name into repository and tag (or digest).
func SplitName(n string) (repo, tag string) {
	if i := strings.LastIndex(n, "@"); i >= 0 {
		return n[:i], n[i+1:]
	}
	slash := strings.LastIndex(n, "/")
	if i := strings.LastIndex(n, ":"); i > slash {
		return n[:i], n[i+1:]
	}
	return n, ""
}
