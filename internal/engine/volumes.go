package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image/archive"
)

// Named volumes live in <root>/volumes/<name>/_data (Docker's layout), with their record
// in <root>/volumes/<name>/volume.json. A volume is made whole under a temporary name and
// renamed into place, so a concurrent create of the same name finds either nothing or a
// complete volume. volumes/.lock is held shared by container creates while they resolve
// their mounts and exclusive by volume removal, so a volume cannot go while a container
// that is being created takes it.

const volumesDir = "volumes"

// Volume is `berth volume inspect`'s shape (Docker's).
type Volume struct {
	CreatedAt  time.Time         `json:"CreatedAt"`
	Driver     string            `json:"Driver"`
	Labels     map[string]string `json:"Labels"`
	Mountpoint string            `json:"Mountpoint"`
	Name       string            `json:"Name"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
	// Anonymous volumes were made for a container's -v /path or an image's VOLUME.
	Anonymous bool `json:"Anonymous,omitempty"`
}

// ValidateVolumeName checks a volume name as Docker does.
func ValidateVolumeName(name string) error {
	if !isName(name) || len(name) > 255 {
		return fmt.Errorf("create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name, name)
	}
	return nil
}

func (e *Engine) volumePath(name string) string { return filepath.Join(e.Root, volumesDir, name) }

func (e *Engine) lockVolumes(exclusive bool) (func(), error) {
	p := filepath.Join(e.Root, volumesDir, ".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := flock(f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}

// VolumeCreate makes a volume; an empty name makes an anonymous one with a random name.
// Creating a volume that exists returns it, as Docker does.
func (e *Engine) VolumeCreate(name string, labels map[string]string) (*Volume, error) {
	return e.volumeCreate(name, labels, false)
}

func (e *Engine) volumeCreate(name string, labels map[string]string, anonymous bool) (*Volume, error) {
	if name == "" {
		id, err := newID()
		if err != nil {
			return nil, err
		}
		name, anonymous = id, true
	}
	if err := ValidateVolumeName(name); err != nil {
		return nil, err
	}
	if v, err := e.VolumeInspect(name); err == nil {
		return v, nil
	}
	base := filepath.Join(e.Root, volumesDir)
	tmp, err := os.MkdirTemp(base, ".new-")
	if err != nil {
		return nil, fmt.Errorf("create volume %s: %w", name, err)
	}
	v := &Volume{CreatedAt: time.Now().UTC().Truncate(time.Second), Driver: "local", Labels: labels,
		Mountpoint: filepath.Join(e.volumePath(name), "_data"), Name: name, Options: map[string]string{},
		Scope: "local", Anonymous: anonymous}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	err = os.Mkdir(filepath.Join(tmp, "_data"), 0o755)
	if err == nil {
		err = writeJSON(filepath.Join(tmp, "volume.json"), v)
	}
	if err == nil {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, e.volumePath(name), unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			os.RemoveAll(tmp)
			return e.VolumeInspect(name) // made by someone else meanwhile
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("create volume %s: %w", name, err)
	}
	return v, nil
}

// VolumeInspect returns one volume.
func (e *Engine) VolumeInspect(name string) (*Volume, error) {
	if err := ValidateVolumeName(name); err != nil {
		return nil, fmt.Errorf("get %s: no such volume", name)
	}
	v := &Volume{}
	if err := readJSON(filepath.Join(e.volumePath(name), "volume.json"), v); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("get %s: no such volume", name)
		}
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	return v, nil
}

// VolumeList returns every volume, by name.
func (e *Engine) VolumeList() ([]*Volume, error) {
	ents, err := os.ReadDir(filepath.Join(e.Root, volumesDir))
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []*Volume
	for _, d := range ents {
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			continue
		}
		if v, err := e.VolumeInspect(d.Name()); err == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// VolumeUsers lists the ids of containers (in any state) that mount the volume.
func (e *Engine) VolumeUsers(name string) ([]string, error) {
	ids, err := e.ids()
	if err != nil {
		return nil, err
	}
	var users []string
	for _, id := range ids {
		c := &Container{}
		if err := readJSON(filepath.Join(e.dir(id), recordFile), c); err != nil {
			continue
		}
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name == name {
				users = append(users, id)
				break
			}
		}
	}
	return users, nil
}

// VolumeRemove deletes a volume and its data; one that a container uses is refused, even
// with force (as Docker does: force only ignores a missing volume).
func (e *Engine) VolumeRemove(name string, force bool) error {
	unlock, err := e.lockVolumes(true)
	if err != nil {
		return err
	}
	defer unlock()
	return e.volumeRemoveLocked(name, force)
}

func (e *Engine) volumeRemoveLocked(name string, force bool) error {
	if _, err := e.VolumeInspect(name); err != nil {
		if force {
			return nil
		}
		return err
	}
	users, err := e.VolumeUsers(name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("remove %s: volume is in use - [%s]", name, strings.Join(users, ", "))
	}
	// Renamed away first, so the name is free at once and a half-removed volume is never
	// seen under it.
	gone := filepath.Join(e.Root, volumesDir, ".gone-"+name)
	if err := os.Rename(e.volumePath(name), gone); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	if err := e.removeAll(gone); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// VolumePrune removes the volumes no container uses; only anonymous ones unless all.
func (e *Engine) VolumePrune(all bool) (removed []string, reclaimed int64, err error) {
	unlock, err := e.lockVolumes(true)
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	vols, err := e.VolumeList()
	if err != nil {
		return nil, 0, err
	}
	var errs []error
	for _, v := range vols {
		if !all && !v.Anonymous {
			continue
		}
		users, err := e.VolumeUsers(v.Name)
		if err != nil || len(users) > 0 {
			continue
		}
		size := dirSize(e.volumePath(v.Name))
		if err := e.volumeRemoveLocked(v.Name, false); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, v.Name)
		reclaimed += size
	}
	return removed, reclaimed, errors.Join(errs...)
}

// dirSize is the disk space under dir, in bytes (blocks, not apparent sizes), without
// following symlinks or crossing mounts.
func dirSize(dir string) int64 {
	var total int64
	var rootDev uint64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		if p == dir {
			rootDev = st.Dev
		} else if st.Dev != rootDev {
			return filepath.SkipDir
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}

// hasVolumeMounts tells whether c mounts a volume (which a start may fill with the image's
// files: populateVolumes).
func hasVolumeMounts(c *Container) bool {
	for _, m := range c.Mounts {
		if m.Type == "volume" {
			return true
		}
	}
	return false
}

// populateVolumes copies what the image has at a volume's mount point into the volume when
// the volume is empty, as Docker does, so that an image's VOLUME starts with the image's
// files. The path is resolved inside the rootfs, whatever symlinks the image has.
func populateVolumes(c *Container, rootfs string) error {
	for _, m := range c.Mounts {
		if m.Type != "volume" || strings.Contains(m.Mode, "nocopy") {
			continue
		}
		ents, err := os.ReadDir(m.Source)
		if err != nil || len(ents) > 0 {
			continue
		}
		src, err := securejoin.SecureJoin(rootfs, m.Destination)
		if err != nil {
			continue
		}
		st, err := os.Lstat(src)
		if err != nil || !st.IsDir() {
			continue
		}
		if inner, err := os.ReadDir(src); err != nil || len(inner) == 0 {
			continue
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(archive.Tar(pw, src, archive.TarOptions{})) }()
		_, err = archive.Unpack(pr, m.Source)
		pr.CloseWithError(io.ErrClosedPipe)
		if err != nil {
			return fmt.Errorf("copy %s of the image into volume %s: %w", m.Destination, m.Name, err)
		}
	}
	return nil
}
