package cgroups

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const mib = 1 << 20

func TestMemoryLimitOOMKills(t *testing.T) {
	m := newCgroup(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(32 * mib)), Swap: ptr(int64(32 * mib))}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, err := m.OOMEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The shell holds the 100 MiB string; the OOM killer picks it.
	p := startGated(t, `x=$(head -c 104857600 /dev/zero | tr "\0" a); echo "survived ${#x}"`)
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	p.release(t)
	status := p.wait(t, 60*time.Second)
	if sig := killedBy(status); sig != syscall.SIGKILL || strings.Contains(p.output(), "survived") {
		t.Fatalf("allocating 100 MiB under a 32 MiB limit: status %v, output %q; want SIGKILL", status, p.output())
	}
	select {
	case _, ok := <-events:
		if !ok {
			t.Fatal("OOM event channel closed instead of delivering the OOM")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OOM event within 10s")
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.OOMKills < 1 || st.Memory.Usage.Limit != 32*mib || st.Memory.Usage.Max < 31*mib {
		t.Fatalf("memory stats after the OOM kill: %+v", st.Memory)
	}
	if n, err := m.OOMKillCount(); err != nil || n != st.Memory.OOMKills {
		t.Fatalf("OOMKillCount = %d, %v; Stats say %d", n, err, st.Memory.OOMKills)
	}
	t.Logf("oom kills %d, failcnt %d, max usage %d", st.Memory.OOMKills, st.Memory.Usage.Failcnt, st.Memory.Usage.Max)

	// The event channel ends with the cgroup.
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if ok {
				continue
			}
		case <-deadline:
			t.Fatal("OOM event channel still open 5s after Destroy")
		}
		break
	}
}

func TestPidsLimitStopsForkLoop(t *testing.T) {
	m := newCgroup(t, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(20))}})
	p := startGated(t, `i=0; while [ $i -lt 40 ]; do sleep 1000 & i=$((i+1)); done; echo all-forked`)
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	p.release(t)
	// ash gives up on the first failed fork; the sleeps it did fork stay.
	p.wait(t, 30*time.Second)
	out := p.output()
	if strings.Contains(out, "all-forked") || !strings.Contains(out, "can't fork") {
		t.Fatalf("fork loop under pids.max=20 was not stopped: %q", out)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	pids, err := m.Pids()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids.Limit != 20 || st.Pids.Current != uint64(len(pids)) || len(pids) > 19 || len(pids) < 10 {
		t.Fatalf("pids limit %d, current %d, %d processes left; want limit 20 and 10-19 sleeps", st.Pids.Limit, st.Pids.Current, len(pids))
	}
	t.Logf("%d sleeps forked before the limit; shell said %q", len(pids), strings.TrimSpace(out))
}

func TestCPUQuotaHoldsBusyLoop(t *testing.T) {
	m := newCgroup(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(20000)), Period: ptr(uint64(100000))}})
	p := startGated(t, `while :; do :; done`)
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	s0, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	p.release(t)
	time.Sleep(2 * time.Second)
	s1, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(t0)
	frac := float64(s1.CPU.Usage.Total-s0.CPU.Usage.Total) / float64(el.Nanoseconds())
	t.Logf("busy loop used %.1f%% of one CPU over %s (quota 20%%), throttled %d of %d periods",
		100*frac, el.Round(time.Millisecond), s1.CPU.Throttling.ThrottledPeriods, s1.CPU.Throttling.Periods)
	if frac < 0.10 || frac > 0.35 {
		t.Fatalf("busy loop used %.1f%% of a CPU under a 20%% quota; want 10-35%%", 100*frac)
	}
	if s1.CPU.Throttling.ThrottledPeriods == 0 {
		t.Fatalf("no throttled periods: %+v", s1.CPU.Throttling)
	}
}

func TestUpdateRaisesMemoryLimitLive(t *testing.T) {
	m := newCgroup(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(32 * mib)), Swap: ptr(int64(32 * mib))}})
	p := startGated(t, `x=$(head -c 50000000 /dev/zero | tr "\0" a); echo "survived ${#x}"`)
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	// Raising limit and memory+swap together needs memsw first on v1.
	if err := m.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(256 * mib)), Swap: ptr(int64(256 * mib))}}); err != nil {
		t.Fatal(err)
	}
	if m.Layout() == Unified {
		if got := readTrim(t, m.Paths()[""]+"/memory.max"); got != strconv.Itoa(256*mib) {
			t.Fatalf("memory.max = %s", got)
		}
		if got := readTrim(t, m.Paths()[""]+"/memory.swap.max"); got != "0" {
			t.Fatalf("memory.swap.max = %s, want 0 (memory+swap equal to the limit)", got)
		}
	} else {
		d := m.Paths()["memory"]
		if got := readTrim(t, d+"/memory.limit_in_bytes"); got != strconv.Itoa(256*mib) {
			t.Fatalf("memory.limit_in_bytes = %s", got)
		}
		if got := readTrim(t, d+"/memory.memsw.limit_in_bytes"); got != strconv.Itoa(256*mib) {
			t.Fatalf("memory.memsw.limit_in_bytes = %s", got)
		}
	}
	p.release(t)
	if err := p.wait(t, 60*time.Second); err != nil || !strings.Contains(p.output(), "survived 50000000") {
		t.Fatalf("50 MB under the raised 256 MiB limit: %v, output %q", err, p.output())
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.Usage.Limit != 256*mib || st.Memory.Usage.Max < 50000000 {
		t.Fatalf("stats after the update: %+v", st.Memory.Usage)
	}

	// Lowering below what is in use (the shell must not exec its last command, which
	// would free the string) is refused when checkBeforeUpdate asks for it.
	q := startGated(t, `x=$(head -c 20000000 /dev/zero | tr "\0" a); echo held; sleep 1000; echo "${#x}"`)
	if err := m.AddProc(q.pid()); err != nil {
		t.Fatal(err)
	}
	q.release(t)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(q.output(), "held"); {
		if time.Now().After(deadline) {
			t.Fatalf("the 20 MB holder did not start: %q", q.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = m.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(4 * mib)), CheckBeforeUpdate: ptr(true)}})
	wantErr(t, err, "linux.resources.memory.limit 4194304 is below the current usage", "checkBeforeUpdate")
}

