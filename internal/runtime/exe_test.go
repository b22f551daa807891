package runtime

import (
	"errors"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The sealed binary is the runtime's own, and cannot be opened for writing.
func TestSealedExeIsReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (open_tree clones a mount)")
	}
	r := &Runtime{}
	f, err := r.sealedExe()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/exe", &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino || a.Dev != b.Dev {
		t.Errorf("the sealed file is not the runtime's binary (%d:%d vs %d:%d)", a.Dev, a.Ino, b.Dev, b.Ino)
	}
	_, err = os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_WRONLY, 0)
	if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.ETXTBSY) {
		t.Errorf("opening the sealed binary for writing: %v, want EROFS", err)
	}
}

// BenchmarkSealedExe is what the CVE-2019-5736 defence costs per create and exec.
func BenchmarkSealedExe(b *testing.B) {
	r := &Runtime{}
	for i := 0; i < b.N; i++ {
		f, err := r.sealedExe()
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func BenchmarkMemfdCopy(b *testing.B) {
	for i := 0; i < b.N; i++ {
		f, err := memfdCopy("/proc/self/exe")
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
