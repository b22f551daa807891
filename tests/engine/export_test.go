package engine

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// export writes the container's filesystem, its changes included, as a tar archive that
// `berth import` takes back.
func TestExport(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "exp", "--network", "none", "busybox", "sh", "-c", "echo changed > /marker; rm /bin/true; exec sleep 1000")
	eventually(t, 5*time.Second, "the marker", func() bool { return h.run("exec", "exp", "test", "-e", "/marker").code == 0 })
	out := filepath.Join(t.TempDir(), "exp.tar")
	h.ok("export", "-o", out, "exp")
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]string{}
	tr := tar.NewReader(f)
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the export is not a tar archive: %v", err)
		}
		name := strings.TrimPrefix(hd.Name, "./")
		if name == "marker" {
			b, _ := io.ReadAll(tr)
			files[name] = string(b)
		} else {
			files[name] = ""
		}
	}
	if files["marker"] != "changed\n" {
		t.Errorf("the container's change is missing from the export: %q", files["marker"])
	}
	if _, ok := files["bin/busybox"]; !ok {
		t.Error("the image's files are missing from the export")
	}
	if _, ok := files["bin/true"]; ok {
		t.Error("a file the container removed is in the export")
	}
	// The archive imports back into an image that runs.
	h.ok("import", out, "exported")
	if got := strings.TrimSpace(h.ok("run", "--rm", "--network", "none", "exported", "cat", "/marker")); got != "changed" {
		t.Errorf("a container of the re-imported image reads %q", got)
	}
	if r := h.run("export", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("export of a missing container: %s", r)
	}
}

// berth ns attributes an engine container's namespaces to it by name, the network
// namespace the engine made for it included.
func TestNamespaceViewNamesEngineContainers(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "-d", "--name", "viewed", "--network", "none", "busybox", "sleep", "1000")
	var doc struct {
		Namespaces []struct {
			Type      string `json:"type"`
			Container string `json:"container"`
		} `json:"namespaces"`
	}
	out := h.ok("ns", "-J", "-o", "NS,TYPE,CONTAINER")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("berth ns -J: %v", err)
	}
	owned := map[string]bool{}
	for _, n := range doc.Namespaces {
		if strings.HasPrefix(n.Container, "viewed (") {
			owned[n.Type] = true
		}
	}
	for _, typ := range []string{"mnt", "uts", "ipc", "pid", "net"} {
		if !owned[typ] {
			t.Errorf("berth ns does not attribute the %s namespace to the container by name (it attributes %v)", typ, owned)
		}
	}
}

// The container's user is found in the image's /etc/passwd without the rootfs mounted
// (through the snapshot's layers), and through the mounted tree when /etc/passwd is a
// symlink, which the layers are not read through.
func TestUserFromImagePasswd(t *testing.T) {
	h := newHarness(t)
	h.ok("run", "--name", "mk", "--network", "none", "busybox", "sh", "-c",
		"mkdir -p /usr/lib && cp /etc/passwd /usr/lib/passwd && echo linked:x:1234:1235::/:/bin/sh >> /usr/lib/passwd && "+
			"rm /etc/passwd && ln -s ../usr/lib/passwd /etc/passwd")
	out := filepath.Join(t.TempDir(), "mk.tar")
	h.ok("export", "-o", out, "mk")
	h.ok("import", out, "linkedpw")
	if got := strings.TrimSpace(h.ok("run", "--rm", "--network", "none", "-u", "linked", "linkedpw", "sh", "-c", "echo $(id -u):$(id -g)")); got != "1234:1235" {
		t.Errorf("-u linked with /etc/passwd a symlink: %q, want 1234:1235", got)
	}
	// The user a container of busybox adds to its own /etc/passwd is not the image's.
	if r := h.run("run", "--rm", "--network", "none", "-u", "linked", "busybox", "true"); r.code == 0 || !strings.Contains(r.stderr, "unable to find user linked") {
		t.Errorf("-u linked in an image without it: %s", r)
	}
	if got := strings.TrimSpace(h.ok("run", "--rm", "--network", "none", "-u", "svc", "busybox", "sh", "-c", "echo $(id -u):$(id -g)")); got != "1000:1000" {
		t.Errorf("-u svc: %q, want 1000:1000", got)
	}
	h.ok("rm", "mk")
}
