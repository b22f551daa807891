package nsview

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// A Record-described container made with unshare is attributed for exactly the types it
// created, its other processes count, and the host keeps its own namespaces.
func TestAttributionFromRecord(t *testing.T) {
	requireRoot(t)
	u := startUnshare(t, "--user", "--map-root-user", "--pid", "--mount-proc", "--uts", "--ipc", "--net")
	root := t.TempDir()
	created := []Type{User, Mnt, Pid, UTS, IPC, Net}
	var recNS []recordNS
	for _, typ := range created {
		recNS = append(recNS, recordNS{Type: typ.OCIName()})
	}
	// A joined namespace has a path: the container must not be named for it.
	recNS = append(recNS, recordNS{Type: "cgroup", Path: "/proc/1/ns/cgroup"})
	writeRecord(t, root, "nsview-rec", u.Init, startTime(t, u.Init), recNS)

	s, err := Scan(Options{Need: NeedProcess, StateDirs: []StateDir{{Runtime: "berth", Dir: root, Format: FormatBerth}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) > 0 {
		t.Fatalf("warnings: %v", s.Warnings)
	}
	want := make(map[uint64]Type)
	for _, typ := range created {
		ino := inodeOf(t, u.Init, typ)
		if ino == s.Host[typ] {
			t.Fatalf("unshare did not make a new %s namespace (inode %d is the host's)", typ, ino)
		}
		want[ino] = typ
	}
	got := owned(s, "nsview-rec")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attributed to nsview-rec: %v, want exactly %v", got, want)
	}
	for ino := range want {
		ns := s.Lookup(ino)
		if ns.Container.Runtime != "berth" || ns.Container.String() != "nsview-rec" {
			t.Errorf("%s:[%d] owner = %+v, label %q", ns.Type, ino, ns.Container, ns.Container.String())
		}
		// unshare itself sits in every new namespace but the pid one, ahead of the init.
		wantProcs, wantPid := 2, u.Outer
		if ns.Type == Pid {
			wantProcs, wantPid = 1, u.Init
		}
		if ns.NProcs != wantProcs || ns.Pid != wantPid {
			t.Errorf("%s:[%d]: nprocs %d pid %d, want %d and %d", ns.Type, ino, ns.NProcs, ns.Pid, wantProcs, wantPid)
		}
	}
	for typ, ino := range s.Host {
		if ino == 0 {
			continue
		}
		if ns := s.Lookup(ino); ns == nil || ns.Container == nil || !ns.Container.Host {
			t.Errorf("host %s namespace %d not labelled host: %+v", Type(typ), ino, ns)
		}
	}
	if len(s.Containers) != 1 || s.Containers[0].Pid != u.Init {
		t.Fatalf("containers: %+v", s.Containers)
	}
}

// A record whose pid now belongs to another process (start time differs) names nothing.
func TestAttributionRejectsReusedPid(t *testing.T) {
	requireRoot(t)
	u := startUnshare(t, "--uts")
	root := t.TempDir()
	writeRecord(t, root, "stale", u.Init, startTime(t, u.Init)+1, []recordNS{{Type: "uts"}})
	s, err := Scan(Options{StateDirs: []StateDir{{Runtime: "berth", Dir: root, Format: FormatBerth}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := owned(s, "stale"); len(got) != 0 || len(s.Containers) != 0 {
		t.Fatalf("stale record attributed %v (containers %+v)", got, s.Containers)
	}
	if ns := s.Lookup(inodeOf(t, u.Init, UTS)); ns == nil || ns.Container != nil {
		t.Fatalf("uts namespace of the unshare: %+v, want listed without owner", ns)
	}
}

// A broken record is reported, not fatal, and a missing root is no error.
func TestBrokenRecordIsAWarning(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bad"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bad", "state.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Scan(Options{StateDirs: []StateDir{
		{Runtime: "berth", Dir: root, Format: FormatBerth},
		{Runtime: "runc", Dir: filepath.Join(root, "missing"), Format: FormatRunc},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], filepath.Join(root, "bad", "state.json")) {
		t.Fatalf("warnings %q, want one naming the broken state.json", s.Warnings)
	}
}

// crun's layout (status + config.json) is read too.
func TestAttributionCrunLayout(t *testing.T) {
	requireRoot(t)
	u := startUnshare(t, "--uts", "--ipc")
	root := t.TempDir()
	dir := filepath.Join(root, "crunbox")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	status := fmt.Sprintf(`{"pid": %d, "process-start-time": %d, "cgroup-path": "/crunbox", "bundle": "/b"}`,
		u.Init, startTime(t, u.Init))
	config := `{"ociVersion": "1.0.2", "linux": {"namespaces": [{"type": "uts"}, {"type": "network", "path": "/proc/1/ns/net"}]}}`
	for name, body := range map[string]string{"status": status, "config.json": config} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Scan(Options{StateDirs: []StateDir{{Runtime: "crun", Dir: root, Format: FormatCrun}}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]Type{inodeOf(t, u.Init, UTS): UTS}
	if got := owned(s, "crunbox"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attributed %v, want %v (ipc was not in the config, net was joined)", got, want)
	}
	if ns := s.Lookup(inodeOf(t, u.Init, UTS)); ns.Container.String() != "crun:crunbox" {
		t.Fatalf("label %q, want crun:crunbox", ns.Container.String())
	}
}

// A real runc container is attributed as runtime runc for the namespaces in its config,
// and its isolation view reads what runc set up.
func TestAttributionRunc(t *testing.T) {
	requireRoot(t)
	runc := requireTool(t, "runc")
	bb := requireTool(t, "busybox")
	bundle, root := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	var spec map[string]any
	cfgPath := filepath.Join(bundle, "config.json")
	if b, err = os.ReadFile(cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["args"] = []string{"/bin/busybox", "sleep", "1000"}
	proc["terminal"] = false
	if b, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("nsview-runc-%d", os.Getpid())
	run := exec.Command(runc, "--root", root, "run", "-d", "--bundle", bundle, id)
	// The container inherits runc's stdio: a file, not a pipe, or Run would wait for it.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "runc.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	run.Stderr = stderr
	t.Cleanup(func() {
		if out, err := exec.Command(runc, "--root", root, "delete", "-f", id).CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "does not exist") {
			t.Errorf("runc delete -f %s: %v: %s", id, err, out)
		}
	})
	if err := run.Run(); err != nil {
		msg, _ := os.ReadFile(stderr.Name())
		t.Fatalf("runc run -d: %v: %s", err, msg)
	}
	var st struct {
		Pid int `json:"init_process_pid"`
	}
	if b, err = os.ReadFile(filepath.Join(root, id, "state.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Pid == 0 {
		t.Fatalf("runc state.json: %v %s", err, b)
	}

	dirs := []StateDir{{Runtime: "runc", Dir: root, Format: FormatRunc}}
	s, err := Scan(Options{StateDirs: dirs})
	if err != nil {
		t.Fatal(err)
	}
	// runc spec's default config creates pid, network, ipc, uts and mount namespaces.
	want := make(map[uint64]Type)
	for _, typ := range []Type{Pid, Net, IPC, UTS, Mnt} {
		want[inodeOf(t, st.Pid, typ)] = typ
	}
	if got := owned(s, id); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attributed to %s: %v, want %v", id, got, want)
	}
	for ino := range want {
		if ns := s.Lookup(ino); ns.Container.Runtime != "runc" || ns.Container.String() != "runc:"+id {
			t.Errorf("namespace %d owner %+v", ino, ns.Container)
		}
	}

	iso, err := Inspect(id, dirs)
	if err != nil {
		t.Fatal(err)
	}
	isolation := map[string]string{}
	for _, n := range iso.Namespaces {
		isolation[n.Type] = n.Isolation
	}
	wantIso := map[string]string{"mnt": "own", "uts": "own", "ipc": "own", "pid": "own", "net": "own",
		"user": "shared with host", "cgroup": "shared with host", "time": "shared with host"}
	for typ, w := range wantIso {
		if isolation[typ] != w {
			t.Errorf("isolation of %s: %q, want %q (all: %v)", typ, isolation[typ], w, isolation)
		}
	}
	// runc's default spec keeps CAP_KILL, CAP_NET_BIND_SERVICE and CAP_AUDIT_WRITE and sets
	// noNewPrivileges.
	if got := strings.Join(iso.Caps["effective"], ","); got != "CAP_KILL,CAP_NET_BIND_SERVICE,CAP_AUDIT_WRITE" {
		t.Errorf("effective capabilities %s", got)
	}
	if !iso.NoNewPrivs || iso.Pid != st.Pid || iso.Runtime != "runc" {
		t.Errorf("isolation %+v", iso)
	}
	foundCgroup := false
	for _, c := range iso.Cgroups {
		if c.Controllers == "pids" {
			foundCgroup = strings.HasSuffix(c.Path, "/"+id) && len(c.Limits) == 1 && c.Limits[0].File == "pids.max"
		}
	}
	if !foundCgroup {
		t.Errorf("no pids cgroup ending in /%s with pids.max: %+v", id, iso.Cgroups)
	}
	var text bytes.Buffer
	if err := iso.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"runc:" + id, "shared with host", "NO_NEW_PRIVS  yes", "UID MAP       host ids"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("isolation text lacks %q:\n%s", want, text.String())
		}
	}
}

// Inspect of an unshare'd container with a user namespace reports the id map and which
// namespaces are its own.
func TestInspectUserNamespace(t *testing.T) {
	requireRoot(t)
	u := startUnshare(t, "--user", "--map-root-user", "--uts", "--pid", "--mount-proc")
	root := t.TempDir()
	writeRecord(t, root, "usr", u.Init, startTime(t, u.Init),
		[]recordNS{{Type: "user"}, {Type: "uts"}, {Type: "pid"}, {Type: "mount"}})
	iso, err := Inspect("us", []StateDir{{Runtime: "berth", Dir: root, Format: FormatBerth}})
	if err != nil {
		t.Fatal(err)
	}
	want := []IDMapping{{ContainerID: 0, HostID: 0, Size: 1}}
	if fmt.Sprint(iso.UIDMap) != fmt.Sprint(want) || fmt.Sprint(iso.GIDMap) != fmt.Sprint(want) {
		t.Errorf("uid map %v gid map %v, want %v (unshare --map-root-user as root)", iso.UIDMap, iso.GIDMap, want)
	}
	got := map[string]string{}
	for _, n := range iso.Namespaces {
		got[n.Type] = n.Isolation
	}
	for typ, w := range map[string]string{"user": "own", "uts": "own", "pid": "own", "mnt": "own",
		"net": "shared with host", "ipc": "shared with host"} {
		if got[typ] != w {
			t.Errorf("%s: %q, want %q", typ, got[typ], w)
		}
	}
	if iso.Seccomp != "disabled" || iso.NoNewPrivs {
		t.Errorf("seccomp %q no_new_privs %v, want disabled and false for a plain unshare", iso.Seccomp, iso.NoNewPrivs)
	}
	if _, err := Inspect("nope", []StateDir{{Runtime: "berth", Dir: root, Format: FormatBerth}}); err == nil ||
		!strings.Contains(err.Error(), `no running container "nope"`) {
		t.Errorf("Inspect of an unknown container: %v", err)
	}
}

type jsonNS struct {
	NS       uint64   `json:"ns"`
	Type     string   `json:"type"`
	NProcs   int      `json:"nprocs"`
	Pid      *int     `json:"pid"`
	Children []jsonNS `json:"children"`
}

func parseTree(t *testing.T, b []byte) []jsonNS {
	t.Helper()
	var doc struct {
		Namespaces []jsonNS `json:"namespaces"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse JSON: %v\n%s", err, b)
	}
	return doc.Namespaces
}

func findNode(list []jsonNS, ino uint64) *jsonNS {
	for i := range list {
		if list[i].NS == ino {
			return &list[i]
		}
		if n := findNode(list[i].Children, ino); n != nil {
			return n
		}
	}
	return nil
}

// The owner tree nests a user-namespaced process's namespaces under its user namespace,
// and that one under the host's.
func TestTreeNestsUserNamespace(t *testing.T) {
	requireRoot(t)
	u := startUnshare(t, "--user", "--map-root-user", "--uts")
	userIno, utsIno := inodeOf(t, u.Init, User), inodeOf(t, u.Init, UTS)
	for _, tree := range []Tree{TreeOwner, TreeParent} {
		s, err := Scan(Options{Need: NeedFor(DefaultColumns(false), tree), NoOwners: true})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := s.WriteList(&out, ListOptions{Columns: DefaultColumns(false), Tree: tree, JSON: true}); err != nil {
			t.Fatal(err)
		}
		roots := parseTree(t, out.Bytes())
		host := findNode(roots, s.Host[User])
		if host == nil {
			t.Fatalf("tree %d: host user namespace %d missing:\n%s", tree, s.Host[User], out.String())
		}
		child := findNode(host.Children, userIno)
		if child == nil || child.Type != "user" {
			t.Fatalf("tree %d: user namespace %d not under the host's %d:\n%s", tree, userIno, s.Host[User], out.String())
		}
		// Only the owner tree hangs other types under their user namespace.
		if inUTS := findNode(child.Children, utsIno) != nil; inUTS != (tree == TreeOwner) {
			t.Errorf("tree %d: uts namespace %d under the new user namespace: %v", tree, utsIno, inUTS)
		}
	}
	// In the table the same nesting shows as tree art in the NS column.
	s, err := Scan(Options{Need: NeedFor(DefaultColumns(false), TreeOwner), NoOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.WriteList(&out, ListOptions{Columns: []string{"NS", "TYPE"}, Tree: TreeOwner}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^[│ ]*[├└]─%d +user$`, userIno)).MatchString(out.String()) {
		t.Errorf("table lacks nested user namespace %d:\n%s", userIno, out.String())
	}
}

