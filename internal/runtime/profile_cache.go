package runtime

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/atomicfile"
)

// Compiling a seccomp profile is the largest piece of CPU in a create that depends on
// nothing but the profile: Docker's default one takes 0.45-0.55 ms in a fresh process
// (0.34 ms warm; BenchmarkCompileDefault), and every container of an engine, or of a
// Kubernetes node, carries the same few profiles. The compiled program is kept in the
// state root, one file per profile and runtime binary, and read back in about 30 µs.
//
// The key is a SHA-256 over the profile's every field (seccompKey) and the identity of the
// running executable (device, inode, size and modification time of /proc/self/exe): a
// rebuilt or upgraded binary, whose compiler may differ, never reads another build's
// programs. The directory (Runtime.SeccompCache; the engine keeps it in its store) must be
// as private as the containers' state; an entry that does not parse is compiled again and
// replaced. berth-runtime's own commands leave it unset: a runtime's state root holds
// container records only.

// seccompCacheMax bounds the entries kept; beyond it the directory is emptied (each
// upgrade of the binary leaves the previous build's entries behind).
const seccompCacheMax = 64

var exeIdentity = sync.OnceValue(func() []byte {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return nil
	}
	b := make([]byte, 0, 40)
	for _, v := range []uint64{st.Dev, st.Ino, uint64(st.Size), uint64(st.Mtim.Sec), uint64(st.Mtim.Nsec)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
})

// compileSeccomp compiles cfg, through the cache in the state root when there is one.
func (r *Runtime) compileSeccomp(cfg *specs.LinuxSeccomp) (*seccompProgram, error) {
	if cfg == nil {
		return nil, nil
	}
	exe := exeIdentity()
	dir := r.SeccompCache
	if dir == "" || exe == nil {
		return compileSeccomp(cfg)
	}
	key := seccompKey(cfg, exe)
	path := filepath.Join(dir, hex.EncodeToString(key[:]))
	if b, err := os.ReadFile(path); err == nil {
		if p, ok := decodeSeccompEntry(b); ok {
			p.ListenerPath, p.ListenerMetadata = cfg.ListenerPath, cfg.ListenerMetadata
			return p, nil
		}
	}
	p, err := compileSeccomp(cfg)
	if err != nil {
		return nil, err
	}
	// A failure to keep it costs the next create a compile, nothing else.
	if err := os.MkdirAll(dir, 0o700); err == nil {
		if ents, err := os.ReadDir(dir); err == nil && len(ents) >= seccompCacheMax {
			for _, e := range ents {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
		atomicfile.Write(path, encodeSeccompEntry(p), 0o600)
	}
	return p, nil
}

// An entry: "bsc1", flags (uint64), notify (one byte), then the program.
const seccompEntryMagic = "bsc1"

func encodeSeccompEntry(p *seccompProgram) []byte {
	b := make([]byte, 0, len(seccompEntryMagic)+9+len(p.Program))
	b = append(b, seccompEntryMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.Flags))
	notify := byte(0)
	if p.Notify {
		notify = 1
	}
	b = append(b, notify)
	return append(b, p.Program...)
}

func decodeSeccompEntry(b []byte) (*seccompProgram, bool) {
	const head = len(seccompEntryMagic) + 9
	if len(b) < head+8 || string(b[:len(seccompEntryMagic)]) != seccompEntryMagic || (len(b)-head)%8 != 0 || b[head-1] > 1 {
		return nil, false
	}
	return &seccompProgram{
		Flags:   uint(binary.LittleEndian.Uint64(b[len(seccompEntryMagic):])),
		Notify:  b[head-1] == 1,
		Program: append([]byte(nil), b[head:]...),
	}, true
}

// seccompKey hashes every field of cfg that the compiled program depends on (all but the
// listener's path and metadata, which travel beside the program), with exe. Strings are
// length-prefixed and lists counted, so no two profiles share an encoding.
// TestSeccompKeyCoversFields fails when runtime-spec grows a field this does not cover.
func seccompKey(cfg *specs.LinuxSeccomp, exe []byte) [32]byte {
	h := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	num := func(v uint64) { buf = binary.LittleEndian.AppendUint64(buf, v) }
	opt := func(p *uint) {
		if p == nil {
			buf = append(buf, 0)
			return
		}
		buf = append(buf, 1)
		num(uint64(*p))
	}
	str(string(exe))
	str(string(cfg.DefaultAction))
	opt(cfg.DefaultErrnoRet)
	num(uint64(len(cfg.Architectures)))
	for _, a := range cfg.Architectures {
		str(string(a))
	}
	num(uint64(len(cfg.Flags)))
	for _, f := range cfg.Flags {
		str(string(f))
	}
	num(uint64(len(cfg.Syscalls)))
	for _, sc := range cfg.Syscalls {
		num(uint64(len(sc.Names)))
		for _, n := range sc.Names {
			str(n)
		}
		str(string(sc.Action))
		opt(sc.ErrnoRet)
		num(uint64(len(sc.Args)))
		for _, a := range sc.Args {
			num(uint64(a.Index))
			num(a.Value)
			num(a.ValueTwo)
			str(string(a.Op))
		}
		if len(buf) > 4096 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// seccompKeyFields lists, per type, the fields seccompKey reads or deliberately leaves out.
var seccompKeyFields = map[string][]string{
	"LinuxSeccomp":    {"DefaultAction", "DefaultErrnoRet", "Architectures", "Flags", "ListenerPath", "ListenerMetadata", "Syscalls"},
	"LinuxSyscall":    {"Names", "Action", "ErrnoRet", "Args"},
	"LinuxSeccompArg": {"Index", "Value", "ValueTwo", "Op"},
}
