package cgroups

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// freezeTimeout bounds how long Freeze and Thaw wait for the kernel to finish.
const freezeTimeout = 5 * time.Second

// freezeDir is where freezing happens: the v1 freezer hierarchy if mounted, else the v2
// directory (whose cgroup.freeze is in the core, not a controller), "" if neither.
func (m *manager) freezeDir() string {
	if d, ok := m.paths["freezer"]; ok {
		return d
	}
	return m.v2dir
}

func (m *manager) freezerV1() bool {
	_, ok := m.paths["freezer"]
	return ok
}

func (m *manager) Freeze() error {
	dir := m.freezeDir()
	if dir == "" {
		return unsupported("freeze", m.layout, "no freezer hierarchy is mounted")
	}
	if m.freezerV1() {
		return freezeV1(dir)
	}
	if err := writeFile(dir, "cgroup.freeze", "1"); err != nil {
		return fmt.Errorf("cgroups: freeze: %w", err)
	}
	if err := waitEvent(dir, "frozen", 1, freezeTimeout); err != nil {
		_ = writeFile(dir, "cgroup.freeze", "0")
		return fmt.Errorf("cgroups: freeze %s: %w", dir, err)
	}
	return nil
}

// freezeV1 writes FROZEN until freezer.state reads FROZEN. The state stays FREEZING while
// some task cannot be frozen yet (e.g. one in the middle of a vfork); writing FROZEN again
// makes the kernel retry them.
func freezeV1(dir string) error {
	deadline := time.Now().Add(freezeTimeout)
	delay := 50 * time.Microsecond
	for {
		if err := writeFile(dir, "freezer.state", "FROZEN"); err != nil {
			return fmt.Errorf("cgroups: freeze: %w", err)
		}
		st, err := readFile(dir, "freezer.state")
		if err != nil {
			return fmt.Errorf("cgroups: freeze: %w", err)
		}
		st = strings.TrimSpace(st)
		if st == "FROZEN" {
			return nil
		}
		if time.Now().After(deadline) {
			_ = writeFile(dir, "freezer.state", "THAWED")
			return fmt.Errorf("cgroups: freeze %s: still %s after %s, thawed again", dir, st, freezeTimeout)
		}
		time.Sleep(delay)
		if delay < 10*time.Millisecond {
			delay *= 2
		}
	}
}

func (m *manager) Thaw() error {
	dir := m.freezeDir()
	if dir == "" {
		return unsupported("thaw", m.layout, "no freezer hierarchy is mounted")
	}
	if m.freezerV1() {
		// THAWED takes effect synchronously on v1.
		if err := writeFile(dir, "freezer.state", "THAWED"); err != nil {
			return fmt.Errorf("cgroups: thaw: %w", err)
		}
		return nil
	}
	if err := writeFile(dir, "cgroup.freeze", "0"); err != nil {
		return fmt.Errorf("cgroups: thaw: %w", err)
	}
	if err := waitEvent(dir, "frozen", 0, freezeTimeout); err != nil {
		return fmt.Errorf("cgroups: thaw %s (is a parent cgroup frozen?): %w", dir, err)
	}
	return nil
}

func (m *manager) Frozen() (bool, error) {
	dir := m.freezeDir()
	if dir == "" {
		return false, unsupported("frozen", m.layout, "no freezer hierarchy is mounted")
	}
	if m.freezerV1() {
		st, err := readFile(dir, "freezer.state")
		if err != nil {
			return false, fmt.Errorf("cgroups: %w", err)
		}
		return strings.TrimSpace(st) == "FROZEN", nil
	}
	ev, err := readKeyed(dir, "cgroup.events")
	if err != nil {
		return false, fmt.Errorf("cgroups: %w", err)
	}
	return ev["frozen"] == 1, nil
}

// waitEvent waits until key in dir/cgroup.events has the value want. The kernel signals a
// change of that file as a modification, so this sleeps in inotify rather than polling.
func waitEvent(dir, key string, want uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify_init1: %w", err)
	}
	defer unix.Close(ifd)
	if _, err := unix.InotifyAddWatch(ifd, dir+"/cgroup.events", unix.IN_MODIFY); err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: dir + "/cgroup.events", Err: err}
	}
	buf := make([]byte, 4096)
	for {
		ev, err := readKeyed(dir, "cgroup.events")
		if err != nil {
			return err
		}
		if ev[key] == want {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s/cgroup.events still has %s %d after %s", dir, key, ev[key], timeout)
		}
		fds := []unix.PollFd{{Fd: int32(ifd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return fmt.Errorf("poll inotify: %w", err)
		}
		for {
			if _, err := unix.Read(ifd, buf); err != nil {
				break
			}
		}
	}
}

// IsFrozen tells whether the cgroup that Paths returned as paths is frozen. It needs no
// mount table (unlike Load): the freezer directory, or the cgroup2 one, is in paths, so the
// `state` of a running container costs two system calls here. No cgroup is never frozen.
func IsFrozen(paths map[string]string) (bool, error) {
	if len(paths) == 0 {
		return false, nil
	}
	m := &manager{paths: paths, v2dir: paths[""]}
	return m.Frozen()
}
