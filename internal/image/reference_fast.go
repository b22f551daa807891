package image

import "strings"

// canonicalFast is CanonicalName for the references people type most ("busybox",
// "busybox:1.36", "user/app", "localhost:5000/app:v1", "registry.example/team/app"),
// written here so that the lean build of berth (tag berth_lean, see lean.go) can find an
// image without go-containerregistry's name package, whose dependency go-digest compiles
// its regexps at every start (0.3 ms of CPU before `berth run` reaches main). It
// answers false for anything else (a digest, upper case, an unusual character or length),
// and the caller then takes go-containerregistry's answer (the full build) or hands the
// command to berth-full (the lean build). TestCanonicalFastAgreesWithGGCR checks that
// every answer it gives is go-containerregistry's.
func canonicalFast(ref string) (string, bool) {
	if ref == "" || len(ref) > 255 {
		return "", false
	}
	repo, tag := ref, "latest"
	slash := strings.LastIndexByte(ref, '/')
	if i := strings.LastIndexByte(ref, ':'); i > slash {
		repo, tag = ref[:i], ref[i+1:]
		if !validTag(tag) {
			return "", false
		}
	}
	domain, path := "docker.io", repo
	if i := strings.IndexByte(repo, '/'); i >= 0 {
		first := repo[:i]
		if first == "localhost" || strings.IndexByte(first, '.') >= 0 || strings.IndexByte(first, ':') >= 0 {
			if !validDomain(first) {
				return "", false
			}
			domain, path = first, repo[i+1:]
		}
	}
	if domain == "index.docker.io" {
		domain = "docker.io"
	}
	if domain == "docker.io" && strings.IndexByte(path, '/') < 0 {
		path = "library/" + path
	}
	if len(path) < 2 || !validPath(path) {
		return "", false
	}
	return domain + "/" + path + ":" + tag, true
}

// validTag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(isLowerAlnum(c) || c >= 'A' && c <= 'Z' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validDomain: lower-case host labels of [a-z0-9-] joined by dots, and an optional
// numeric port.
func validDomain(d string) bool {
	host, port := d, ""
	if i := strings.IndexByte(d, ':'); i >= 0 {
		host, port = d[:i], d[i+1:]
		if port == "" || len(port) > 5 {
			return false
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
	}
	if host == "" {
		return false
	}
	label := 0
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case isLowerAlnum(c):
			label++
		case c == '-' && label > 0 && i+1 < len(host) && host[i+1] != '.':
			label++
		case c == '.' && label > 0 && i+1 < len(host):
			label = 0
		default:
			return false
		}
	}
	return true
}

// validPath: components of [a-z0-9] joined by single separators (".", "_", "__" or
// dashes), the components joined by "/".
func validPath(p string) bool {
	for len(p) > 0 {
		comp := p
		if i := strings.IndexByte(p, '/'); i >= 0 {
			comp, p = p[:i], p[i+1:]
			if p == "" {
				return false
			}
		} else {
			p = ""
		}
		if comp == "" || !isLowerAlnum(comp[0]) || !isLowerAlnum(comp[len(comp)-1]) {
			return false
		}
		for i := 1; i < len(comp); i++ {
			c := comp[i]
			if isLowerAlnum(c) {
				continue
			}
			switch {
			case c == '.' || c == '-':
				if !isLowerAlnum(comp[i-1]) && !(c == '-' && comp[i-1] == '-') {
					return false
				}
			case c == '_':
				if !isLowerAlnum(comp[i-1]) && !(comp[i-1] == '_' && i >= 2 && isLowerAlnum(comp[i-2])) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
