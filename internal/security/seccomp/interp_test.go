package seccomp

import (
	"encoding/binary"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// seccompData mirrors struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [6]uint64
}

func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], d.nr)
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	binary.LittleEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// interpret runs a program the way the kernel's classic BPF does, checking
// everything the kernel's verifier would reject.
func interpret(prog []unix.SockFilter, d seccompData) (uint32, error) {
	r, _, err := interpretSteps(prog, d)
	return r, err
}

// interpretSteps also returns how many instructions ran.
func interpretSteps(prog []unix.SockFilter, d seccompData) (ret uint32, steps int, err error) {
	if len(prog) == 0 || len(prog) > maxInsns {
		return 0, 0, fmt.Errorf("program length %d", len(prog))
	}
	data := d.bytes()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		steps++
		in := prog[pc]
		switch in.Code {
		case bpfLdAbsW:
			if in.K > 60 || in.K%4 != 0 {
				return 0, steps, fmt.Errorf("pc %d: bad load offset %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case bpfAnd:
			acc &= in.K
		case bpfRet:
			return in.K, steps, nil
		case bpfJa:
			if uint64(pc)+1+uint64(in.K) >= uint64(len(prog)) {
				return 0, steps, fmt.Errorf("pc %d: ja out of range", pc)
			}
			pc += int(in.K)
		case bpfJeq, bpfJgt, bpfJge:
			var t bool
			switch in.Code {
			case bpfJeq:
				t = acc == in.K
			case bpfJgt:
				t = acc > in.K
			case bpfJge:
				t = acc >= in.K
			}
			off := int(in.Jf)
			if t {
				off = int(in.Jt)
			}
			if pc+1+int(in.Jt) >= len(prog) || pc+1+int(in.Jf) >= len(prog) {
				return 0, steps, fmt.Errorf("pc %d: jump out of range", pc)
			}
			pc += off
		default:
			return 0, steps, fmt.Errorf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
	}
	return 0, steps, fmt.Errorf("fell off the end of the program")
}

// reference evaluates a profile directly from the package's documented
// semantics, independent of the compiler, for comparison with the program.
func reference(cfg *specs.LinuxSeccomp, d seccompData) uint32 {
	def, _ := retValue(cfg.DefaultAction, cfg.DefaultErrnoRet, "")
	in := map[*arch]bool{nativeArch(): true}
	for _, n := range cfg.Architectures {
		in[archByName(n)] = true
	}
	var a *arch
	switch d.arch {
	case auditArchX86_64:
		if d.nr == 0xffffffff && (in[archX86_64] || in[archX32]) {
			return retAllow
		}
		a = archX86_64
		if d.nr&x32Bit != 0 {
			a = archX32
		}
	case auditArchI386:
		if d.nr == 0xffffffff && in[archX86] {
			return retAllow
		}
		a = archX86
	}
	if a == nil || !in[a] {
		return retBadArch
	}
	named, max := false, uint32(0)
	var uncond *uint32
	for _, sc := range cfg.Syscalls {
		ret, _ := retValue(sc.Action, sc.ErrnoRet, "")
		for _, name := range sc.Names {
			nr, ok := a.table.lookup(name)
			if !ok {
				continue
			}
			if low := nr &^ x32Bit; a != archX32 || low < 512 {
				if !named || low > max {
					max = low
				}
				named = true
			}
			if nr != d.nr {
				continue
			}
			if len(sc.Args) == 0 {
				if ret != def && uncond == nil {
					r := ret
					uncond = &r
				}
				continue
			}
			if argsMatch(sc.Args, d.args) {
				return ret
			}
		}
	}
	if uncond != nil {
		return *uncond
	}
	for _, sc := range cfg.Syscalls {
		for _, name := range sc.Names {
			if nr, ok := a.table.lookup(name); ok && nr == d.nr {
				return def
			}
		}
	}
	low := d.nr &^ x32Bit
	if a == archX86_64 || a == archX86 {
		low = d.nr
	}
	switch cfg.DefaultAction {
	case specs.ActKill, specs.ActKillThread, specs.ActKillProcess, specs.ActTrap, specs.ActErrno:
		if named && low > max && (a != archX32 || low < 512) {
			return retENOSYS
		}
	}
	return def
}

func argsMatch(args []specs.LinuxSeccompArg, v [6]uint64) bool {
	for _, c := range args {
		x := v[c.Index]
		var ok bool
		switch c.Op {
		case specs.OpEqualTo:
			ok = x == c.Value
		case specs.OpNotEqual:
			ok = x != c.Value
		case specs.OpLessThan:
			ok = x < c.Value
		case specs.OpLessEqual:
			ok = x <= c.Value
		case specs.OpGreaterThan:
			ok = x > c.Value
		case specs.OpGreaterEqual:
			ok = x >= c.Value
		case specs.OpMaskedEqual:
			ok = x&c.Value == c.ValueTwo
		}
		if !ok {
			return false
		}
	}
	return true
}