func TestFreezeStopsAndThawRestartsCounter(t *testing.T) {
	m := newCgroup(t, nil)
	f := filepath.Join(t.TempDir(), "counter")
	p := startGated(t, `i=0; while :; do i=$((i+1)); echo $i > `+f+`; done`)
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	p.release(t)
	read := func() string { b, _ := os.ReadFile(f); return string(b) }
	waitChange := func(from string) string {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if v := read(); v != from && v != "" {
				return v
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("counter stuck at %q", from)
		return ""
	}
	waitChange("")
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if fr, err := m.Frozen(); err != nil || !fr {
		t.Fatalf("Frozen after Freeze = %v, %v", fr, err)
	}
	if fr, err := IsFrozen(m.Paths()); err != nil || !fr {
		t.Fatalf("IsFrozen(%v) after Freeze = %v, %v", m.Paths(), fr, err)
	}
	a := read()
	time.Sleep(300 * time.Millisecond)
	if b := read(); a != b {
		t.Fatalf("counter moved from %q to %q while frozen", a, b)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if fr, err := m.Frozen(); err != nil || fr {
		t.Fatalf("Frozen after Thaw = %v, %v", fr, err)
	}
	if fr, err := IsFrozen(m.Paths()); err != nil || fr {
		t.Fatalf("IsFrozen(%v) after Thaw = %v, %v", m.Paths(), fr, err)
	}
	c := waitChange(a)
	t.Logf("counter %s while frozen, %s after thaw", strings.TrimSpace(a), strings.TrimSpace(c))
}

func TestDestroyFrozen(t *testing.T) {
	m := newCgroup(t, nil)
	p := startGated(t, "sleep 1000 & sleep 1000; :")
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	p.release(t)
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := m.Destroy(); err != nil {
		t.Fatalf("Destroy of a frozen cgroup: %v", err)
	}
	if sig := killedBy(p.wait(t, 5*time.Second)); sig != syscall.SIGKILL {
		t.Fatalf("frozen shell ended by %v, want SIGKILL", sig)
	}
	for _, d := range m.Paths() {
		if exists(d) {
			t.Errorf("%s left after Destroy", d)
		}
	}
	t.Logf("Destroy of a frozen cgroup took %s", time.Since(start).Round(time.Microsecond))
}

// probeDevices reports, from inside the cgroup, which device accesses work.
const probeDevices = `echo x > /dev/null 2>/dev/null && echo null-write-ok || echo null-write-denied
head -c1 /dev/zero > /dev/null 2>&1 && echo zero-read-ok || echo zero-read-denied
echo x > /dev/zero 2>/dev/null && echo zero-write-ok || echo zero-write-denied
head -c1 /dev/urandom > /dev/null 2>&1 && echo urandom-read-ok || echo urandom-read-denied`

func runProbe(t *testing.T, m Manager) string {
	t.Helper()
	p := startGated(t, probeDevices)
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	p.release(t)
	p.wait(t, 10*time.Second)
	return strings.Join(strings.Fields(p.output()), " ")
}

var devRules = []specs.LinuxDeviceCgroup{
	{Allow: false, Access: "rwm"},
	{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}, // /dev/null
	{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(5)), Access: "rw"},  // /dev/zero
	{Allow: false, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(5)), Access: "r"},  // ... but not read
}

