package engine

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/atomicfile"
	"github.com/berth-containers/berth/internal/engine/monitor"
)

// The container store, under <root>:
//
//	containers/<id>/container.json  the Container record (written once, replaced by rename)
//	containers/<id>/state.json      the State, replaced by rename under the lock
//	containers/<id>/config.json     the OCI spec of the current run, for another runtime (--runtime);
//	                                the built-in runtime gets it in memory and keeps its copy in its state
//	containers/<id>/<id>-json.log   the logs, written by the monitor
//	containers/<id>/attach.sock     the monitor's socket while it runs
//	containers/.creating-<id>/      a create in progress (locked by its process)
//	containers/.removing-<id>/      a removal in progress (locked by its process)
//	containers/.removed-<id>/       a removed container's files, deleted by its monitor
//	                                (monitor.RemovedPfx); a listing finishes each of these
//	                                three when no process holds it
//	names/<name>                    a symlink to the id: the claim on the name
//
// Every change to a container takes an exclusive flock on its directory; a directory that
// was removed while a process waited for the lock is seen as gone (link count 0).

const (
	containersDir = "containers"
	namesDir      = "names"
	recordFile    = "container.json"
	stateFile     = "state.json"
	creatingPfx   = ".creating-"
)

// ErrNotFound is returned (wrapped) for a container that does not exist.
var ErrNotFound = errors.New("no such container")

// NotFoundError names the reference that matched no container, in Docker's words.
type NotFoundError struct{ Ref string }

func (e *NotFoundError) Error() string { return "No such container: " + e.Ref }
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

func (e *Engine) containersPath() string { return filepath.Join(e.Root, containersDir) }
func (e *Engine) dir(id string) string   { return filepath.Join(e.Root, containersDir, id) }
func (e *Engine) namePath(n string) string {
	return filepath.Join(e.Root, namesDir, n)
}

// newID returns 64 random hex digits, as Docker's ids are, never all digits (so a short id
// is never mistaken for a number).
func newID() (string, error) {
	var b [32]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("generate container id: %w", err)
		}
		id := hex.EncodeToString(b[:])
		if strings.Trim(id[:12], "0123456789") != "" {
			return id, nil
		}
	}
}

// isID tells whether s is a full container id: 64 lowercase hex digits. (Checks by hand
// rather than regexps: these run on every command, and compiling a regexp at start-up
// costs more than all the checks of a command.)
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isName tells whether s is a valid container or volume name: [a-zA-Z0-9][a-zA-Z0-9_.-]*.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// ValidateName checks a --name as Docker does.
func ValidateName(name string) error {
	if !isName(name) || len(name) > 128 {
		return messagef("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	return nil
}

// lockedDir is one container's directory, flocked.
type lockedDir struct {
	id  string
	dir string
	f   *os.File
}

func (l *lockedDir) unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

func (l *lockedDir) path(name string) string { return filepath.Join(l.dir, name) }

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// lockID locks the container id's directory. A directory removed while we waited is gone.
func (e *Engine) lockID(id string, shared bool) (*lockedDir, error) {
	dir := e.dir(id)
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &NotFoundError{Ref: id}
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: open %s: %w", short(id), dir, err)
	}
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	if err := flock(f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("container %s: lock %s: %w", short(id), dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Nlink == 0 {
		f.Close()
		return nil, &NotFoundError{Ref: id}
	}
	return &lockedDir{id: id, dir: dir, f: f}, nil
}

// lock resolves ref (a name, a full id or a unique id prefix) and locks the container.
func (e *Engine) lock(ref string, shared bool) (*lockedDir, error) {
	for tries := 0; ; tries++ {
		id, err := e.Resolve(ref)
		if err != nil {
			return nil, err
		}
		l, err := e.lockID(id, shared)
		if errors.Is(err, ErrNotFound) && tries < 2 {
			continue // removed or renamed meanwhile: resolve again
		}
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, &NotFoundError{Ref: ref}
			}
			return nil, err
		}
		return l, nil
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Resolve finds the container id that ref names: a full id, a name, or an unambiguous id
// prefix, in that order (Docker's).
func (e *Engine) Resolve(ref string) (string, error) {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return "", &NotFoundError{Ref: ref}
	}
	if isID(ref) {
		if _, err := os.Lstat(e.dir(ref)); err == nil {
			return ref, nil
		}
	}
	if isName(ref) {
		if id, err := os.Readlink(e.namePath(ref)); err == nil && isID(id) {
			if _, err := os.Lstat(e.dir(id)); err == nil {
				return id, nil
			}
		}
	}
	if len(ref) <= 64 && strings.Trim(ref, "0123456789abcdef") == "" {
		ids, err := e.ids()
		if err != nil {
			return "", err
		}
		var match []string
		for _, id := range ids {
			if strings.HasPrefix(id, ref) {
				match = append(match, id)
			}
		}
		if len(match) == 1 {
			return match[0], nil
		}
		if len(match) > 1 {
			return "", fmt.Errorf("multiple containers found with provided prefix: %s", ref)
		}
	}
	return "", &NotFoundError{Ref: ref}
}

// ids lists the containers' ids, removing what creates killed halfway left behind.
func (e *Engine) ids() ([]string, error) {
	ents, err := os.ReadDir(e.containersPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list containers in %s: %w", e.containersPath(), err)
	}
	var ids []string
	for _, d := range ents {
		n := d.Name()
		switch {
		case strings.HasPrefix(n, creatingPfx):
			e.removeAbandoned(strings.TrimPrefix(n, creatingPfx))
		case strings.HasPrefix(n, removingPfx):
			e.finishAbandonedRemoval(strings.TrimPrefix(n, removingPfx))
		case strings.HasPrefix(n, monitor.RemovedPfx):
			e.deleteRemoved(n)
		case isID(n):
			ids = append(ids, n)
		}
	}
	return ids, nil
}

// removeAbandoned undoes a create whose process died before it finished: its directory is
// unlocked once that process is gone. The name it may have claimed and the snapshot it may
// have prepared go with it.
func (e *Engine) removeAbandoned(id string) {
	dir := filepath.Join(e.containersPath(), creatingPfx+id)
	f := lockLeftover(dir) // nil: gone, or still being created
	if f == nil {
		return
	}
	defer f.Close()
	e.releaseNamesOf(id)
	if sn, err := e.snapshotter(); err == nil {
		if err := sn.Remove(id); err != nil {
			e.warn("remove the snapshot of abandoned container %s: %v", short(id), err)
		}
	}
	if !e.rootless {
		if rt, err := e.runtime(); err == nil {
			rt.RemoveOrphanCgroup(id) // a cgroup made ahead (startEarlyCgroup)
		}
	}
	os.RemoveAll(dir)
}

// claimName takes name for id atomically: symlink(2) fails if the name is taken. A claim
// whose container is gone (a create killed after claiming) is taken over.
func (e *Engine) claimName(name, id string) error {
	p := e.namePath(name)
	for tries := 0; tries < 3; tries++ {
		err := os.Symlink(id, p)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("claim name %s: %w", name, err)
		}
		owner, rerr := os.Readlink(p)
		if rerr != nil {
			continue
		}
		if e.nameOwnerAlive(owner) {
			return &ConflictError{Name: name, ID: owner}
		}
		// A stale claim: remove it only if it still names the same dead owner.
		if cur, _ := os.Readlink(p); cur == owner {
			os.Remove(p)
		}
	}
	return fmt.Errorf("claim name %s: kept changing under us", name)
}

func (e *Engine) nameOwnerAlive(id string) bool {
	if _, err := os.Lstat(e.dir(id)); err == nil {
		return true
	}
	dir := filepath.Join(e.containersPath(), creatingPfx+id)
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return true // its create is still running
	}
	return false
}

