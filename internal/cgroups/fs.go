package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	cgroup1Magic = unix.CGROUP_SUPER_MAGIC
	cgroup2Magic = unix.CGROUP2_SUPER_MAGIC
)

// writeFile writes one value to a cgroup control file. cgroupfs files are never created,
// and each write(2) is parsed by the kernel as a whole, so this is one open and one write
// without the os.File machinery (this sits on the container start path).
func writeFile(dir, file, data string) error {
	p := dir + "/" + file
	fd, err := openRetry(p, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, []byte(data))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", data, p, err)
	}
	return nil
}

func openRetry(p string, flags int) (int, error) {
	for {
		fd, err := unix.Open(p, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// readFile reads a cgroup control file with open, read (until end of file) and close:
// os.ReadFile also fstats it and tries to register it with the poller (two fcntl, two
// epoll_ctl), nine system calls where four do.
func readFile(dir, file string) (string, error) {
	p := dir + "/" + file
	fd, err := openRetry(p, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 512)
	n := 0
	for {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", &os.PathError{Op: "read", Path: p, Err: err}
		}
		if m == 0 {
			return string(buf[:n]), nil
		}
		n += m
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
	}
}

// readUint reads a file holding one number; "max" reads as math.MaxUint64.
func readUint(dir, file string) (uint64, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return 0, err
	}
	return parseUint(strings.TrimSpace(s), dir+"/"+file)
}

func parseUint(s, where string) (uint64, error) {
	if s == "max" {
		return ^uint64(0), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// v1 prints -1 for "no limit" in a few files (e.g. cpu.cfs_quota_us).
		if i, err2 := strconv.ParseInt(s, 10, 64); err2 == nil && i < 0 {
			return ^uint64(0), nil
		}
		return 0, fmt.Errorf("cgroups: parse %q in %s: %w", s, where, err)
	}
	return v, nil
}

// readKeyed reads "key value" lines (memory.stat, cpu.stat, memory.events, ...).
func readKeyed(dir, file string) (map[string]uint64, error) {
	f, err := os.Open(dir + "/" + file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := parseUint(strings.TrimSpace(v), dir+"/"+file)
		if err != nil {
			return nil, err
		}
		out[k] = n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cgroups: read %s/%s: %w", dir, file, err)
	}
	return out, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// readProcs reads a cgroup.procs file.
func readProcs(dir string) ([]int, error) {
	s, err := readFile(dir, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("cgroups: parse pid %q in %s/cgroup.procs: %w", f, dir, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// walkProcs lists the processes in dir and every cgroup below it. A cgroup removed while
// the walk runs is skipped.
func walkProcs(dir string) ([]int, error) {
	var all []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		pids, err := readProcs(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		all = append(all, pids...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cgroups: list processes under %s: %w", dir, err)
	}
	return all, nil
}

// subdirsBottomUp lists dir and the cgroups under it, deepest first, for removal.
func subdirsBottomUp(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i, j := 0, len(dirs)-1; i < j; i, j = i+1, j-1 {
		dirs[i], dirs[j] = dirs[j], dirs[i]
	}
	return dirs
}

// fsMagic is the statfs type of p or, if p does not exist, of its nearest existing parent.
func fsMagic(p string) (int64, error) {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			return int64(st.Type), nil
		}
		if err != unix.ENOENT || p == "/" {
			return 0, &os.PathError{Op: "statfs", Path: p, Err: err}
		}
		p = filepath.Dir(p)
	}
}
