package nsview

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/berth-containers/berth/internal/mountinfo"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The nsfs ioctls of <linux/nsfs.h>: _IO(0xb7, n).
const (
	nsGetUserns   = 0xb701
	nsGetParent   = 0xb702
	nsGetNstype   = 0xb703
	nsGetOwnerUID = 0xb704
)

func ioctlFD(fd int, req uint) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

func fdInode(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// nsType asks the kernel what type of namespace fd is.
func nsType(fd int) (Type, error) {
	flag, err := ioctlFD(fd, nsGetNstype)
	if err != nil {
		return 0, fmt.Errorf("ioctl NS_GET_NSTYPE: %w", err)
	}
	t, ok := typeFromCloneFlag(flag)
	if !ok {
		return 0, fmt.Errorf("ioctl NS_GET_NSTYPE: unknown type %#x", flag)
	}
	return t, nil
}

// ownerUID is the uid that created the user namespace fd (NS_GET_OWNER_UID).
func ownerUID(fd int) (int, error) {
	var uid uint32
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetOwnerUID, uintptr(unsafe.Pointer(&uid)))
	if errno != 0 {
		return -1, fmt.Errorf("ioctl NS_GET_OWNER_UID: %w", errno)
	}
	return int(uid), nil
}

// relatives returns the parent (pid and user namespaces only) and owner of the namespace
// fd, as inodes plus descriptors the caller closes (-1 when absent). EPERM means the
// relative lies outside what we may see, which lsns reports as 0 too.
func relatives(fd int, t Type) (parentIno uint64, parentFD int, ownerIno uint64, ownerFD int) {
	parentFD, ownerFD = -1, -1
	if t == Pid || t == User {
		if pfd, err := ioctlFD(fd, nsGetParent); err == nil {
			if ino, err := fdInode(pfd); err == nil {
				parentIno, parentFD = ino, pfd
			} else {
				unix.Close(pfd)
			}
		}
	}
	if ofd, err := ioctlFD(fd, nsGetUserns); err == nil {
		if ino, err := fdInode(ofd); err == nil {
			ownerIno, ownerFD = ino, ofd
		} else {
			unix.Close(ofd)
		}
	}
	return
}

// readRelations fills Parent and Owner of every namespace and, with ghosts, adds the
// related namespaces no process is in any more.
func (s *Snapshot) readRelations(ghosts bool) {
	// Ghosts appended while walking are visited too: their own relatives may be ghosts.
	for i := 0; i < len(s.Namespaces); i++ {
		ns := s.Namespaces[i]
		if ns.relDone {
			continue // a ghost whose relations were read from its descriptor
		}
		fd, err := s.openNS(ns, s.nsfs[ns.Inode])
		if err != nil {
			continue
		}
		s.relate(ns, fd, ghosts)
		unix.Close(fd)
	}
}

// relate records ns's relatives read from fd and adds missing ones as ghosts.
func (s *Snapshot) relate(ns *Namespace, fd int, ghosts bool) {
	pIno, pFD, oIno, oFD := relatives(fd, ns.Type)
	ns.Parent, ns.Owner, ns.relDone = pIno, oIno, true
	if ns.Type == User && ns.Pid == 0 {
		if uid, err := ownerUID(fd); err == nil {
			ns.ownerUID = uid
		}
	} else if ns.Pid == 0 && oFD >= 0 {
		if uid, err := ownerUID(oFD); err == nil {
			ns.ownerUID = uid
		}
	}
	for _, rel := range []struct {
		ino uint64
		fd  int
	}{{pIno, pFD}, {oIno, oFD}} {
		if rel.fd < 0 {
			continue
		}
		if ghosts && rel.ino != ns.Inode && s.byIno[rel.ino] == nil {
			if t, err := nsType(rel.fd); err == nil && s.types.Has(t) {
				g := &Namespace{Inode: rel.ino, Type: t, NetNSID: NetNSIDUnknown}
				s.byIno[g.Inode] = g
				s.Namespaces = append(s.Namespaces, g)
				s.relate(g, rel.fd, ghosts)
			}
		}
		unix.Close(rel.fd)
	}
}

type nsfsMount struct {
	t      Type
	ino    uint64
	target string
}

// readNSFSMounts lists the nsfs bind mounts of our mount namespace (ip netns, runtimes
// that pin namespaces): their mount root is "<type>:[<inode>]".
func readNSFSMounts() ([]nsfsMount, error) {
	f, err := os.Open(procRoot + "/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("open mountinfo: %w", err)
	}
	defer f.Close()
	var out []nsfsMount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(" - nsfs ")) {
			continue
		}
		fields := bytes.Fields(line)
		if len(fields) < 5 {
			continue
		}
		root := string(fields[3])
		i := strings.IndexByte(root, ':')
		if i < 0 {
			continue
		}
		t, err := ParseType(root[:i])
		if err != nil {
			continue
		}
		ino, ok := parseNSLink([]byte(root))
		if !ok {
			continue
		}
		out = append(out, nsfsMount{t: t, ino: ino, target: mountinfo.Unescape(string(fields[4]))})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// addPersistent records the bind mounts by inode and adds the namespaces that only a bind
// mount keeps alive.
func (s *Snapshot) addPersistent(mounts []nsfsMount, need Need) {
	s.nsfs = make(map[uint64][]string, len(mounts))
	for _, m := range mounts {
		s.nsfs[m.ino] = append(s.nsfs[m.ino], m.target)
	}
	for _, m := range mounts {
		if s.byIno[m.ino] != nil || !s.types.Has(m.t) {
			continue
		}
		// Check the mount is still that namespace before listing it.
		fd, err := unix.Open(m.target, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		ino, err := fdInode(fd)
		if err == nil && ino == m.ino {
			ns := &Namespace{Inode: m.ino, Type: m.t, NetNSID: NetNSIDUnknown}
			s.byIno[ns.Inode] = ns
			s.Namespaces = append(s.Namespaces, ns)
			if need&NeedProcess != 0 {
				if t, err := nsType(fd); err == nil && t == m.t {
					ofd, err := ioctlFD(fd, nsGetUserns)
					if m.t == User {
						ofd, err = fd, nil
					}
					if err == nil {
						if uid, err := ownerUID(ofd); err == nil {
							ns.ownerUID = uid
						}
						if ofd != fd {
							unix.Close(ofd)
						}
					}
				}
			}
		}
		unix.Close(fd)
	}
}