// releaseName drops the claim on name if id holds it.
func (e *Engine) releaseName(name, id string) {
	p := e.namePath(name)
	if cur, err := os.Readlink(p); err == nil && cur == id {
		os.Remove(p)
	}
}

// releaseNamesOf releases whatever name id claimed, by a look through every claim: only
// for a create that died (a claim's container is known to it otherwise), so that a
// create need not record the name it is claiming in a file of its own.
func (e *Engine) releaseNamesOf(id string) {
	ents, err := os.ReadDir(filepath.Join(e.Root, namesDir))
	if err != nil {
		return
	}
	for _, n := range ents {
		e.releaseName(n.Name(), id)
	}
}

// ConflictError is Docker's message for a name in use.
type ConflictError struct{ Name, ID string }

func (c *ConflictError) Error() string {
	return fmt.Sprintf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", c.Name, c.ID)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return nil
}

// writeJSON replaces path atomically. No fsync: the store survives a crash of any berth
// process (the rename is atomic); a crash of the host takes the containers with it.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, b, 0o600)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	return atomicfile.Write(path, b, mode)
}

// read returns the container's record and its state.
func (l *lockedDir) read() (*Container, *State, error) {
	c, err := l.readContainer()
	if err != nil {
		return nil, nil, err
	}
	st, err := l.readState()
	if err != nil {
		return nil, nil, err
	}
	return c, st, nil
}

func (l *lockedDir) readContainer() (*Container, error) {
	c := &Container{}
	if err := readJSON(l.path(recordFile), c); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &NotFoundError{Ref: l.id}
		}
		return nil, fmt.Errorf("container %s: %w", short(l.id), err)
	}
	return c, nil
}

func (l *lockedDir) readState() (*State, error) {
	s := &State{}
	if err := readJSON(l.path(stateFile), s); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &State{Status: StatusCreated}, nil
		}
		return nil, fmt.Errorf("container %s: %w", short(l.id), err)
	}
	return s, nil
}

func (l *lockedDir) writeState(s *State) error {
	if err := writeJSON(l.path(stateFile), s); err != nil {
		return fmt.Errorf("container %s: %w", short(l.id), err)
	}
	return nil
}

func (l *lockedDir) writeContainer(c *Container) error {
	if err := writeJSON(l.path(recordFile), c); err != nil {
		return fmt.Errorf("container %s: %w", short(l.id), err)
	}
	return nil
}

// sortByCreated orders newest first, as `ps` lists.
func sortByCreated(cs []*Info) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Container.Created.After(cs[j].Container.Created) })
}

// Message is an error whose text is Docker's, capitalized as Docker writes it.
type Message string

func (m Message) Error() string { return string(m) }

func messagef(format string, args ...any) error { return Message(fmt.Sprintf(format, args...)) }
