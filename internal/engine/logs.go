package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine/monitor"
)

// LogOptions are `berth logs`'s.
type LogOptions struct {
	Follow bool
	// Tail is how many entries from the end (negative: all).
	Tail         int
	Since, Until time.Time
}

// LogEntry is one json-file line.
type LogEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// LogPath is the container's current log file.
func (e *Engine) LogPath(id string) string { return filepath.Join(e.dir(id), monitor.LogFile(id)) }

// Logs calls fn for each log entry of the container, oldest first; with Follow it goes on
// until the container stops (or ctx ends).
func (e *Engine) Logs(ctx context.Context, ref string, o LogOptions, fn func(LogEntry) error) error {
	id, err := e.Resolve(ref)
	if err != nil {
		return err
	}
	dir := e.dir(id)
	var c Container
	if err := readJSON(filepath.Join(dir, recordFile), &c); err != nil {
		return err
	}
	if noLog(&c) {
		return ErrLogsNotReadable
	}
	name := monitor.LogFile(id)
	var ino *os.File
	if o.Follow {
		// Watching starts before the reading, so nothing written in between is missed.
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return fmt.Errorf("logs: inotify: %w", err)
		}
		ino = os.NewFile(uintptr(fd), "inotify")
		defer ino.Close()
		if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_CLOSE_WRITE); err != nil {
			return fmt.Errorf("logs: watch %s: %w", dir, err)
		}
	}
	emit := func(ent LogEntry) error {
		if !o.Since.IsZero() && ent.Time.Before(o.Since) {
			return nil
		}
		if !o.Until.IsZero() && ent.Time.After(o.Until) {
			return nil
		}
		return fn(ent)
	}
	// The rotated files, oldest first, then the current one, whose end is kept open for
	// following.
	var files []string
	for i := 9; i >= 1; i-- {
		p := filepath.Join(dir, name+"."+strconv.Itoa(i))
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	cur, err := os.Open(filepath.Join(dir, name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("logs: %w", err)
	}
	if cur != nil {
		defer func() { cur.Close() }()
	}
	var backlog []LogEntry
	collect := func(ent LogEntry) error {
		if o.Tail >= 0 {
			backlog = append(backlog, ent)
			if len(backlog) > 2*o.Tail+1024 {
				backlog = append(backlog[:0], backlog[len(backlog)-o.Tail:]...)
			}
			return nil
		}
		return emit(ent)
	}
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		_, err = readEntries(f, collect)
		f.Close()
		if err != nil {
			return err
		}
	}
	var pending []byte
	if cur != nil {
		if pending, err = readEntries(cur, collect); err != nil {
			return err
		}
	}
	if o.Tail >= 0 {
		if len(backlog) > o.Tail {
			backlog = backlog[len(backlog)-o.Tail:]
		}
		for _, ent := range backlog {
			if err := emit(ent); err != nil {
				return err
			}
		}
	}
	if !o.Follow {
		return nil
	}
	for {
		stopped := !e.stillRunning(id)
		// Take what was added (the whole rest of a file that was rotated away).
		if cur != nil {
			more, err := readEntries(io.MultiReader(bytes.NewReader(pending), cur), emit)
			if err != nil {
				return err
			}
			pending = more
			var a, b unix.Stat_t
			if unix.Fstat(int(cur.Fd()), &a) == nil && (unix.Stat(filepath.Join(dir, name), &b) != nil || a.Ino != b.Ino) {
				if nf, err := os.Open(filepath.Join(dir, name)); err == nil {
					cur.Close()
					cur, pending = nf, nil
					continue
				}
			}
		} else if f, err := os.Open(filepath.Join(dir, name)); err == nil {
			cur = f
			continue
		}
		if stopped {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return nil
		}
		// Woken by the log or the exit file changing; the timeout catches a monitor that
		// died without a word.
		unix.Poll([]unix.PollFd{{Fd: int32(ino.Fd()), Events: unix.POLLIN}}, 1000)
		var buf [4096]byte
		for {
			if n, _ := unix.Read(int(ino.Fd()), buf[:]); n <= 0 {
				break
			}
		}
	}
}

// stillRunning tells whether the container runs or will run again (restarting).
func (e *Engine) stillRunning(id string) bool {
	info, err := e.info(id)
	if err != nil {
		return false
	}
	switch info.State.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
		return true
	case StatusCreated:
		st := info.State
		return st.MonitorPid > 0 && alive(st.MonitorPid, st.MonitorStart)
	}
	return false
}

// readEntries decodes whole lines from r and returns an unfinished last line.
func readEntries(r io.Reader, fn func(LogEntry) error) ([]byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var ent LogEntry
			if json.Unmarshal(line, &ent) == nil {
				if ferr := fn(ent); ferr != nil {
					return nil, ferr
				}
			}
		} else if len(line) > 0 {
			return line, nil
		}
		if err != nil {
			return nil, nil
		}
	}
}
