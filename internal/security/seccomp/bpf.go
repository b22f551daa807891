package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Classic BPF opcodes used by the compiler.
const (
	bpfLdAbsW = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJgt    = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	bpfJge    = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJa     = unix.BPF_JMP | unix.BPF_JA
	bpfRet    = unix.BPF_RET | unix.BPF_K
	bpfAnd    = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K

	// maxInsns is the kernel's BPF_MAXINSNS for classic programs.
	maxInsns = 4096
)

// label names a position in the program before it is known. Conditional
// jumps and ja refer to labels; assemble turns them into offsets.
type label int

const noLabel label = -1

type insn struct {
	code   uint16
	k      uint32
	jt, jf label // conditional jump targets
	to     label // ja target
}

// assembler collects instructions with symbolic forward jumps. Classic BPF
// conditional jumps only reach 255 instructions ahead; assemble inserts ja
// trampolines (32-bit offset) next to any jump whose target is further.
type assembler struct {
	prog   []insn
	labels []int // label -> instruction index, -1 while unbound
}

func (a *assembler) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

// bind places l at the next instruction emitted.
func (a *assembler) bind(l label) { a.labels[l] = len(a.prog) }

func (a *assembler) emit(i insn) { a.prog = append(a.prog, i) }

func (a *assembler) ld(off uint32) {
	a.emit(insn{code: bpfLdAbsW, k: off, jt: noLabel, jf: noLabel, to: noLabel})
}

func (a *assembler) and(k uint32) {
	a.emit(insn{code: bpfAnd, k: k, jt: noLabel, jf: noLabel, to: noLabel})
}

func (a *assembler) ret(k uint32) {
	a.emit(insn{code: bpfRet, k: k, jt: noLabel, jf: noLabel, to: noLabel})
}

// jump emits a conditional jump. A target of noLabel means "the next
// instruction", the common fall-through case.
func (a *assembler) jump(code uint16, k uint32, jt, jf label) {
	a.emit(insn{code: code, k: k, jt: jt, jf: jf, to: noLabel})
}

func isCond(code uint16) bool {
	return code&0x07 == unix.BPF_JMP && code&0xf0 != unix.BPF_JA
}

// offset returns how far target lies after instruction i, where noLabel is
// the next instruction.
func (a *assembler) offset(i int, target label) (int, error) {
	if target == noLabel {
		return 0, nil
	}
	pos := a.labels[target]
	if pos < 0 {
		return 0, fmt.Errorf("seccomp compiler: internal error: jump to unbound label %d", target)
	}
	off := pos - i - 1
	if off < 0 {
		return 0, fmt.Errorf("seccomp compiler: internal error: backward jump at instruction %d", i)
	}
	return off, nil
}

// assemble resolves labels into a kernel program. Each pass inserts
// trampolines after every conditional jump that cannot reach its targets;
// insertions only ever lengthen jumps, so passes repeat until none is needed.
// A fixed jump points at its own adjacent trampolines (offset 0 or 1) and is
// never touched again, so this terminates.
func (a *assembler) assemble() ([]unix.SockFilter, error) {
	for {
		type fix struct{ jt, jf bool }
		fixes := map[int]fix{}
		for i, in := range a.prog {
			if !isCond(in.code) {
				continue
			}
			ot, err := a.offset(i, in.jt)
			if err != nil {
				return nil, err
			}
			of, err := a.offset(i, in.jf)
			if err != nil {
				return nil, err
			}
			if ot > 255 || of > 255 {
				fixes[i] = fix{ot > 255, of > 255}
			}
		}
		if len(fixes) == 0 {
			break
		}
		// newPos[i] is where old instruction i lands; labels follow their
		// instruction, so a label bound right after a jump still names the
		// original fall-through instruction, not the trampoline.
		newPos := make([]int, len(a.prog)+1)
		n := 0
		for i := range a.prog {
			newPos[i] = n
			n++
			if f, ok := fixes[i]; ok {
				if f.jt {
					n++
				}
				if f.jf {
					n++
				}
			}
		}
		newPos[len(a.prog)] = n
		for l, p := range a.labels {
			if p >= 0 {
				a.labels[l] = newPos[p]
			}
		}
		out := make([]insn, 0, n)
		for i, in := range a.prog {
			f, ok := fixes[i]
			if !ok {
				out = append(out, in)
				continue
			}
			j := in
			var tramps []insn
			if f.jt {
				l := a.newLabel()
				a.labels[l] = newPos[i] + 1 + len(tramps)
				tramps = append(tramps, insn{code: bpfJa, to: in.jt, jt: noLabel, jf: noLabel})
				j.jt = l
			}
			if f.jf {
				l := a.newLabel()
				a.labels[l] = newPos[i] + 1 + len(tramps)
				tramps = append(tramps, insn{code: bpfJa, to: in.jf, jt: noLabel, jf: noLabel})
				j.jf = l
			} else if in.jf == noLabel {
				// The fall-through moved past the trampolines.
				l := a.newLabel()
				a.labels[l] = newPos[i+1]
				j.jf = l
			}
			if !f.jt && in.jt == noLabel {
				l := a.newLabel()
				a.labels[l] = newPos[i+1]
				j.jt = l
			}
			out = append(out, j)
			out = append(out, tramps...)
		}
		a.prog = out
	}
	if len(a.prog) > maxInsns {
		return nil, fmt.Errorf("seccomp profile compiles to %d BPF instructions, more than the kernel's limit of %d", len(a.prog), maxInsns)
	}
	res := make([]unix.SockFilter, len(a.prog))
	for i, in := range a.prog {
		res[i] = unix.SockFilter{Code: in.code, K: in.k}
		switch {
		case in.code == bpfJa:
			off, err := a.offset(i, in.to)
			if err != nil {
				return nil, err
			}
			res[i].K = uint32(off)
		case isCond(in.code):
			ot, _ := a.offset(i, in.jt)
			of, _ := a.offset(i, in.jf)
			res[i].Jt, res[i].Jf = uint8(ot), uint8(of)
		}
	}
	return res, nil
}
