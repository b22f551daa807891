package cgroups

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

func (m *manager) memoryDir() (dir string, v2 bool, err error) {
	if d, ok := m.paths["memory"]; ok {
		return d, false, nil
	}
	if m.layout == Unified {
		return m.v2dir, true, nil
	}
	return "", false, unsupported("memory events", m.layout, "no v1 memory hierarchy is mounted")
}

func (m *manager) OOMKillCount() (uint64, error) {
	dir, v2, err := m.memoryDir()
	if err != nil {
		return 0, err
	}
	file := "memory.oom_control"
	if v2 {
		file = "memory.events"
	}
	kv, err := readKeyed(dir, file)
	if err != nil {
		return 0, fmt.Errorf("cgroups: %w", err)
	}
	return kv["oom_kill"], nil
}

func (m *manager) OOMEvents(ctx context.Context) (<-chan struct{}, error) {
	dir, v2, err := m.memoryDir()
	if err != nil {
		return nil, err
	}
	if v2 {
		return oomEventsV2(ctx, dir)
	}
	return oomEventsV1(ctx, dir)
}

// watch runs read on f until it fails, calling onWake after each successful read; ctx
// ends it by closing f, which the runtime poller turns into a failing read.
func watch(ctx context.Context, f *os.File, buf []byte, ch chan struct{}, onWake func([]byte) (more bool)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		f.Close()
	}()
	go func() {
		defer close(ch)
		defer close(done)
		for {
			n, err := f.Read(buf)
			if err != nil || !onWake(buf[:n]) {
				return
			}
		}
	}()
	return ch
}

func notify(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// oomEventsV1 registers an eventfd for memory.oom_control through cgroup.event_control;
// the kernel signals it on every OOM in the cgroup, and once more when the cgroup is
// removed.
func oomEventsV1(ctx context.Context, dir string) (<-chan struct{}, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("cgroups: eventfd: %w", err)
	}
	ocfd, err := openRetry(dir+"/memory.oom_control", unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("cgroups: open %s/memory.oom_control: %w", dir, err)
	}
	// The registration holds its own references; ocfd is not needed once it is made.
	err = writeFile(dir, "cgroup.event_control", strconv.Itoa(efd)+" "+strconv.Itoa(ocfd))
	unix.Close(ocfd)
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("cgroups: register OOM eventfd: %w", err)
	}
	f := os.NewFile(uintptr(efd), "oom-eventfd")
	ch := make(chan struct{}, 1)
	return watch(ctx, f, make([]byte, 8), ch, func([]byte) bool {
		if !exists(dir) {
			return false
		}
		notify(ch)
		return true
	}), nil
}

// oomEventsV2 watches memory.events with inotify (the kernel reports changes to it as
// modifications) and reports each rise of oom or oom_kill. The removal of the cgroup
// directory ends the channel.
func oomEventsV2(ctx context.Context, dir string) (<-chan struct{}, error) {
	last, err := readKeyed(dir, "memory.events")
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("cgroups: inotify_init1: %w", err)
	}
	if _, err := unix.InotifyAddWatch(ifd, dir+"/memory.events", unix.IN_MODIFY); err != nil {
		unix.Close(ifd)
		return nil, fmt.Errorf("cgroups: inotify_add_watch %s/memory.events: %w", dir, err)
	}
	// kernfs drops the files, and the directory, of a removed cgroup without an event for
	// them (their link counts never reach zero); only the parent hears of the rmdir.
	parent := filepath.Dir(dir)
	if _, err := unix.InotifyAddWatch(ifd, parent, unix.IN_DELETE|unix.IN_ONLYDIR); err != nil {
		unix.Close(ifd)
		return nil, fmt.Errorf("cgroups: inotify_add_watch %s: %w", parent, err)
	}
	f := os.NewFile(uintptr(ifd), "oom-inotify")
	ch := make(chan struct{}, 1)
	return watch(ctx, f, make([]byte, 4096), ch, func(b []byte) bool {
		for off := 0; off+unix.SizeofInotifyEvent <= len(b); {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[off]))
			if ev.Mask&unix.IN_IGNORED != 0 {
				return false
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		if !exists(dir) {
			return false
		}
		cur, err := readKeyed(dir, "memory.events")
		if err != nil {
			return false
		}
		if cur["oom"] > last["oom"] || cur["oom_kill"] > last["oom_kill"] {
			notify(ch)
		}
		last = cur
		return true
	}), nil
}
