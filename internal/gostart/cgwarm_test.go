package gostart

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const warmProbeEnv = "_BERTH_CGWARM_PROBE"

// warmProbe, in a child started by TestCgroupWarmup, reports whether the constructor began
// the cgroup warm-up and which cgroups the process is in afterwards.
func warmProbe() {
	if os.Getenv(warmProbeEnv) != "1" {
		return
	}
	b, _ := os.ReadFile("/proc/self/cgroup")
	fmt.Printf("%v\n%s", CgroupWarmStarted(), b)
	os.Exit(0)
}

// The warm-up starts for the commands that start a container whose init may be moved by
// pid, as root on a cgroup v1 host, and moves the process nowhere.
func TestCgroupWarmup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the warm-up is for root only; run the tests as root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	v1 := false
	for _, l := range strings.Split(string(own), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[1] != "" && !strings.HasPrefix(f[1], "name=") {
			v1 = true
		}
	}
	// A plain `berth run` does not warm up: its init joins its cgroup without the wait
	// (born in the cgroup2 part of a hybrid layout), unless it has a terminal or a user
	// namespace. The same holds where only v1 is mounted.
	var fs syscall.Statfs_t
	hybrid := v1 && syscall.Statfs("/sys/fs/cgroup/unified", &fs) == nil && fs.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
	dir := t.TempDir()
	// On a hybrid host the cases run again where the cgroup2 hierarchy is not mounted (a
	// mount namespace of their own, as the benchmark's v1 view has), which is pure v1.
	views := []bool{false}
	if hybrid {
		views = append(views, true)
	}
	for _, pureV1 := range views {
		for _, c := range []struct {
			prog string
			args []string
			want bool
		}{
			{"berth", []string{"run", "--rm", "img"}, false},
			{"berth", []string{"run", "-it", "img"}, v1},
			{"berth", []string{"run", "--rm", "-t", "img"}, v1},
			{"berth", []string{"run", "--userns=auto", "img"}, v1},
			{"berth", []string{"run", "-i", "--name", "tty", "img"}, false},
			{"berth", []string{"start", "c"}, false},
			{"berth-runtime", []string{"create", "--bundle", "b", "id"}, v1},
			{"berth-runtime", []string{"run", "id"}, v1},
			{"berth", []string{"run", "--runtime", "runc", "img"}, false},
			{"berth", []string{"run", "--runtime=crun", "img"}, false},
			{"berth", []string{"ps"}, false},
			{"berth-runtime", []string{"delete", "id"}, false},
			{"other", []string{"run", "img"}, false},
		} {
			link := filepath.Join(dir, c.prog)
			os.Remove(link)
			if err := os.Symlink(self, link); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(link, c.args...)
			if pureV1 {
				cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
					`umount /sys/fs/cgroup/unified && exec "$0" "$@"`, link}, c.args...)...)
			}
			cmd.Env = append(os.Environ(), warmProbeEnv+"=1")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s %v: %v", c.prog, c.args, err)
			}
			got, cg, _ := strings.Cut(string(out), "\n")
			if got != fmt.Sprint(c.want) {
				t.Errorf("%s %v (pure v1 view: %v): warm-up started %s, want %v", c.prog, c.args, pureV1, got, c.want)
			}
			if cg != string(own) {
				t.Errorf("%s %v: the probe's cgroups\n%s\ndiffer from its parent's\n%s", c.prog, c.args, cg, own)
			}
		}
	}
	if !v1 {
		t.Log("no cgroup v1 hierarchy with a controller here: checked that nothing starts")
	}
}
