package rootfs

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	for _, c := range []struct {
		m    specs.Mount
		want MountOptions
	}{
		{specs.Mount{Type: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			MountOptions{Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"}},
		{specs.Mount{Type: "bind", Options: []string{"ro", "rprivate"}},
			MountOptions{Flags: unix.MS_RDONLY, Bind: true, Propagation: []uintptr{unix.MS_PRIVATE | unix.MS_REC}}},
		{specs.Mount{Type: "none", Options: []string{"rbind", "ro", "rw", "nosuid", "suid", "shared"}},
			MountOptions{Bind: true, Recursive: true, Propagation: []uintptr{unix.MS_SHARED}}},
		{specs.Mount{Type: "proc", Options: []string{"defaults"}}, MountOptions{}},
	} {
		got, err := ParseMountOptions(c.m)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v: %+v, %v; want %+v", c.m.Options, got, err, c.want)
		}
	}
	for _, bad := range [][]string{{"tmpcopyup"}, {"a,b"}} {
		if _, err := ParseMountOptions(specs.Mount{Type: "tmpfs", Options: bad}); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

func TestHierarchyDirAndDeviceMode(t *testing.T) {
	for path, want := range map[string]string{
		"/sys/fs/cgroup/memory/berth/c1":      "memory",
		"/sys/fs/cgroup/cpu,cpuacct/berth/c1": "cpu,cpuacct",
		"/sys/fs/cgroup/berth/c1":             "berth",
		"/elsewhere/berth":                    "",
	} {
		if got := HierarchyDir(path); got != want {
			t.Errorf("HierarchyDir(%s) = %q, want %q", path, got, want)
		}
	}
	for typ, want := range map[string]uint32{"c": unix.S_IFCHR, "u": unix.S_IFCHR, "b": unix.S_IFBLK, "p": unix.S_IFIFO} {
		if got, ok := DeviceMode(typ); !ok || got != want {
			t.Errorf("DeviceMode(%s) = %#o %v", typ, got, ok)
		}
	}
	if _, ok := DeviceMode("x"); ok {
		t.Error("DeviceMode(x) accepted")
	}
}
