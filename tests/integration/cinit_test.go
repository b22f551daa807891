package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// procStatus reads the fields of /proc/<pid>/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// A created container's init is the C init executing its plan: one thread, no Go runtime,
// a small resident set. Forced with the org.berth.init=go annotation, it is the Go init
// (several threads), and both run the same program the same way once started.
func TestCInitAndForcedGoInit(t *testing.T) {
	r := newRT(t)
	r.allowGoInit("goinit")
	for _, c := range []struct {
		id, annotation string
		wantGo         bool
	}{{"cinit", "", false}, {"goinit", "go", true}} {
		b := newBundle(t, `echo "ran as $(id -u) on $(hostname)" > /tmp/ran`)
		b.Spec.Hostname = "planned"
		if c.annotation != "" {
			b.Spec.Annotations = map[string]string{"org.berth.init": c.annotation}
		}
		b.save(t)
		r.mustOK("create", "-b", b.Dir, c.id)
		how := r.lastInit(c.id)
		if got := strings.HasPrefix(how, "go:"); got != c.wantGo {
			t.Fatalf("%s: init %q, want Go init %v", c.id, how, c.wantGo)
		}
		pid := r.state(c.id).Pid
		st := procStatus(t, pid)
		threads, _ := strconv.Atoi(st["Threads"])
		rssKiB, _ := strconv.Atoi(strings.TrimSuffix(st["VmRSS"], " kB"))
		t.Logf("%s: %s init: %d threads, VmRSS %d KiB", c.id, how, threads, rssKiB)
		if c.wantGo && threads < 2 {
			t.Errorf("%s: the Go init has %d threads; a Go runtime starts several", c.id, threads)
		}
		if !c.wantGo {
			if threads != 1 {
				t.Errorf("%s: the C init has %d threads, want 1 (no Go runtime)", c.id, threads)
			}
			if rssKiB <= 0 || rssKiB > 3*1024 {
				t.Errorf("%s: the C init's VmRSS is %d KiB, want under 3 MiB", c.id, rssKiB)
			}
		}
		if st["TracerPid"] != "0" {
			t.Errorf("%s: init is traced", c.id)
		}
		r.mustOK("start", c.id)
		waitFor(t, c.id+" to exit", func() bool { return gone(pid) })
		if got, _ := os.ReadFile(filepath.Join(b.rootfs(), "tmp", "ran")); string(got) != "ran as 0 on planned\n" {
			t.Errorf("%s: the program wrote %q", c.id, got)
		}
		r.mustOK("delete", c.id)
	}
}