// Namespaces kept only by a bind mount are listed with no process, with their mount.
func TestPersistentNamespace(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s: %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := syscall.Mount("", dir, "", syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make %s private: %v", dir, err)
	}
	target := filepath.Join(dir, "net")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unshare", "--net="+target, "true").CombinedOutput(); err != nil {
		t.Fatalf("unshare --net=%s: %v: %s", target, err, out)
	}
	t.Cleanup(func() { syscall.Unmount(target, syscall.MNT_DETACH) })
	var st syscall.Stat_t
	if err := syscall.Stat(target, &st); err != nil {
		t.Fatal(err)
	}
	s, err := Scan(Options{Types: TypeSet(0).With(Net), Need: NeedNSFS | NeedProcess | NeedNetNSID})
	if err != nil {
		t.Fatal(err)
	}
	ns := s.Lookup(st.Ino)
	if ns == nil || ns.NProcs != 0 || ns.Pid != 0 || fmt.Sprint(ns.NSFS) != fmt.Sprint([]string{target}) {
		t.Fatalf("persistent namespace %d: %+v, want no process and NSFS %s", st.Ino, ns, target)
	}
	var out bytes.Buffer
	if err := s.WriteList(&out, ListOptions{Columns: []string{"NS", "NPROCS", "NSFS"}, Persistent: true, Raw: true, NoHeadings: true}); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d 0 %s\n", st.Ino, rawEncode(target)); !strings.Contains(out.String(), want) {
		t.Errorf("-P output %q lacks %q", out.String(), want)
	}
}

func TestScanTypesAndTask(t *testing.T) {
	requireRoot(t)
	u := startUnshare(t, "--uts")
	s, err := Scan(Options{Types: TypeSet(0).With(UTS), NoOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range s.Namespaces {
		if ns.Type != UTS {
			t.Fatalf("asked for uts only, got %s:[%d]", ns.Type, ns.Inode)
		}
	}
	var out bytes.Buffer
	if err := s.WriteList(&out, ListOptions{Columns: []string{"NS", "TYPE", "PID"}, Task: u.Init, Raw: true}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("NS TYPE PID\n%d uts %d\n", inodeOf(t, u.Init, UTS), u.Outer)
	if out.String() != want {
		t.Fatalf("-p %d -t uts: %q, want %q", u.Init, out.String(), want)
	}
}
