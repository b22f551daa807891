package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berth-containers/berth/internal/atomicfile"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where container records live unless --root says otherwise.
const DefaultRoot = "/run/berth"

const (
	recordFile = "state.json"
	fifoFile   = "exec.fifo"
	configFile = "config.json"
)

// ErrNotExist is returned (wrapped) for an unknown container id.
var ErrNotExist = errors.New("container does not exist")

// ErrExist is returned (wrapped) when a create names an id that is taken.
var ErrExist = errors.New("container already exists")

// ValidateID accepts the ids runc accepts: letters, digits, and _ + - . (not only dots).
func ValidateID(id string) error {
	if id == "" {
		return errors.New("container id is empty")
	}
	if len(id) > 1024 || !idChars(id) || strings.Trim(id, ".") == "" {
		return fmt.Errorf("invalid container id %q: use letters, digits, '_', '+', '-' and '.'", id)
	}
	return nil
}

// idChars tells whether id holds only letters, digits, '_', '+', '-' and '.', as runc's
// ^[\w+.-]+$ does, without package regexp (0.2 MB of binary, and so of peak RSS).
func idChars(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '+', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// handle is one container's directory, locked.
type handle struct {
	id  string
	dir string
	f   *os.File
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

// lock opens and flocks a container's directory. A directory that was removed while we
// waited for the lock means the container is gone.
func (r *Runtime) lock(id string, shared bool) (*handle, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := r.dir(id)
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: open state directory: %w", id, err)
	}
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	if err := flock(f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("container %s: lock %s: %w", id, dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Nlink == 0 {
		f.Close()
		return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
	}
	return &handle{id: id, dir: dir, f: f}, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (h *handle) unlock() { h.f.Close() }

func (h *handle) path(name string) string { return filepath.Join(h.dir, name) }

// reserve claims id atomically with its first record (and the config, when given) already
// inside: the directory is prepared under a temporary name, locked, and renamed into place
// with RENAME_NOREPLACE, so a second create with the same id fails and the first is
// untouched. The files are written in place: nobody reads them before the rename.
func (r *Runtime) reserve(rec *Record, config []byte) (*handle, error) {
	if err := os.MkdirAll(r.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create state root %s: %w", r.Root, err)
	}
	tmp, err := os.MkdirTemp(r.Root, ".creating-")
	if err != nil {
		return nil, fmt.Errorf("create state directory in %s: %w", r.Root, err)
	}
	f, err := os.OpenFile(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = flock(f, unix.LOCK_EX)
	}
	if err == nil {
		var b []byte
		if b, err = json.Marshal(rec); err != nil {
			err = fmt.Errorf("encode %s: %w", recordFile, err)
		} else {
			err = writeNew(filepath.Join(tmp, recordFile), b, 0o600)
		}
	}
	if err == nil && config != nil {
		err = writeNew(filepath.Join(tmp, configFile), config, 0o600)
	}
	final := r.dir(rec.ID)
	if err == nil {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			err = fmt.Errorf("container %s: %w", rec.ID, ErrExist)
		} else if err != nil {
			err = fmt.Errorf("container %s: rename %s to %s: %w", rec.ID, tmp, final, err)
		}
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.RemoveAll(tmp)
		return nil, err
	}
	return &handle{id: rec.ID, dir: final, f: f}, nil
}

func (h *handle) read() (*Record, error) {
	b, err := os.ReadFile(h.path(recordFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s: %w (no %s)", h.id, ErrNotExist, recordFile)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: read state: %w", h.id, err)
	}
	rec := &Record{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("container %s: state file %s is corrupt: %w", h.id, h.path(recordFile), err)
	}
	return rec, nil
}

func (h *handle) write(rec *Record) error {
	if err := writeJSON(h.path(recordFile), rec); err != nil {
		return fmt.Errorf("container %s: %w", h.id, err)
	}
	return nil
}

// remove deletes the directory while still holding its lock, so waiters see it gone.
func (h *handle) remove() error {
	if err := os.RemoveAll(h.dir); err != nil {
		return fmt.Errorf("container %s: remove state directory: %w", h.id, err)
	}
	return nil
}

// writeJSON replaces path atomically: a reader sees the old content or the new, never a mix.
// There is no fsync: the state lives on tmpfs, and a host crash ends the containers too.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, b, 0o600)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	return atomicfile.Write(path, b, mode)
}

// writeNew creates path, which must not exist, with b in it.
func writeNew(path string, b []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(path, b, mode, unix.O_EXCL)
}

// ids lists the container ids under the root.
func (r *Runtime) ids() ([]string, error) {
	ents, err := os.ReadDir(r.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", r.Root, err)
	}
	var ids []string
	for _, e := range ents {
		switch {
		case strings.HasPrefix(e.Name(), ".creating-"):
			r.removeAbandoned(filepath.Join(r.Root, e.Name()))
		case e.IsDir() && !strings.HasPrefix(e.Name(), "."):
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// removeAbandoned removes the directory of a create that died before it claimed its id.
// Such a create made nothing else yet. Its lock is free once its process is gone.
func (r *Runtime) removeAbandoned(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // a create is still working on it
	}
	os.RemoveAll(dir)
}
