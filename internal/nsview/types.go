// Package nsview lists the namespaces the kernel is enforcing, the way util-linux lsns does,
// and says which container owns each one. Everything it reports comes from the kernel
// (/proc/<pid>/ns/*, the nsfs ioctls, /proc/<pid>/status and cgroup files); container
// records are only used to put a name on a namespace, and each record is checked against
// the live process before it is believed.
package nsview

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Type is a kind of namespace, named as in /proc/<pid>/ns and lsns.
type Type uint8

// The namespace types, in the order lsns reads them.
const (
	Mnt Type = iota
	Net
	Pid
	UTS
	IPC
	User
	Cgroup
	Time
	numTypes
)

// AllTypes lists every namespace type.
var AllTypes = []Type{Mnt, Net, Pid, UTS, IPC, User, Cgroup, Time}

var typeNames = [numTypes]string{"mnt", "net", "pid", "uts", "ipc", "user", "cgroup", "time"}

// ociNames are the spellings of the OCI runtime spec (linux.namespaces[].type).
var ociNames = [numTypes]string{"mount", "network", "pid", "uts", "ipc", "user", "cgroup", "time"}

// cloneFlags are what NS_GET_NSTYPE returns for each type.
var cloneFlags = [numTypes]int{unix.CLONE_NEWNS, unix.CLONE_NEWNET, unix.CLONE_NEWPID,
	unix.CLONE_NEWUTS, unix.CLONE_NEWIPC, unix.CLONE_NEWUSER, unix.CLONE_NEWCGROUP, unix.CLONE_NEWTIME}

func (t Type) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("nstype(%d)", uint8(t))
}

// OCIName is the type as the OCI runtime spec spells it ("mount", "network", ...).
func (t Type) OCIName() string {
	if t < numTypes {
		return ociNames[t]
	}
	return t.String()
}

// ParseType accepts lsns's names (mnt, net, ...), the OCI spec's (mount, network, ...) and
// libcontainer's (NEWNS, NEWNET, ...).
func ParseType(s string) (Type, error) {
	for i := Type(0); i < numTypes; i++ {
		if s == typeNames[i] || s == ociNames[i] {
			return i, nil
		}
	}
	switch strings.ToUpper(s) {
	case "NEWNS":
		return Mnt, nil
	case "NEWNET":
		return Net, nil
	case "NEWPID":
		return Pid, nil
	case "NEWUTS":
		return UTS, nil
	case "NEWIPC":
		return IPC, nil
	case "NEWUSER":
		return User, nil
	case "NEWCGROUP":
		return Cgroup, nil
	case "NEWTIME":
		return Time, nil
	}
	return 0, fmt.Errorf("unknown namespace type %q (want one of %s)", s, strings.Join(typeNames[:], ", "))
}

func typeFromCloneFlag(flag int) (Type, bool) {
	for i, f := range cloneFlags {
		if f == flag {
			return Type(i), true
		}
	}
	return 0, false
}

// TypeSet is a set of namespace types; the zero value is empty.
type TypeSet uint16

// Has tells whether t is in the set.
func (s TypeSet) Has(t Type) bool { return s&(1<<t) != 0 }

// With returns the set plus t.
func (s TypeSet) With(t Type) TypeSet { return s | 1<<t }

// AllTypeSet holds every type.
const AllTypeSet TypeSet = 1<<numTypes - 1

// Types lists the set's members in lsns's order.
func (s TypeSet) Types() []Type {
	var out []Type
	for t := Type(0); t < numTypes; t++ {
		if s.Has(t) {
			out = append(out, t)
		}
	}
	return out
}
