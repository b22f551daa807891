package engine

import (
	"archive/tar"
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
