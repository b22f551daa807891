package seccomp

import (
	"encoding/json"
	"math/rand"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FuzzCompile feeds arbitrary JSON profiles to Compile: it must return an
// error or a program that the BPF checker accepts and that agrees with the
// reference semantics.
func FuzzCompile(f *testing.F) {
	seeds := []string{
		`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`,
		`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["personality","clone"],"action":"SCMP_ACT_ERRNO","errnoRet":38,"args":[{"index":0,"value":8,"op":"SCMP_CMP_LE"},{"index":5,"value":4294967296,"valueTwo":1,"op":"SCMP_CMP_MASKED_EQ"}]}]}`,
		`{"defaultAction":"SCMP_ACT_KILL_PROCESS","flags":["SECCOMP_FILTER_FLAG_LOG"],"syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}],"listenerPath":"/run/x"}`,
		`{"defaultAction":"SCMP_ACT_TRACE","defaultErrnoRet":70000}`,
		`{"defaultAction":"SCMP_ACT_LOG","architectures":["SCMP_ARCH_PPC64"]}`,
		`{"defaultAction":"SCMP_ACT_TRAP","syscalls":[{"names":[""],"action":"SCMP_ACT_ALLOW"}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	b, _ := json.Marshal(DefaultProfile())
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p specs.LinuxSeccomp
		if err := json.Unmarshal(data, &p); err != nil {
			return
		}
		flt, err := Compile(&p)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if len(flt.Instructions()) == 0 {
			t.Fatal("empty program without error")
		}
		checkAgainstReference(t, &p, flt, rand.New(rand.NewSource(int64(len(data)))))
	})
}
