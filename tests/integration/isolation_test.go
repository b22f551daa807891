package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestPid1AndHostProcessesInvisible(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo pid=$$; echo comm=$(cat /proc/1/comm); for p in /proc/[0-9]*; do echo proc=$(cat $p/comm 2>/dev/null); done`)
	raw := r.mustRun(b, "pid1")
	out := lines(raw)
	if out["pid"] != "1" {
		t.Errorf("the container's process has pid %q, want 1", out["pid"])
	}
	if out["comm"] != "sh" {
		t.Errorf("/proc/1/comm is %q, want sh (the container's own program)", out["comm"])
	}
	// Only the script's own shells and cat: nothing of the host.
	n := 0
	for _, l := range strings.Split(raw, "\n") {
		if c, ok := strings.CutPrefix(l, "proc="); ok {
			n++
			if c != "sh" && c != "cat" && c != "" {
				t.Errorf("the container sees a process %q that is not its own", c)
			}
		}
	}
	if n == 0 || n > 4 {
		t.Errorf("the container sees %d processes, want its own 1 to 4", n)
	}
}

func TestHostnameAndOnlyLoopback(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo host=$(hostname); echo links=$(ip -o link | awk -F': ' '{print $2}' | tr '\n' ' ')`)
	b.Spec.Hostname = "box-one"
	b.Spec.Domainname = "example.test"
	out := lines(r.mustRun(b, "uts"))
	if out["host"] != "box-one" {
		t.Errorf("hostname %q, want box-one", out["host"])
	}
	if strings.TrimSpace(out["links"]) != "lo" {
		t.Errorf("links %q, want only lo", out["links"])
	}
	host, _ := os.Hostname()
	if host == "box-one" {
		t.Error("the host's hostname changed")
	}
}

// nsInodes prints "type=inode" for every namespace of the calling process.
const nsInodes = `for n in cgroup ipc mnt net pid time user uts; do echo $n=$(stat -L -c %i /proc/self/ns/$n); done`

func hostInodes(t *testing.T) map[string]string {
	m := map[string]string{}
	for _, n := range []string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"} {
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/self/ns/"+n, &st); err != nil {
			t.Fatal(err)
		}
		m[n] = strconv.FormatUint(st.Ino, 10)
	}
	return m
}

func TestNamespacesDifferExactlyForTypesAsked(t *testing.T) {
	host := hostInodes(t)
	procName := map[specs.LinuxNamespaceType]string{
		specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.MountNamespace: "mnt",
		specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts", specs.UserNamespace: "user",
		specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time",
	}
	cases := map[string][]specs.LinuxNamespaceType{
		"mount-only":   {specs.MountNamespace},
		"pid-mnt-uts":  {specs.PIDNamespace, specs.MountNamespace, specs.UTSNamespace},
		"net-ipc-time": {specs.MountNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.TimeNamespace},
		// Without a user namespace, the init makes its cgroup namespace once it is in its
		// cgroup (late in its setup, on cgroup v1).
		"cgroup-pid": {specs.MountNamespace, specs.CgroupNamespace, specs.PIDNamespace},
		"all":        {specs.PIDNamespace, specs.NetworkNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace},
	}
	for name, types := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRT(t)
			b := newBundle(t, nsInodes)
			b.Spec.Linux.Namespaces = nil
			want := map[string]bool{}
			for _, ty := range types {
				b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: ty})
				want[procName[ty]] = true
			}
			if want["user"] {
				b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
				b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
				chownTree(t, b.rootfs(), 200000)
			}
			if !want["uts"] {
				b.Spec.Hostname = ""
			}
			if !want["net"] {
				// sysfs needs a network namespace of its own under a user namespace.
				b.Spec.Mounts = withoutMount(b.Spec.Mounts, "/sys")
			}
			out := lines(r.mustRun(b, "ns-"+name))
			for n, hostIno := range host {
				got := out[n]
				if got == "" {
					t.Fatalf("no inode for %s in output %v", n, out)
				}
				if want[n] && got == hostIno {
					t.Errorf("%s namespace is the host's (%s), want a new one", n, got)
				}
				if !want[n] && got != hostIno {
					t.Errorf("%s namespace %s differs from the host's %s, but was not asked for", n, got, hostIno)
				}
			}
		})
	}
}