// For specs of every kind the tests use (plain, Docker-like, user namespace without a
// network namespace of its own, so sysfs is bound from the host), the C init and the Go
// init give the program the same world: mounts, devices, ids, capabilities, limits,
// descriptors.
func TestCInitSameWorldAsGoInit(t *testing.T) {
	r := newRT(t)
	script := `echo host=$(hostname) domain=$(cat /proc/sys/kernel/domainname) uid=$(id -u) groups=$(id -G) cwd=$(pwd) umask=$(umask)
grep -E '^(CapEff|CapBnd|CapPrm|CapInh|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t'
ls -ln /dev | awk '{print $1, $3, $4, $5, $6, $NF}'
grep -v ' / ' /proc/self/mounts | cut -d' ' -f1-4
ulimit -n; ulimit -s; ls /proc/self/fd; cat /proc/self/oom_score_adj; touch /ro/x 2>&1 | head -c 40; echo`
	for name, mod := range map[string]func(t *testing.T, b *bundle){
		"plain": func(t *testing.T, b *bundle) {},
		"docker-like": func(t *testing.T, b *bundle) {
			host := t.TempDir()
			os.WriteFile(filepath.Join(host, "f"), []byte("x"), 0o644)
			b.Spec.Root.Readonly = true
			b.Spec.Domainname = "example.org"
			b.Spec.Process.User = specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{5, 7}, Umask: func() *uint32 { u := uint32(0o027); return &u }()}
			b.Spec.Process.Cwd = "/tmp"
			b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 1024}, {Type: "RLIMIT_STACK", Soft: 4 << 20, Hard: 8 << 20}}
			adj := 300
			b.Spec.Process.OOMScoreAdj = &adj
			b.Spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
			b.Spec.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229,
				FileMode: func() *os.FileMode { m := os.FileMode(0o640); return &m }(), UID: func() *uint32 { u := uint32(5); return &u }()}}
			b.Spec.Mounts = append(b.Spec.Mounts,
				specs.Mount{Destination: "/ro", Type: "bind", Source: host, Options: []string{"rbind", "ro", "rprivate"}},
				specs.Mount{Destination: "/ro/f", Type: "bind", Source: filepath.Join(host, "f"), Options: []string{"bind", "ro"}},
				specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755", "size=1m"}},
				specs.Mount{Destination: "/rel", Type: "bind", Source: "rootfs/etc", Options: []string{"bind"}})
		},
		"userns": func(t *testing.T, b *bundle) {
			var ns []specs.LinuxNamespace
			for _, n := range b.Spec.Linux.Namespaces {
				if n.Type != specs.NetworkNamespace {
					ns = append(ns, n)
				}
			}
			b.Spec.Linux.Namespaces = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
			b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			// Bound from the host's node: /dev/kmsg is there wherever /dev is a devtmpfs
			// (/dev/fuse is not until the fuse module loads, as in the cgroup v2 lane's VM).
			b.Spec.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/kmsg", Type: "c", Major: 1, Minor: 11}}
			chownTree(t, b.rootfs(), 100000)
		},
	} {
		outs := map[string]string{}
		for _, ann := range []string{"", "go"} {
			id := name + "-" + ann
			r.allowGoInit(name + "-go")
			b := newBundle(t, script)
			b.Spec.Hostname = "same"
			os.MkdirAll(filepath.Join(b.rootfs(), "ro"), 0o755)
			mod(t, b)
			if ann != "" {
				b.Spec.Annotations = map[string]string{"org.berth.init": ann}
			}
			// The bundle's path is in the mounts' sources: compare without it.
			outs[ann] = strings.ReplaceAll(r.mustRun(b, id), b.Dir, "<bundle>")
			if how := r.lastInit(id); strings.HasPrefix(how, "go:") != (ann == "go") {
				t.Errorf("%s: init %q", id, how)
			}
		}
		if outs[""] != outs["go"] {
			t.Errorf("%s: the C init and the Go init set the container up differently:\nC:\n%s\nGo:\n%s", name, outs[""], outs["go"])
		} else {
			t.Logf("%s: both inits:\n%s", name, outs[""])
		}
	}
}

// A failing operation of the plan fails create with the same error the Go init gives,
// naming the spec field and path, and leaves nothing behind.
func TestCInitErrorsNameTheSpecField(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, b *bundle)
		want  []string
	}{
		{"bad-mount-type", func(t *testing.T, b *bundle) {
			b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/x", Type: "nosuchfs", Source: "x"})
		}, []string{"mounts[", "nosuchfs on /x", "no such device"}},
		{"missing-program", func(t *testing.T, b *bundle) { b.Spec.Process.Args = []string{"nosuchprog"} },
			[]string{"process.args[0]", "nosuchprog", "not found in $PATH"}},
		{"missing-program-path", func(t *testing.T, b *bundle) { b.Spec.Process.Args = []string{"/bin/nosuchprog"} },
			[]string{"process.args[0] /bin/nosuchprog", "no such file"}},
		{"program-is-dir", func(t *testing.T, b *bundle) { b.Spec.Process.Args = []string{"/bin"} },
			[]string{"process.args[0] /bin", "is a directory"}},
		{"missing-cwd", func(t *testing.T, b *bundle) { b.Spec.Process.Cwd = "/nonexistent" },
			[]string{"process.cwd /nonexistent", "no such file"}},
		{"proc-through-symlink", func(t *testing.T, b *bundle) {
			os.Remove(filepath.Join(b.rootfs(), "proc"))
			os.Symlink("tmp", filepath.Join(b.rootfs(), "proc"))
		}, []string{"mounts[", "proc on /proc", "symlink"}},
		{"device-outside-dev", func(t *testing.T, b *bundle) {
			b.Spec.Linux.Devices = []specs.LinuxDevice{{Path: "/tmp/x", Type: "c", Major: 1, Minor: 3}}
		}, []string{"linux.devices[0] /tmp/x", "not under /dev"}},
		{"unknown-sysctl", func(t *testing.T, b *bundle) {
			b.Spec.Linux.Sysctl = map[string]string{"net.ipv4.nosuch_berth": "1"}
		}, []string{"linux.sysctl net.ipv4.nosuch_berth", "no such file"}},
		{"bind-source-missing", func(t *testing.T, b *bundle) {
			b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/nonexistent-berth"})
		}, []string{"mounts[", "bind /nonexistent-berth on /data", "no such file"}},
	}
	for _, c := range cases {
		for _, ann := range []string{"", "go"} {
			t.Run(c.name+"/"+map[string]string{"": "c", "go": "go"}[ann], func(t *testing.T) {
				r := newRT(t)
				r.allowGoInit("bad")
				b := newBundle(t, "true")
				c.setup(t, b)
				if ann != "" {
					b.Spec.Annotations = map[string]string{"org.berth.init": ann}
				}
				b.save(t)
				_, stderr, code := r.exec("create", "-b", b.Dir, "bad")
				if code != 1 {
					t.Errorf("exit status %d, want 1 (stderr %q)", code, stderr)
				}
				msg := strings.TrimSpace(stderr)
				for _, w := range append(c.want, "container bad") {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q does not mention %q", msg, w)
					}
				}
				if how := r.lastInit("bad"); strings.HasPrefix(how, "go:") != (ann == "go") {
					t.Errorf("init %q", how)
				}
				if ents, _ := os.ReadDir(r.root); len(ents) != 0 {
					t.Errorf("a failed create left %d entries in the state root", len(ents))
				}
				assertNoCgroup(t, "bad")
			})
		}
	}
}

