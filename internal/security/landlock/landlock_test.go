package landlock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	envConfig = "BERTH_LANDLOCK_CHILD"
	envDir    = "BERTH_LANDLOCK_DIR"
	envPorts  = "BERTH_LANDLOCK_PORTS"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(envConfig); v != "" {
		os.Exit(child(v))
	}
	os.Exit(m.Run())
}

// child applies the config on its locked thread, then reports what the
// thread (and another one) may still do, as errno numbers.
func child(cfgJSON string) int {
	runtime.LockOSThread()
	dir := os.Getenv(envDir)
	cfg, err := Parse(cfgJSON)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	res := map[string]int{}
	abi, err := cfg.Apply()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	res["abi"] = abi
	write := func(p string) int {
		return errno(os.WriteFile(p, []byte("x"), 0o644))
	}
	res["writeRW"] = write(filepath.Join(dir, "rw", "f"))
	res["writeRO"] = write(filepath.Join(dir, "ro", "f"))
	res["writeOutside"] = write(filepath.Join(dir, "f"))
	_, err = os.ReadFile(filepath.Join(dir, "ro", "existing"))
	res["readRO"] = errno(err)
	ch := make(chan int)
	go func() {
		runtime.LockOSThread() // a thread Apply did not restrict
		ch <- write(filepath.Join(dir, "other-thread"))
	}()
	res["writeOtherThread"] = <-ch
	var ports []int
	json.Unmarshal([]byte(os.Getenv(envPorts)), &ports)
	if len(ports) == 3 {
		res["bind0"] = bindTCP(ports[0])
		res["bind1"] = bindTCP(ports[1])
		res["connect"] = connectTCP(ports[2])
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return 0
}

func errno(err error) int {
	if err == nil {
		return 0
	}
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	if e, ok := err.(syscall.Errno); ok {
		return int(e)
	}
	return -1
}

// bindTCP and connectTCP use raw socket calls on the locked thread.
func bindTCP(port int) int {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	defer unix.Close(s)
	return errno(unix.Bind(s, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}))
}

func connectTCP(port int) int {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	defer unix.Close(s)
	return errno(unix.Connect(s, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}))
}

func needLandlock(t *testing.T) int {
	t.Helper()
	abi, err := ABIVersion()
	if err != nil {
		t.Skipf("host lacks Landlock: %v", err)
	}
	return abi
}

func runChild(t *testing.T, cfg string, dir string, ports []int) map[string]int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	pj, _ := json.Marshal(ports)
	cmd.Env = append(os.Environ(), envConfig+"="+cfg, envDir+"="+dir, envPorts+"="+string(pj))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, errb.String())
	}
	res := map[string]int{}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("child output %q: %v", out.String(), err)
	}
	return res
}

func TestApplyFilesystem(t *testing.T) {
	abi := needLandlock(t)
	dir := t.TempDir()
	for _, d := range []string{"rw", "ro"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ro", "existing"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	// "/" read-only keeps the Go runtime and libc readable; the test dir's
	// rw subdirectory is the only writable place.
	cfg := fmt.Sprintf(`{"readOnly":["/"],"readWrite":[%q]}`, filepath.Join(dir, "rw"))
	res := runChild(t, cfg, dir, nil)
	want := map[string]int{
		"abi": abi, "writeRW": 0, "readRO": 0,
		"writeRO": int(unix.EACCES), "writeOutside": int(unix.EACCES),
		"writeOtherThread": 0, // only the calling thread is restricted
	}
	for k, v := range want {
		if res[k] != v {
			t.Errorf("%s: got %d (%v), want %d (%v)", k, res[k], unix.Errno(res[k]), v, unix.Errno(v))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "rw", "f")); err != nil {
		t.Errorf("file written inside the rw path is missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ro", "f")); err == nil {
		t.Errorf("file appeared in the read-only path")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

func TestApplyNetwork(t *testing.T) {
	if abi := needLandlock(t); abi < 4 {
		t.Skipf("Landlock ABI %d has no TCP port rules (needs 4)", abi)
	}
	// A listener the child may not connect to.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	lp := l.Addr().(*net.TCPAddr).Port
	allowed, denied := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`{"bindTCP":[%d],"connectTCP":[]}`, allowed)
	res := runChild(t, cfg, t.TempDir(), []int{allowed, denied, lp})
	if res["bind0"] != 0 || res["bind1"] != int(unix.EACCES) {
		t.Errorf("bind to allowed port: %v, to unlisted port: %v (want success, EACCES)", unix.Errno(res["bind0"]), unix.Errno(res["bind1"]))
	}
	// connect goes to a live listener: it would succeed without the ruleset.
	if res["connect"] != int(unix.EACCES) {
		t.Errorf("connect with connectTCP []: %v, want EACCES", unix.Errno(res["connect"]))
	}
	// The filesystem is not restricted by a network-only policy.
	if res["writeOutside"] != 0 {
		t.Errorf("network-only policy blocked a file write: %v", unix.Errno(res["writeOutside"]))
	}
}

func TestParse(t *testing.T) {
	c, err := FromAnnotations(map[string]string{Annotation: `{"readOnly":["/usr"],"readWrite":["/tmp"],"bindTCP":[80],"connectTCP":[],"minABI":1}`})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ReadOnly) != 1 || c.BindTCP[0] != 80 || c.ConnectTCP == nil || len(c.ConnectTCP) != 0 || c.MinABI != 1 {
		t.Fatalf("parsed %+v", c)
	}
	if c, err := FromAnnotations(map[string]string{"other": "x"}); c != nil || err != nil {
		t.Fatalf("no annotation: %v %v", c, err)
	}
	for _, bad := range []struct{ in, want string }{
		{`{"readOnlyPaths":["/usr"]}`, `unknown field "readOnlyPaths"`},
		{`{"readOnly":["usr"]}`, `readOnly path "usr" is not absolute`},
		{`{"bindTCP":[70000]}`, "cannot unmarshal number 70000"},
		{`{"readOnly":"/usr"}`, "cannot unmarshal string"},
		{`{}`, "nothing to restrict"},
		{`{"readOnly":["/"]} {}`, "trailing data"},
		{`{"readOnly":["/"],"minABI":-1}`, "minABI -1 is negative"},
		{`not json`, "invalid character"},
	} {
		_, err := Parse(bad.in)
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), Annotation) {
			t.Errorf("Parse(%s): %v, want error containing %q", bad.in, err, bad.want)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	abi := needLandlock(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Both fail before restrict_self, so this test's thread stays unrestricted.
	c := &Config{ReadOnly: []string{"/"}, MinABI: abi + 1}
	if _, err := c.Apply(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("needs ABI %d", abi+1)) {
		t.Errorf("minABI above the kernel's: %v", err)
	}
	c = &Config{ReadOnly: []string{"/nonexistent/berth-landlock"}}
	if _, err := c.Apply(); err == nil || !strings.Contains(err.Error(), "opening rule path /nonexistent/berth-landlock") {
		t.Errorf("missing path: %v", err)
	}
}

func TestFsRightsByABI(t *testing.T) {
	if fsRights(1) != 0x1fff || fsRights(2) != 0x3fff || fsRights(3) != 0x7fff || fsRights(4) != 0x7fff || fsRights(5) != 0xffff {
		t.Fatalf("fsRights: %#x %#x %#x %#x %#x", fsRights(1), fsRights(2), fsRights(3), fsRights(4), fsRights(5))
	}
}