func withoutMount(ms []specs.Mount, dest string) []specs.Mount {
	var out []specs.Mount
	for _, m := range ms {
		if m.Destination != dest && !strings.HasPrefix(m.Destination, dest+"/") {
			out = append(out, m)
		}
	}
	return out
}

func chownTree(t *testing.T, dir string, id int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id, id)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestUserNamespaceFileOwnedByMappedHostID(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `echo -n hi > /tmp/written; echo uid=$(id -u); cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'`)
	b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	chownTree(t, b.rootfs(), 100000)
	out := r.mustRun(b, "userns")
	if !strings.Contains(out, "uid=0") {
		t.Errorf("inside the user namespace the process is not root: %q", out)
	}
	if !strings.Contains(out, "0 100000 65536") {
		t.Errorf("uid_map inside is not the configured one: %q", out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(b.rootfs(), "tmp", "written"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 100000 || st.Gid != 100000 {
		t.Errorf("file written as root inside is owned by %d:%d on the host, want 100000:100000", st.Uid, st.Gid)
	}
}

func TestMountsInsideDoNotReachHost(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `mkdir -p /tmp/m && mount -t tmpfs marker-berth-inside /tmp/m && grep -c marker-berth-inside /proc/self/mountinfo`)
	b.Spec.Process.Capabilities.Bounding = append(b.Spec.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
	b.Spec.Process.Capabilities.Effective = append(b.Spec.Process.Capabilities.Effective, "CAP_SYS_ADMIN")
	b.Spec.Process.Capabilities.Permitted = append(b.Spec.Process.Capabilities.Permitted, "CAP_SYS_ADMIN")
	b.Spec.Linux.Seccomp = nil // the default profile denies mount(2) outright
	out := r.mustRun(b, "mnt")
	if strings.TrimSpace(out) != "1" {
		t.Fatalf("the mount inside the container did not happen: %q", out)
	}
	host, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(host), "marker-berth-inside") {
		t.Error("a mount made inside the container appeared on the host")
	}
	if strings.Contains(string(host), b.rootfs()) {
		t.Error("the container's rootfs is still mounted on the host")
	}
}

func TestJoinNamespacesByPath(t *testing.T) {
	r := newRT(t)
	a := newBundle(t, `sleep 60`)
	a.Spec.Hostname = "holder"
	a.save(t)
	r.mustOK("run", "-d", "-b", a.Dir, "holder")
	pid := r.state("holder").Pid
	b := newBundle(t, nsInodes+`; echo host=$(hostname)`)
	b.Spec.Hostname = ""
	b.Spec.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.MountNamespace}, {Type: specs.PIDNamespace},
		{Type: specs.NetworkNamespace, Path: fmt.Sprintf("/proc/%d/ns/net", pid)},
		{Type: specs.UTSNamespace, Path: fmt.Sprintf("/proc/%d/ns/uts", pid)},
		{Type: specs.IPCNamespace, Path: fmt.Sprintf("/proc/%d/ns/ipc", pid)},
	}
	out := lines(r.mustRun(b, "joiner"))
	for _, n := range []string{"net", "uts", "ipc"} {
		var st syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, n), &st); err != nil {
			t.Fatal(err)
		}
		if out[n] != strconv.FormatUint(st.Ino, 10) {
			t.Errorf("%s namespace %s, want the holder's %d", n, out[n], st.Ino)
		}
	}
	if out["host"] != "holder" {
		t.Errorf("hostname in the joined UTS namespace is %q, want holder", out["host"])
	}
	if out["pid"] == strconv.FormatUint(mustIno(t, pid, "pid"), 10) {
		t.Error("the joiner asked for a new pid namespace but shares the holder's")
	}
}

func mustIno(t *testing.T, pid int, n string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, n), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestTimeNamespaceOffsets(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `cut -d. -f1 /proc/uptime`)
	b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
	b.Spec.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 864000}}
	out := strings.TrimSpace(r.mustRun(b, "timens"))
	inside, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("uptime inside: %q", out)
	}
	raw, _ := os.ReadFile("/proc/uptime")
	host, _ := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	if d := float64(inside) - host; d < 864000-60 || d > 864000+60 {
		t.Errorf("uptime inside %d, host %.0f: offset %.0f s, want 864000", inside, host, d)
	}
}
