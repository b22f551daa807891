package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestWriteCreatesAndReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	if err := Write(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two, longer"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two, longer" {
		t.Fatalf("after two writes: %q, %v", b, err)
	}
	if _, err := os.Lstat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("the replaced content is left at %s.tmp (lstat: %v)", p, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v (%v), want 0640", fi.Mode().Perm(), err)
	}
}

// A reader running alongside the writer sees one whole version or the other, never an
// empty or mixed file and never a missing one.
func TestWriteReaderSeesWholeFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	a, b := bytes.Repeat([]byte("a"), 3000), bytes.Repeat([]byte("b"), 5000)
	if err := Write(p, a, 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := a
			if i%2 == 0 {
				v = b
			}
			if err := Write(p, v, 0o600); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 3000; i++ {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
			t.Fatalf("read %d: a torn file of %d bytes", i, len(got))
		}
	}
	close(stop)
	wg.Wait()
}

func TestWriteErrorNamesPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing-dir", "state.json")
	err := Write(p, []byte("x"), 0o600)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(p+".tmp")) {
		t.Fatalf("write into a missing directory: %v, want an error naming %s.tmp", err, p)
	}
}