// A mount destination through a symlink that points out of the rootfs (absolute, and by
// ..) lands inside the rootfs, in both inits; the host directory it names stays untouched.
// A symlink to a directory missing in the rootfs is refused rather than followed out.
func TestCInitMountThroughSymlinkContained(t *testing.T) {
	r := newRT(t)
	r.allowGoInit("contained-go")
	r.allowGoInit("dangling-go")
	host := t.TempDir()
	for _, ann := range []string{"", "go"} {
		b := newBundle(t, `grep -c " $HOSTDIR/abs " /proc/self/mounts; grep -c " /dotdot " /proc/self/mounts; echo x > $HOSTDIR/abs/file && echo wrote`)
		b.Spec.Process.Env = append(b.Spec.Process.Env, "HOSTDIR="+host)
		if ann != "" {
			b.Spec.Annotations = map[string]string{"org.berth.init": ann}
		}
		if err := os.Symlink(host, filepath.Join(b.rootfs(), "abs")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(b.rootfs(), host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../../../../../../../..", filepath.Join(b.rootfs(), "up")); err != nil {
			t.Fatal(err)
		}
		b.Spec.Mounts = append(b.Spec.Mounts,
			specs.Mount{Destination: "/abs/abs", Type: "tmpfs", Source: "tmpfs"},
			specs.Mount{Destination: "/up/dotdot", Type: "tmpfs", Source: "tmpfs"})
		out := r.mustRun(b, "contained-"+ann)
		if got := strings.Fields(out); len(got) != 3 || got[0] != "1" || got[1] != "1" || got[2] != "wrote" {
			t.Errorf("init %q: inside: %q; want both tmpfs mounted inside the rootfs, and writable", ann, out)
		}
		if _, err := os.Stat(filepath.Join(b.rootfs(), host, "abs")); err != nil {
			t.Errorf("init %q: the mount point was not made inside the rootfs: %v", ann, err)
		}

		d := newBundle(t, "true")
		if ann != "" {
			d.Spec.Annotations = map[string]string{"org.berth.init": ann}
		}
		if err := os.Symlink(host, filepath.Join(d.rootfs(), "abs")); err != nil {
			t.Fatal(err)
		}
		d.Spec.Mounts = append(d.Spec.Mounts, specs.Mount{Destination: "/abs/abs", Type: "tmpfs", Source: "tmpfs"})
		d.save(t)
		if _, stderr, code := r.exec("run", "-b", d.Dir, "dangling-"+ann); code != 1 || !strings.Contains(stderr, "mounts[") || !strings.Contains(stderr, "/abs") {
			t.Errorf("init %q: a destination through a dangling symlink: exit %d, %q", ann, code, stderr)
		}
	}
	if ents, _ := os.ReadDir(host); len(ents) != 0 {
		t.Errorf("the host directory %s got %d entries", host, len(ents))
	}
	if _, err := os.Stat("/dotdot"); err == nil {
		t.Errorf("/dotdot appeared on the host")
	}
}
