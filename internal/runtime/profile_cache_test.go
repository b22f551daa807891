package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-containers/berth/internal/security/seccomp"
)

// A field added to runtime-spec's seccomp types must be added to seccompKey (or listed as
// not affecting the program), or two different profiles could share a cached program.
func TestSeccompKeyCoversFields(t *testing.T) {
	for _, v := range []any{specs.LinuxSeccomp{}, specs.LinuxSyscall{}, specs.LinuxSeccompArg{}} {
		typ := reflect.TypeOf(v)
		var have []string
		for i := 0; i < typ.NumField(); i++ {
			have = append(have, typ.Field(i).Name)
		}
		if want := seccompKeyFields[typ.Name()]; !reflect.DeepEqual(have, want) {
			t.Errorf("%s has fields %v; seccompKey covers %v", typ.Name(), have, want)
		}
	}
}

func TestSeccompKeyTellsProfilesApart(t *testing.T) {
	exe := []byte("exe")
	base := seccomp.DefaultProfile()
	k := seccompKey(base, exe)
	errno := uint(38)
	variants := map[string]func(p *specs.LinuxSeccomp){
		"default action": func(p *specs.LinuxSeccomp) { p.DefaultAction = specs.ActKillProcess },
		"default errno":  func(p *specs.LinuxSeccomp) { p.DefaultErrnoRet = &errno },
		"architectures":  func(p *specs.LinuxSeccomp) { p.Architectures = p.Architectures[:1] },
		"flags":          func(p *specs.LinuxSeccomp) { p.Flags = append(p.Flags, specs.LinuxSeccompFlagLog) },
		"a name moved to the next rule": func(p *specs.LinuxSeccomp) {
			p.Syscalls[1].Names = append([]string{p.Syscalls[0].Names[len(p.Syscalls[0].Names)-1]}, p.Syscalls[1].Names...)
			p.Syscalls[0].Names = p.Syscalls[0].Names[:len(p.Syscalls[0].Names)-1]
		},
		"an action": func(p *specs.LinuxSeccomp) { p.Syscalls[0].Action = specs.ActLog },
		"an errno":  func(p *specs.LinuxSeccomp) { p.Syscalls[0].ErrnoRet = &errno },
		"an argument": func(p *specs.LinuxSeccomp) {
			p.Syscalls[0].Args = append(p.Syscalls[0].Args, specs.LinuxSeccompArg{Index: 1, Value: 2, Op: specs.OpEqualTo})
		},
	}
	for name, change := range variants {
		p := seccomp.DefaultProfile()
		change(p)
		if seccompKey(p, exe) == k {
			t.Errorf("%s: same key as the default profile", name)
		}
	}
	if seccompKey(base, []byte("another build")) == k {
		t.Error("another executable: same key")
	}
	if seccompKey(seccomp.DefaultProfile(), exe) != k {
		t.Error("the same profile twice: different keys")
	}
}

// The cache gives what a compile gives, and a damaged entry is compiled again.
func TestSeccompCache(t *testing.T) {
	r := &Runtime{Root: t.TempDir(), SeccompCache: filepath.Join(t.TempDir(), "cache", "seccomp")}
	p := seccomp.DefaultProfile()
	p.ListenerPath = "/run/listener.sock"
	want, err := compileSeccomp(p)
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.compileSeccomp(p)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(r.SeccompCache)
	if err != nil || len(ents) != 1 {
		t.Fatalf("cache directory after one compile: %v entries, %v", len(ents), err)
	}
	second, err := r.compileSeccomp(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*seccompProgram{"compiled": first, "from the cache": second} {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: flags %d notify %v listener %q, %d bytes; want flags %d notify %v listener %q, %d bytes",
				name, got.Flags, got.Notify, got.ListenerPath, len(got.Program), want.Flags, want.Notify, want.ListenerPath, len(want.Program))
		}
	}
	entry := filepath.Join(r.SeccompCache, ents[0].Name())
	if err := os.WriteFile(entry, []byte("bsc1 damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := r.compileSeccomp(p)
	if err != nil || !bytes.Equal(third.Program, want.Program) {
		t.Fatalf("after damage: %v, program equal: %v", err, err == nil && bytes.Equal(third.Program, want.Program))
	}
	if b, _ := os.ReadFile(entry); !bytes.Equal(b, encodeSeccompEntry(want)) {
		t.Error("the damaged entry was not replaced")
	}
}
