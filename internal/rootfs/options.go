package rootfs

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOptions is an OCI mount's options split into what mount(2) takes.
type mountOptions struct {
	flags       uintptr   // MS_* flags to set
	clear       uintptr   // flags an option asked to clear ("rw", "suid", ...)
	propagation []uintptr // MS_SHARED, MS_SLAVE, ... applied one by one after the mount
	data        []string  // filesystem-specific options (size=, mode=, ...)
	bind        bool
	recursive   bool
}

var flagOptions = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"nosuid":        {false, unix.MS_NOSUID},
	"suid":          {true, unix.MS_NOSUID},
	"nodev":         {false, unix.MS_NODEV},
	"dev":           {true, unix.MS_NODEV},
	"noexec":        {false, unix.MS_NOEXEC},
	"exec":          {true, unix.MS_NOEXEC},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"mand":          {false, unix.MS_MANDLOCK},
	"nomand":        {true, unix.MS_MANDLOCK},
	"atime":         {true, unix.MS_NOATIME},
	"noatime":       {false, unix.MS_NOATIME},
	"diratime":      {true, unix.MS_NODIRATIME},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"relatime":      {false, unix.MS_RELATIME},
	"norelatime":    {true, unix.MS_RELATIME},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"silent":        {false, unix.MS_SILENT},
	"loud":          {true, unix.MS_SILENT},
	"iversion":      {false, unix.MS_I_VERSION},
	"noiversion":    {true, unix.MS_I_VERSION},
	"remount":       {false, unix.MS_REMOUNT},
}

var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// Propagation parses linux.rootfsPropagation; "" means rslave, as runc does, so mounts
// made on the host still reach the container but nothing flows back.
func Propagation(s string) (uintptr, error) {
	if s == "" {
		return unix.MS_SLAVE | unix.MS_REC, nil
	}
	f, ok := propagationOptions[s]
	if !ok {
		return 0, fmt.Errorf("linux.rootfsPropagation: unknown propagation %q", s)
	}
	return f, nil
}

func parseOptions(opts []string) (mountOptions, error) {
	var m mountOptions
	for _, o := range opts {
		switch o {
		case "bind":
			m.bind = true
			continue
		case "rbind":
			m.bind, m.recursive = true, true
			continue
		case "defaults":
			continue
		case "tmpcopyup":
			return m, fmt.Errorf("mount option %q is not supported", o)
		case "idmap", "ridmap":
			continue // the runtime prepares the idmapped clone (rootfs.Config.IDMapped)
		}
		if f, ok := flagOptions[o]; ok {
			if f.clear {
				m.flags &^= f.flag
				m.clear |= f.flag
			} else {
				m.flags |= f.flag
				m.clear &^= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[o]; ok {
			m.propagation = append(m.propagation, p)
			continue
		}
		if strings.ContainsAny(o, ",") {
			return m, fmt.Errorf("mount option %q contains a comma", o)
		}
		m.data = append(m.data, o)
	}
	return m, nil
}

// KnownOptions lists every mount option berth understands, for the runtime's `features`.
func KnownOptions() []string {
	opts := []string{"bind", "rbind", "defaults", "idmap", "ridmap"}
	for o := range flagOptions {
		opts = append(opts, o)
	}
	for o := range propagationOptions {
		opts = append(opts, o)
	}
	sort.Strings(opts)
	return opts
}