// TestDeviceRules applies the device rules the layout's way: devices.allow/deny on v1 and
// hybrid, the eBPF program on v2; then replaces them with Update.
func TestDeviceRules(t *testing.T) {
	m := newCgroup(t, &specs.LinuxResources{Devices: devRules})
	want := "null-write-ok zero-read-denied zero-write-ok urandom-read-denied"
	if got := runProbe(t, m); got != want {
		t.Fatalf("device access under the rules (%v): %q, want %q", m.Layout(), got, want)
	}
	if d, ok := m.Paths()["devices"]; ok {
		list := readTrim(t, d+"/devices.list")
		if !strings.Contains(list, "c 1:3 rwm") || !strings.Contains(list, "c 1:5 w") {
			t.Fatalf("devices.list = %q", list)
		}
	}
	upd := append(append([]specs.LinuxDeviceCgroup{}, devRules...),
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(9)), Access: "r"})
	if err := m.Update(&specs.LinuxResources{Devices: upd}); err != nil {
		t.Fatal(err)
	}
	want = "null-write-ok zero-read-denied zero-write-ok urandom-read-ok"
	if got := runProbe(t, m); got != want {
		t.Fatalf("device access after Update: %q, want %q", got, want)
	}
	if m.Layout() == Unified {
		assertOneDeviceProgram(t, m.Paths()[""])
	}
}

func assertOneDeviceProgram(t *testing.T, dir string) {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	ids, err := attachedDevicePrograms(fd)
	if err != nil || len(ids) != 1 {
		t.Fatalf("device programs attached to %s: %v, %v; want exactly one", dir, ids, err)
	}
}

// TestDeviceProgramOnHybridUnifiedMount runs the generated eBPF program through the real
// verifier and device hook on a host that is not pure v2: the cgroup2 hook also guards
// processes of a hybrid host, by their cgroup on the unified mount.
func TestDeviceProgramOnHybridUnifiedMount(t *testing.T) {
	m := newCgroup(t, nil)
	if m.Layout() != Hybrid {
		t.Logf("on %v the manager's own device path is covered by TestDeviceRules", m.Layout())
		return
	}
	rules, err := compileDevices(devRules)
	if err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()[""]
	if err := setDeviceFilter(dir, rules); err != nil {
		t.Fatal(err)
	}
	want := "null-write-ok zero-read-denied zero-write-ok urandom-read-denied"
	if got := runProbe(t, m); got != want {
		t.Fatalf("device access under the eBPF program: %q, want %q", got, want)
	}
	// Replacing the program leaves exactly one attached.
	if err := setDeviceFilter(dir, nil); err != nil {
		t.Fatal(err)
	}
	assertOneDeviceProgram(t, dir)
	if got := runProbe(t, m); got != "null-write-ok zero-read-ok zero-write-ok urandom-read-ok" {
		t.Fatalf("device access under an allow-all program: %q", got)
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	needRoot(t)
	m, err := New(Config{ID: testID(t), Resources: &specs.LinuxResources{
		Pids: &specs.LinuxPids{Limit: ptr(int64(10))},
		CPU:  &specs.LinuxCPU{Cpus: "4000-4001"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Create()
	wantErr(t, err, "linux.resources.cpu.cpus", "cpuset.cpus")
	for k, d := range m.Paths() {
		if exists(d) {
			t.Errorf("failed Create left %s (%s)", d, hierName(k))
		}
	}
}

// blockIO gives a script doing 2 MiB of direct I/O that the block layer charges to the
// caller's cgroup, the device it goes to, and the op it is counted as: writes to a file
// where the temporary directory is on a disk (the host), reads of the scratch disk where it
// is a tmpfs (the v2 lane's VM, which attaches /dev/vda with V2VM_DISK).
func blockIO(t *testing.T) (script, dev, op string) {
	t.Helper()
	dir := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if unix.Major(st.Dev) != 0 {
		return "dd if=/dev/zero of=" + dir + "/f bs=64k count=32 oflag=direct 2>&1",
			fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)), "Write"
	}
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "zram") || strings.HasPrefix(n, "ram") {
			continue
		}
		if b, err := os.ReadFile("/sys/block/" + n + "/dev"); err == nil {
			return "dd if=/dev/" + n + " of=/dev/null bs=64k count=32 iflag=direct 2>&1", strings.TrimSpace(string(b)), "Read"
		}
	}
	t.Fatalf("%s is not on a disk and there is no disk in /sys/block (the v2 lane attaches one with V2VM_DISK)", dir)
	return "", "", ""
}

func TestBlkioStats(t *testing.T) {
	m := newCgroup(t, nil)
	script, dev, op := blockIO(t)
	p := startGated(t, script)
	if err := m.AddProc(p.pid()); err != nil {
		t.Fatal(err)
	}
	p.release(t)
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Fatalf("%s: %v: %s", script, err, p.output())
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var bytes, ios uint64
	for _, e := range st.Blkio.IoServiceBytesRecursive {
		if fmt.Sprintf("%d:%d", e.Major, e.Minor) == dev && e.Op == op {
			bytes = e.Value
		}
	}
	for _, e := range st.Blkio.IoServicedRecursive {
		if fmt.Sprintf("%d:%d", e.Major, e.Minor) == dev && e.Op == op {
			ios = e.Value
		}
	}
	if bytes < 2*mib || ios == 0 {
		t.Fatalf("%s counters for %s: %d bytes, %d ios; all: %+v", op, dev, bytes, ios, st.Blkio)
	}
	t.Logf("%s %s: %d bytes in %d ios", dev, op, bytes, ios)
}
