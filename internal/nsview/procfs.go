package nsview

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

const procRoot = "/proc"

// listPids returns the numeric entries of /proc in the order the kernel lists them
// (ascending pid). It reads the directory with getdents directly: os.ReadDir would stat
// and allocate for every entry, and /proc may hold thousands.
func listPids() ([]int, error) {
	fd, err := unix.Open(procRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", procRoot, err)
	}
	defer unix.Close(fd)
	pids := make([]int, 0, 512)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return nil, fmt.Errorf("getdents %s: %w", procRoot, err)
		}
		if n <= 0 {
			return pids, nil
		}
		for off := 0; off < n; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name[].
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
			name := buf[off+19 : off+reclen]
			off += reclen
			if len(name) == 0 || name[0] < '1' || name[0] > '9' {
				continue
			}
			pid := 0
			for _, c := range name {
				if c == 0 {
					break
				}
				if c < '0' || c > '9' {
					pid = -1
					break
				}
				pid = pid*10 + int(c-'0')
			}
			if pid > 0 {
				pids = append(pids, pid)
			}
		}
	}
}

// atFDCWD is AT_FDCWD (-100) as the raw syscall argument.
var atFDCWD = uintptr(^uint(99))

// nsReader reads /proc/<pid>/ns/<type> links with readlinkat on a reused buffer: one
// syscall per link and no allocation, which is what makes scanning thousands of
// processes cheap.
type nsReader struct {
	path [64]byte
	link [64]byte
}

// goneErr tells whether err means the process or the link cannot be seen (it exited, is a
// zombie, or belongs to someone ptrace rules hide from us): lsns skips those silently.
func goneErr(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EACCES) ||
		errors.Is(err, unix.EPERM)
}

// read fills out[t] for every type in types with the inode of pid's namespace; a link that
// cannot be read leaves 0. It fails only on errors other than the process being gone or
// hidden.
func (r *nsReader) read(pid int, types []Type, out *[numTypes]uint64) error {
	n := copy(r.path[:], "/proc/")
	n += len(strconv.AppendInt(r.path[n:n], int64(pid), 10))
	n += copy(r.path[n:], "/ns/")
	for _, t := range types {
		m := n + copy(r.path[n:], typeNames[t])
		r.path[m] = 0
		sz, _, errno := unix.Syscall6(unix.SYS_READLINKAT, atFDCWD,
			uintptr(unsafe.Pointer(&r.path[0])), uintptr(unsafe.Pointer(&r.link[0])), uintptr(len(r.link)), 0, 0)
		if errno != 0 {
			if goneErr(errno) {
				continue
			}
			return &os.PathError{Op: "readlink", Path: string(r.path[:m]), Err: errno}
		}
		ino, ok := parseNSLink(r.link[:sz])
		if !ok {
			return fmt.Errorf("readlink %s: unexpected target %q", r.path[:m], r.link[:sz])
		}
		out[t] = ino
	}
	return nil
}

// parseNSLink takes the inode out of a link target like "mnt:[4026531840]".
func parseNSLink(b []byte) (uint64, bool) {
	i := bytes.IndexByte(b, '[')
	if i < 0 || len(b) < i+3 || b[len(b)-1] != ']' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[i+1:len(b)-1]), 10, 64)
	return v, err == nil
}

// procStat is what berth needs from /proc/<pid>/stat.
type procStat struct {
	comm      string
	state     byte
	ppid      int
	startTime uint64 // field 22, clock ticks since boot
}

// readStat parses /proc/<pid>/stat. The command name may hold spaces and parentheses, so
// the fields are counted from the last ')'.
func readStat(pid int) (procStat, error) {
	var st procStat
	path := procRoot + "/" + strconv.Itoa(pid) + "/stat"
	b, err := readSmall(path)
	if err != nil {
		return st, err
	}
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open || closing+2 > len(b) {
		return st, fmt.Errorf("parse %s: no command field in %q", path, b)
	}
	st.comm = string(b[open+1 : closing])
	fields := bytes.Fields(b[closing+1:])
	// fields[0] is field 3 (state), so field N is fields[N-3].
	if len(fields) < 20 {
		return st, fmt.Errorf("parse %s: %d fields after the command, want at least 20", path, len(fields))
	}
	st.state = fields[0][0]
	if st.ppid, err = strconv.Atoi(string(fields[1])); err != nil {
		return st, fmt.Errorf("parse %s: ppid %q: %w", path, fields[1], err)
	}
	if st.startTime, err = strconv.ParseUint(string(fields[19]), 10, 64); err != nil {
		return st, fmt.Errorf("parse %s: starttime %q: %w", path, fields[19], err)
	}
	return st, nil
}

// readSmall reads a small /proc file.
func readSmall(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// procUID is the owner of /proc/<pid>, which is the process's effective uid (root for
// non-dumpable processes), the same number lsns shows.
func procUID(pid int) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(procRoot+"/"+strconv.Itoa(pid), &st); err != nil {
		return -1, fmt.Errorf("stat /proc/%d: %w", pid, err)
	}
	return int(st.Uid), nil
}

// procCommand is the command line with NULs turned into spaces, or the comm name for
// processes without one (kernel threads), as lsns prints it.
func procCommand(pid int) string {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/cmdline")
	if err == nil {
		b = bytes.TrimRight(b, "\x00")
		if len(b) > 0 {
			for i, c := range b {
				if c == 0 {
					b[i] = ' '
				}
			}
			return string(b)
		}
	}
	c, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return string(bytes.TrimRight(c, "\n"))
}
