package image

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultPath is the PATH a container gets when neither image nor engine sets one (Docker's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Annotation keys from the OCI image-spec's conversion rules.
const (
	AnnotationStopSignal   = "org.opencontainers.image.stopSignal"
	AnnotationExposedPorts = "org.opencontainers.image.exposedPorts"
	AnnotationOS           = "org.opencontainers.image.os"
	AnnotationArchitecture = "org.opencontainers.image.architecture"
	AnnotationVariant      = "org.opencontainers.image.variant"
	AnnotationAuthor       = "org.opencontainers.image.author"
	AnnotationCreated      = "org.opencontainers.image.created"
	// AnnotationImageUser and AnnotationImageVolumes are berth's: the config's unresolved
	// User, and its Volumes (comma-separated), for the engine to act on.
	AnnotationImageUser    = "org.opencontainers.image.user"
	AnnotationImageVolumes = "org.opencontainers.image.volumes"
)

// ApplyConfig fills spec from an image config, following the OCI image-spec's conversion to
// a runtime config:
//   - process.args = Entrypoint + Cmd (left as they are if the image has neither)
//   - process.env = the spec's env with the image's variables replacing equal names, and
//     PATH=DefaultPath if still unset
//   - process.cwd = WorkingDir ("/" if neither sets one)
//   - annotations: the image's labels, then stopSignal, exposedPorts (comma-separated,
//     sorted), volumes (berth's key, same form), os, architecture, variant, author,
//     created; annotations the spec already has win over labels.
//
// User is returned unresolved (and recorded as the org.opencontainers.image.user
// annotation): it names a user of the container's /etc/passwd, so the engine resolves it
// with ResolveUser once the rootfs is ready. The engine applies `run` overrides afterwards.
func ApplyConfig(spec *specs.Spec, cf *v1.ConfigFile) (user string, err error) {
	if spec == nil || cf == nil {
		return "", fmt.Errorf("apply image config: nil spec or config")
	}
	if spec.Process == nil {
		spec.Process = &specs.Process{}
	}
	c := cf.Config
	if args := append(append([]string{}, c.Entrypoint...), c.Cmd...); len(args) > 0 {
		spec.Process.Args = args
	}
	env := append([]string{}, spec.Process.Env...)
	for _, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", fmt.Errorf("apply image config: invalid environment entry %q", kv)
		}
		replaced := false
		for i, cur := range env {
			if ck, _, _ := strings.Cut(cur, "="); ck == k {
				env[i], replaced = kv, true
			}
		}
		if !replaced {
			env = append(env, kv)
		}
	}
	hasPath := false
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		env = append(env, "PATH="+DefaultPath)
	}
	spec.Process.Env = env
	switch {
	case c.WorkingDir != "":
		spec.Process.Cwd = c.WorkingDir
	case spec.Process.Cwd == "":
		spec.Process.Cwd = "/"
	}

	ann := map[string]string{}
	for k, v := range c.Labels {
		ann[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			ann[k] = v
		}
	}
	set(AnnotationStopSignal, c.StopSignal)
	set(AnnotationExposedPorts, joinKeys(c.ExposedPorts))
	set(AnnotationImageVolumes, joinKeys(c.Volumes))
	set(AnnotationOS, cf.OS)
	set(AnnotationArchitecture, cf.Architecture)
	set(AnnotationVariant, cf.Variant)
	set(AnnotationAuthor, cf.Author)
	set(AnnotationImageUser, c.User)
	if !cf.Created.IsZero() {
		set(AnnotationCreated, cf.Created.UTC().Format("2006-01-02T15:04:05Z07:00"))
	}
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	for k, v := range ann {
		if _, ok := spec.Annotations[k]; !ok {
			spec.Annotations[k] = v
		}
	}
	return c.User, nil
}

func joinKeys(m map[string]struct{}) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// ResolveUser turns an image's User ("", "name", "uid", "name:group", "uid:gid", ...) into
// ids using the /etc/passwd and /etc/group inside rootfs, which are read without following
// any symlink out of it. Supplementary groups are those listing the user in /etc/group. An
// empty user is root. Numeric ids need no entry in the files.
func ResolveUser(rootfs, user string) (specs.User, error) {
	return ResolveUserFrom(func(p string) ([]byte, error) { return ReadInRoot(rootfs, p) }, user)
}

// ResolveUserFrom is ResolveUser with the container's /etc/passwd and /etc/group given by
// read (a file it cannot read counts as empty).
func ResolveUserFrom(read func(path string) ([]byte, error), user string) (specs.User, error) {
	u := specs.User{}
	if user == "" {
		user = "0"
	}
	name, group, hasGroup := strings.Cut(user, ":")
	db := func(p string) [][]string {
		b, err := read(p)
		if err != nil {
			return nil
		}
		return parseDB(b)
	}
	passwd, groups := db("/etc/passwd"), db("/etc/group")

	userName := ""
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		u.UID = uint32(id)
		for _, f := range passwd {
			if len(f) >= 4 && f[2] == name {
				userName = f[0]
				if gid, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					u.GID = uint32(gid)
				}
				break
			}
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) >= 4 && f[0] == name {
				uid, err1 := strconv.ParseUint(f[2], 10, 32)
				gid, err2 := strconv.ParseUint(f[3], 10, 32)
				if err1 != nil || err2 != nil {
					return u, fmt.Errorf("resolve user %q: bad /etc/passwd entry", user)
				}
				u.UID, u.GID, userName, found = uint32(uid), uint32(gid), name, true
				break
			}
		}
		if !found {
			return u, fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
		}
	}
	if hasGroup {
		if gid, err := strconv.ParseUint(group, 10, 32); err == nil {
			u.GID = uint32(gid)
		} else {
			found := false
			for _, f := range groups {
				if len(f) >= 3 && f[0] == group {
					gid, err := strconv.ParseUint(f[2], 10, 32)
					if err != nil {
						return u, fmt.Errorf("resolve group %q: bad /etc/group entry", group)
					}
					u.GID, found = uint32(gid), true
					break
				}
			}
			if !found {
				return u, fmt.Errorf("unable to find group %s: no matching entries in group file", group)
			}
		}
	}
	if userName != "" && !hasGroup {
		for _, f := range groups {
			if len(f) < 4 {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == userName {
					if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil && uint32(gid) != u.GID {
						u.AdditionalGids = append(u.AdditionalGids, uint32(gid))
					}
				}
			}
		}
	}
	return u, nil
}

// ReadInRoot reads the file p inside rootfs, resolving the path as if rootfs were "/".
func ReadInRoot(rootfs, p string) ([]byte, error) {
	dfd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat2(dfd, p, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return io.ReadAll(f)
}

// parseDB splits a colon-separated database file (passwd, group) into its fields, line by
// line, without blank lines and comments.
func parseDB(b []byte) [][]string {
	var out [][]string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}
