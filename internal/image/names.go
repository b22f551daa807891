package image

import "strings"

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
