package nsview

import (
	"encoding/binary"
	"fmt"

	"syscall"

	"golang.org/x/sys/unix"
)

// readNetNSIDs asks rtnetlink, once per network namespace, which id our namespace has
// assigned to it (RTM_GETNSID with NETNSA_FD), as lsns's NETNSID column shows.
func (s *Snapshot) readNetNSIDs() {
	sock, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return // lsns leaves the column empty too
	}
	defer unix.Close(sock)
	if err := unix.Bind(sock, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return
	}
	seq := uint32(0)
	for _, ns := range s.Namespaces {
		if ns.Type != Net {
			continue
		}
		fd, err := s.openNS(ns, s.nsfs[ns.Inode])
		if err != nil {
			continue
		}
		seq++
		if id, err := getNSID(sock, fd, seq); err == nil {
			ns.NetNSID = id
		}
		unix.Close(fd)
	}
}

func getNSID(sock, nsfd int, seq uint32) (int, error) {
	// nlmsghdr(16) + rtgenmsg padded to 4 + rtattr(4) + int32.
	req := make([]byte, 16+4+8)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.RTM_GETNSID)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], seq)
	req[16] = unix.AF_UNSPEC
	ne.PutUint16(req[20:], 8)
	ne.PutUint16(req[22:], unix.NETNSA_FD)
	ne.PutUint32(req[24:], uint32(nsfd))
	if err := unix.Sendto(sock, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("send RTM_GETNSID: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(sock, buf, 0)
		if err != nil {
			return 0, fmt.Errorf("receive RTM_GETNSID reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return 0, fmt.Errorf("parse RTM_GETNSID reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(ne.Uint32(m.Data)); code != 0 {
						return 0, fmt.Errorf("RTM_GETNSID: %w", unix.Errno(-code))
					}
				}
				return 0, fmt.Errorf("RTM_GETNSID: empty reply")
			case unix.RTM_NEWNSID:
				// rtgenmsg (padded to 4), then attributes.
				for b := m.Data[4:]; len(b) >= 4; {
					l := int(ne.Uint16(b[0:]))
					if l < 4 || l > len(b) {
						break
					}
					if ne.Uint16(b[2:]) == unix.NETNSA_NSID && l >= 8 {
						return int(int32(ne.Uint32(b[4:]))), nil
					}
					if next := (l + 3) &^ 3; next < len(b) {
						b = b[next:]
					} else {
						break
					}
				}
				return 0, fmt.Errorf("RTM_GETNSID: no NETNSA_NSID in reply")
			}
		}
	}
}
