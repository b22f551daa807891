package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var berthBin string

func TestMain(m *testing.M) {
	if mode := os.Getenv("_BERTH_SIGPROXY_CHILD"); mode != "" {
		sigProxyChild(mode)
	}
	dir, err := os.MkdirTemp("", "berth-ns-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	berthBin = filepath.Join(dir, "berth")
	if out, err := exec.Command("go", "build", "-o", berthBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build berth: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireRootAndTools(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("berth ns tests create namespaces and must run as root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (hack/deps-nsview.sh installs it): %v", tool, err)
		}
	}
}

func berth(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// startUnshare runs `unshare <flags> --fork busybox sleep 1000` and returns unshare's pid
// and its busybox child's; both are killed when the test ends.
func startUnshare(t *testing.T, flags ...string) (outer, init int) {
	t.Helper()
	args := append(append([]string{}, flags...), "--fork", "busybox", "sleep", "1000")
	cmd := exec.Command("unshare", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start unshare %v: %v", args, err)
	}
	outer = cmd.Process.Pid
	t.Cleanup(func() {
		if init > 0 {
			syscall.Kill(init, syscall.SIGKILL) // pid 1 of its namespace ignores SIGTERM
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", outer, outer))
		if f := strings.Fields(string(b)); len(f) > 0 {
			if c, _ := os.ReadFile("/proc/" + f[0] + "/comm"); strings.TrimSpace(string(c)) == "busybox" {
				init, _ = strconv.Atoi(f[0])
				return outer, init
			}
		}
	}
	t.Fatalf("unshare %v: no busybox child after 10s", args)
	return 0, 0
}

func nsInode(t *testing.T, pid int, typ string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, typ), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

type nsRow struct {
	NS        uint64  `json:"ns"`
	Type      string  `json:"type"`
	NProcs    int     `json:"nprocs"`
	Pid       *int    `json:"pid"`
	Container *string `json:"container"`
	CID       *string `json:"cid"`
	Runtime   *string `json:"runtime"`
	Children  []nsRow `json:"children"`
}

// flatten parses lsns-shaped JSON and returns every row, children included, by inode.
func flatten(t *testing.T, out string) map[uint64]nsRow {
	t.Helper()
	var doc struct {
		Namespaces []nsRow `json:"namespaces"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("parse JSON: %v\n%s", err, out)
	}
	m := make(map[uint64]nsRow)
	var walk func([]nsRow)
	walk = func(rows []nsRow) {
		for _, r := range rows {
			m[r.NS] = r
			walk(r.Children)
		}
	}
	walk(doc.Namespaces)
	return m
}

func key(r nsRow) string {
	pid := -1
	if r.Pid != nil {
		pid = *r.Pid
	}
	return fmt.Sprintf("%s nprocs=%d pid=%d", r.Type, r.NProcs, pid)
}

// `berth ns -J` and `lsns -J` agree on every namespace's inode, type, process count and
// lowest pid. Processes come and go on a shared host, so lsns runs before and after berth
// and only namespaces both lsns runs agree on are compared; the comparison is retried
// until one round has no process churn in the namespaces that matter.
func TestNSJSONMatchesLsns(t *testing.T) {
	requireRootAndTools(t, "lsns", "unshare", "busybox")
	_, init1 := startUnshare(t, "--user", "--map-root-user", "--pid", "--mount-proc", "--uts", "--ipc", "--net")
	_, init2 := startUnshare(t, "--uts", "--ipc")
	mine := []uint64{nsInode(t, init1, "user"), nsInode(t, init1, "pid"), nsInode(t, init1, "net"),
		nsInode(t, init2, "uts"), nsInode(t, init2, "ipc")}
	lsns := func() map[uint64]nsRow {
		out, err := exec.Command("lsns", "-J").Output()
		if err != nil {
			t.Fatalf("lsns -J: %v", err)
		}
		return flatten(t, string(out))
	}
	var problems []string
	for round := 0; round < 30; round++ {
		before := lsns()
		out, stderr, err := berth(t, nil, "ns", "-J")
		if err != nil {
			t.Fatalf("berth ns -J: %v: %s", err, stderr)
		}
		ours := flatten(t, out)
		after := lsns()
		problems = problems[:0]
		stable := 0
		for ino, l := range before {
			if a, ok := after[ino]; !ok || key(a) != key(l) {
				continue
			}
			stable++
			if b, ok := ours[ino]; !ok {
				problems = append(problems, fmt.Sprintf("%d (%s) missing from berth ns", ino, key(l)))
			} else if key(b) != key(l) {
				problems = append(problems, fmt.Sprintf("%d: berth ns %s, lsns %s", ino, key(b), key(l)))
			}
		}
		for ino, b := range ours {
			_, inBefore := before[ino]
			_, inAfter := after[ino]
			// berth ns also lists namespaces only a bind mount keeps (no process), as
			// newer lsns releases do.
			if !inBefore && !inAfter && b.NProcs != 0 {
				problems = append(problems, fmt.Sprintf("%d (%s) listed by berth ns only", ino, key(b)))
			}
		}
		for _, ino := range mine {
			if _, ok := ours[ino]; !ok {
				problems = append(problems, fmt.Sprintf("test namespace %d not listed", ino))
			}
		}
		// The host's own namespaces change their process counts whenever anything on the
		// host starts or exits: a round where too few held still is churn, tried again.
		if len(problems) == 0 && stable < len(mine)+8 {
			problems = append(problems, fmt.Sprintf("only %d namespaces were stable across the round", stable))
		}
		if len(problems) == 0 {
			t.Logf("round %d: %d namespaces agree with lsns", round, stable)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("berth ns -J disagrees with lsns -J in every round; last round:\n%s", strings.Join(problems, "\n"))
}

func writeRecord(t *testing.T, root, id string, pid int, namespaces []map[string]string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(map[string]any{"id": id, "pid": pid, "initStartTime": start,
		"namespaces": namespaces, "runtime": "berth", "created": time.Now()})
	if err := os.MkdirAll(filepath.Join(root, id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, id, "state.json"), rec, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The CONTAINER column names the container for exactly the namespaces its record says it
// created, found through BERTH_RUNTIME_ROOT or --root; the host's are "host".
func TestNSCLIAttribution(t *testing.T) {
	requireRootAndTools(t, "unshare", "busybox")
	_, init := startUnshare(t, "--pid", "--mount-proc", "--uts", "--net")
	root := t.TempDir()
	// The view names berth's containers from the engine's store; it must not make one.
	engineRoot := filepath.Join(t.TempDir(), "engine")
	t.Setenv("BERTH_ROOT", engineRoot)
	defer func() {
		if _, err := os.Stat(engineRoot); !os.IsNotExist(err) {
			t.Errorf("berth ns made an engine store at %s (stat: %v)", engineRoot, err)
		}
	}()
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	writeRecord(t, root, id, init, []map[string]string{{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
		{"type": "network"}, {"type": "ipc", "path": "/proc/1/ns/ipc"}})
	mineTypes := map[uint64]string{}
	for _, typ := range []string{"pid", "mnt", "uts", "net"} {
		mineTypes[nsInode(t, init, typ)] = typ
	}
	for _, how := range [][]string{{"BERTH_RUNTIME_ROOT=" + root}, nil} {
		args := []string{"ns", "-J", "-o", "NS,TYPE,NPROCS,PID,CONTAINER,CID,RUNTIME"}
		if how == nil {
			args = append(args, "--root", root)
		}
		out, stderr, err := berth(t, how, args...)
		if err != nil {
			t.Fatalf("berth %v: %v: %s", args, err, stderr)
		}
		rows := flatten(t, out)
		got := map[uint64]string{}
		hosts := 0
		for ino, r := range rows {
			switch {
			case r.Container == nil:
			case *r.Container == "host":
				hosts++
				if r.CID != nil || r.Runtime != nil {
					t.Errorf("host row %d has cid/runtime: %+v", ino, r)
				}
			case *r.Container == "0123456789ab":
				got[ino] = r.Type
				if *r.CID != id || *r.Runtime != "berth" {
					t.Errorf("row %d: cid %v runtime %v", ino, *r.CID, *r.Runtime)
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(mineTypes) {
			t.Errorf("berth %v attributed %v, want exactly %v", args, got, mineTypes)
		}
		if hosts != 8 {
			t.Errorf("%d rows labelled host, want the 8 initial namespaces", hosts)
		}
	}

	// --container keeps the container's namespaces, the ones it shares with the host too.
	out, stderr, err := berth(t, nil, "ns", "--root", root, "--container", "0123", "-l", "-n", "-r", "-o", "TYPE,CONTAINER")
	if err != nil {
		t.Fatalf("berth ns --container: %v: %s", err, stderr)
	}
	want := "mnt 0123456789ab\nuts 0123456789ab\npid 0123456789ab\nnet 0123456789ab\n"
	var ours []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasSuffix(line, " 0123456789ab") {
			ours = append(ours, line)
		} else if !strings.HasSuffix(line, " host") {
			t.Errorf("--container row %q is neither the container's nor the host's", line)
		}
	}
	if len(ours) != 4 || !sameLines(strings.Join(ours, "\n")+"\n", want) {
		t.Errorf("--container rows %q, want %q in some order", ours, want)
	}

	// berth ns ID shows the isolation view.
	out, stderr, err = berth(t, nil, "ns", "--root", root, "0123456789ab")
	if err != nil {
		t.Fatalf("berth ns ID: %v: %s", err, stderr)
	}
	for _, want := range []string{"CONTAINER  0123456789ab", "pid     own", "net     own", "ipc     shared with host",
		"user    shared with host", "SECCOMP       disabled", "NO_NEW_PRIVS  no"} {
		if !strings.Contains(out, want) {
			t.Errorf("isolation view lacks %q:\n%s", want, out)
		}
	}
}

func sameLines(a, b string) bool {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(la) != len(lb) {
		return false
	}
	seen := map[string]int{}
	for _, l := range la {
		seen[l]++
	}
	for _, l := range lb {
		seen[l]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestNSCLIFlags(t *testing.T) {
	requireRootAndTools(t)
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"ns", "-t", "bogus"}, "unknown namespace type: bogus"},
		{[]string{"ns", "-J", "-r"}, "mutually exclusive arguments: --json --raw"},
		{[]string{"ns", "-o", "NS,BOGUS"}, "unknown column: BOGUS"},
		{[]string{"ns", "-T", "sideways"}, ""}, // "sideways" is then a container name
		{[]string{"ns", "--tree=sideways"}, "unknown tree type: sideways"},
		{[]string{"ns", "--root", t.TempDir(), "nosuch"}, `no running container "nosuch"`},
		{[]string{"ns", "--state-dir", "runc"}, `--state-dir "runc": want RUNTIME=DIR`},
	} {
		_, stderr, err := berth(t, nil, c.args...)
		if err == nil {
			t.Errorf("berth %v succeeded", c.args)
			continue
		}
		if c.err != "" && !strings.Contains(stderr, c.err) {
			t.Errorf("berth %v: stderr %q, want %q", c.args, stderr, c.err)
		}
	}
	// -T's relation can be attached, detached or given to --tree.
	var outs []string
	for _, args := range [][]string{{"-Tparent"}, {"-T", "parent"}, {"--tree=parent"}} {
		out, stderr, err := berth(t, nil, append([]string{"ns", "-t", "user", "-o", "NS,TYPE"}, args...)...)
		if err != nil {
			t.Fatalf("berth ns %v: %v: %s", args, err, stderr)
		}
		outs = append(outs, out)
	}
	if outs[0] != outs[1] || outs[1] != outs[2] || !strings.HasPrefix(outs[0], "NS ") {
		t.Errorf("tree outputs differ or are not trees:\n%s", strings.Join(outs, "\n--\n"))
	}
}
