// Package seccomp compiles OCI seccomp profiles (runtime-spec LinuxSeccomp)
// into classic BPF and installs them on the calling thread. It does not use
// libseccomp or cgo.
//
// # Semantics
//
// The filter first checks seccomp_data.arch. The native architecture is
// always covered, plus every architecture the profile lists (SCMP_ARCH_X86_64,
// SCMP_ARCH_X86, SCMP_ARCH_X32); any other architecture, including x32
// numbers (bit 0x40000000 under AUDIT_ARCH_X86_64) when SCMP_ARCH_X32 is not
// listed, kills the process: a profile written for one ABI says nothing about
// another, and switching ABI is the classic way around a filter.
//
// For each syscall number, rules with argument conditions are tried first, in
// profile order, and the first whose conditions all hold (AND) decides; then
// the syscall's unconditional rule if it has one; else the default action.
// Several entries naming one syscall therefore OR together. Two unconditional
// rules with different actions for the same syscall are an error, except that
// a rule whose action equals the default action is dropped first, as
// libseccomp-based runtimes do. Argument values are 64-bit and compared
// unsigned on both 32-bit halves; SCMP_CMP_MASKED_EQ tests
// (arg & value) == valueTwo.
//
// Names unknown on an architecture are skipped for it; names unknown on all of
// the filter's architectures are reported by Filter.UnknownSyscalls.
//
// # Syscalls newer than the profile
//
// When the default action denies (SCMP_ACT_ERRNO, SCMP_ACT_KILL*,
// SCMP_ACT_TRAP), a syscall number greater than the highest number the
// profile names on that architecture returns ENOSYS instead of the default
// action. A profile cannot have meant to forbid a syscall that did not exist
// when it was written, and ENOSYS is what makes libc fall back to the older
// syscall (clone3→clone, fchmodat2→fchmodat, statx→fstatat), where EPERM
// would be a hard failure. For x32 the rule applies to the shared numbers
// below 512; its compat entries at 512 and up are old and get the default.
// With an allowing default (ALLOW, LOG) or TRACE there is nothing to fix.
//
// Syscall number -1 is always allowed: a tracer sets it to skip a syscall,
// the kernel then runs nothing, and any other verdict would overwrite the
// return value the tracer chose.
//
// # Program shape
//
// Each architecture's number space is cut into intervals of equal outcome
// (runs of adjacent syscalls with the same unconditional action merge), and a
// balanced tree of JGE tests picks the interval, so a syscall costs about
// log2(intervals) comparisons instead of a linear scan of the allow list.
// Jumps further than 255 instructions get ja trampolines.
package seccomp

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Filter is a compiled profile, ready for Install.
type Filter struct {
	prog    []unix.SockFilter
	flags   uint
	notify  bool
	unknown []string
}

// Instructions returns the BPF program. Callers must not modify it.
func (f *Filter) Instructions() []unix.SockFilter { return f.prog }

// Flags returns the seccomp(2) SECCOMP_FILTER_FLAG_* bits Install passes.
func (f *Filter) Flags() uint { return f.flags }

// Notify reports whether a rule uses SCMP_ACT_NOTIFY, so Install returns a
// listener fd.
func (f *Filter) Notify() bool { return f.notify }

// UnknownSyscalls lists profile names unknown on every architecture of the
// filter, sorted, for the runtime to warn about.
func (f *Filter) UnknownSyscalls() []string { return f.unknown }

const (
	retKillThread  = unix.SECCOMP_RET_KILL_THREAD
	retKillProcess = unix.SECCOMP_RET_KILL_PROCESS
	retTrap        = unix.SECCOMP_RET_TRAP
	retErrno       = unix.SECCOMP_RET_ERRNO
	retTrace       = unix.SECCOMP_RET_TRACE
	retAllow       = unix.SECCOMP_RET_ALLOW
	retLog         = unix.SECCOMP_RET_LOG
	retNotify      = unix.SECCOMP_RET_USER_NOTIF

	retBadArch = retKillProcess
	retENOSYS  = retErrno | uint32(unix.ENOSYS)

	maxErrno = 4095 // the kernel clamps SECCOMP_RET_ERRNO data to MAX_ERRNO
)

var actions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
}

var operators = []specs.LinuxSeccompOperator{
	specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
	specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
}

var flagBits = []struct {
	name specs.LinuxSeccompFlag
	bit  uint
}{
	{"SECCOMP_FILTER_FLAG_TSYNC", unix.SECCOMP_FILTER_FLAG_TSYNC},
	{specs.LinuxSeccompFlagLog, unix.SECCOMP_FILTER_FLAG_LOG},
	{specs.LinuxSeccompFlagSpecAllow, unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW},
	{specs.LinuxSeccompFlagWaitKillableRecv, unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV},
}

// SupportedActions lists the SCMP_ACT_* names Compile accepts.
func SupportedActions() []string { return toStrings(actions) }

// SupportedOperators lists the SCMP_CMP_* names Compile accepts.
func SupportedOperators() []string { return toStrings(operators) }

// SupportedArchitectures lists the SCMP_ARCH_* names Compile accepts.
func SupportedArchitectures() []string {
	s := make([]string, len(archs))
	for i, a := range archs {
		s[i] = string(a.name)
	}
	return s
}

// SupportedFlags lists the SECCOMP_FILTER_FLAG_* names Compile accepts.
func SupportedFlags() []string {
	s := make([]string, len(flagBits))
	for i, f := range flagBits {
		s[i] = string(f.name)
	}
	return s
}

func toStrings[T ~string](v []T) []string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = string(x)
	}
	return s
}

// retValue turns an OCI action and optional errnoRet into a SECCOMP_RET_*
// value. what names the profile field for errors.
func retValue(act specs.LinuxSeccompAction, errnoRet *uint, what string) (uint32, error) {
	data := uint(unix.EPERM)
	if errnoRet != nil {
		data = *errnoRet
		if act != specs.ActErrno && act != specs.ActTrace {
			return 0, fmt.Errorf("%s: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not %q", what, act)
		}
	}
	switch act {
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActErrno:
		if data > maxErrno {
			return 0, fmt.Errorf("%s: errnoRet %d is out of range (0-%d)", what, data, maxErrno)
		}
		return retErrno | uint32(data), nil
	case specs.ActTrace:
		if data > 0xffff {
			return 0, fmt.Errorf("%s: errnoRet %d is out of range for SCMP_ACT_TRACE (0-65535)", what, data)
		}
		return retTrace | uint32(data), nil
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActNotify:
		return retNotify, nil
	case "":
		return 0, fmt.Errorf("%s: action is missing", what)
	}
	return 0, fmt.Errorf("%s: unknown action %q (supported: %s)", what, act, strings.Join(SupportedActions(), ", "))
}

type cond struct {
	index     uint
	op        specs.LinuxSeccompOperator
	val, val2 uint64
}

type rule struct {
	conds []cond
	ret   uint32
}

// sysRules are the rules for one syscall number on one architecture.
type sysRules struct {
	name       string
	conds      []rule // rules with argument conditions, in profile order
	uncond     uint32
	hasUncond  bool
	uncondFrom specs.LinuxSeccompAction
}

type archRules struct {
	arch   *arch
	byNr   map[uint32]*sysRules
	maxLow uint32 // highest named number below 512 (x32) or overall
	named  bool
}

// Compile checks cfg and compiles it into a filter for the native
// architecture plus those cfg lists. Bad profiles return an error naming the
// offending field; Compile never panics on input.
func Compile(cfg *specs.LinuxSeccomp) (*Filter, error) {
	if cfg == nil {
		return nil, fmt.Errorf("seccomp: no profile given")
	}
	if cfg.DefaultAction == specs.ActNotify {
		return nil, fmt.Errorf("seccomp: defaultAction SCMP_ACT_NOTIFY is not allowed: the runtime's own syscalls between installing the filter and exec would wait on a listener nobody serves yet")
	}
	def, err := retValue(cfg.DefaultAction, cfg.DefaultErrnoRet, "seccomp defaultAction")
	if err != nil {
		return nil, err
	}
	stub := false
	switch cfg.DefaultAction {
	case specs.ActKill, specs.ActKillThread, specs.ActKillProcess, specs.ActTrap, specs.ActErrno:
		stub = true
	}

	native := nativeArch()
	if native == nil {
		return nil, fmt.Errorf("seccomp: the compiler does not support this machine's architecture (supported: %s)", strings.Join(SupportedArchitectures(), ", "))
	}
	inFilter := map[*arch]bool{native: true}
	for _, n := range cfg.Architectures {
		a := archByName(n)
		if a == nil {
			return nil, fmt.Errorf("seccomp: architecture %q is not supported (supported: %s)", n, strings.Join(SupportedArchitectures(), ", "))
		}
		inFilter[a] = true
	}

	f := &Filter{}
	for _, fl := range cfg.Flags {
		found := false
		for _, fb := range flagBits {
			if fb.name == fl {
				f.flags |= fb.bit
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("seccomp: unknown flag %q (supported: %s)", fl, strings.Join(SupportedFlags(), ", "))
		}
	}

	var ars []*archRules
	for _, a := range archs {
		if inFilter[a] {
			ars = append(ars, &archRules{arch: a, byNr: make(map[uint32]*sysRules, 512)})
		}
	}
	unknown := map[string]bool{}
	for i, sc := range cfg.Syscalls {
		what := fmt.Sprintf("seccomp syscalls[%d]", i)
		if len(sc.Names) == 0 {
			return nil, fmt.Errorf("%s: names is empty", what)
		}
		ret, err := retValue(sc.Action, sc.ErrnoRet, what)
		if err != nil {
			return nil, err
		}
		if sc.Action == specs.ActNotify {
			f.notify = true
		}
		conds := make([]cond, len(sc.Args))
		for j, a := range sc.Args {
			if a.Index > 5 {
				return nil, fmt.Errorf("%s.args[%d]: index %d is out of range (0-5)", what, j, a.Index)
			}
			if !validOp(a.Op) {
				return nil, fmt.Errorf("%s.args[%d]: unknown op %q (supported: %s)", what, j, a.Op, strings.Join(SupportedOperators(), ", "))
			}
			conds[j] = cond{a.Index, a.Op, a.Value, a.ValueTwo}
		}
		for _, name := range sc.Names {
			if name == "" {
				return nil, fmt.Errorf("%s: empty syscall name", what)
			}
			known := false
			for _, ar := range ars {
				nr, ok := ar.arch.table.lookup(name)
				if !ok {
					continue
				}
				known = true
				if err := ar.add(name, nr, conds, ret, def, sc.Action); err != nil {
					return nil, fmt.Errorf("%s: %w", what, err)
				}
			}
			if !known {
				unknown[name] = true
			}
		}
	}
	if f.notify && cfg.ListenerPath == "" {
		return nil, fmt.Errorf("seccomp: a rule uses SCMP_ACT_NOTIFY but listenerPath is empty: nobody could answer the notifications")
	}
	if f.flags&unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 && !f.notify {
		return nil, fmt.Errorf("seccomp: flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY")
	}
	if f.notify {
		f.flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		if f.flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 {
			// TSYNC and NEW_LISTENER both claim the return value; TSYNC_ESRCH
			// makes a TSYNC failure an error so the fd can be returned.
			f.flags |= unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
		}
	}
	for n := range unknown {
		f.unknown = append(f.unknown, n)
	}
	sort.Strings(f.unknown)

	c := &compiler{def: def, stub: stub}
	f.prog, err = c.compile(ars)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func validOp(op specs.LinuxSeccompOperator) bool {
	for _, o := range operators {
		if o == op {
			return true
		}
	}
	return false
}

func (ar *archRules) add(name string, nr uint32, conds []cond, ret, def uint32, act specs.LinuxSeccompAction) error {
	low := nr &^ x32Bit
	if ar.arch != archX32 || low < 512 {
		if !ar.named || low > ar.maxLow {
			ar.maxLow = low
		}
		ar.named = true
	}
	sr := ar.byNr[nr]
	if sr == nil {
		sr = &sysRules{name: name}
		ar.byNr[nr] = sr
	}
	if len(conds) > 0 {
		sr.conds = append(sr.conds, rule{conds, ret})
		return nil
	}
	if ret == def {
		return nil
	}
	if sr.hasUncond && sr.uncond != ret {
		return fmt.Errorf("syscall %q on %s has two unconditional rules with different actions (%s and %s, or different errnoRet)", name, ar.arch.name, sr.uncondFrom, act)
	}
	sr.uncond, sr.hasUncond, sr.uncondFrom = ret, true, act
	return nil
}

// outcome is what an interval of syscall numbers does: return a fixed value,
// or run the argument rules of one syscall.
type outcome struct {
	ret   uint32
	rules *sysRules
}

type interval struct {
	start uint32 // covers [start, next interval's start)
	out   outcome
}

type compiler struct {
	a    assembler
	def  uint32
	stub bool
}

func (c *compiler) compile(ars []*archRules) ([]unix.SockFilter, error) {
	var x86_64, x32, i386 *archRules
	for _, ar := range ars {
		switch ar.arch {
		case archX86_64:
			x86_64 = ar
		case archX32:
			x32 = ar
		case archX86:
			i386 = ar
		}
	}
	type block struct {
		audit uint32
		ivs   []interval
		l     label
	}
	var blocks []block
	if x86_64 != nil || x32 != nil {
		var ivs []interval
		ivs = c.segment(ivs, x86_64, 0, x32Bit)
		ivs = c.segment(ivs, x32, x32Bit, 0xffffffff)
		ivs = appendIv(ivs, interval{0xffffffff, outcome{ret: retAllow}})
		blocks = append(blocks, block{auditArchX86_64, ivs, c.a.newLabel()})
	}
	if i386 != nil {
		var ivs []interval
		ivs = c.segment(ivs, i386, 0, 0xffffffff)
		ivs = appendIv(ivs, interval{0xffffffff, outcome{ret: retAllow}})
		blocks = append(blocks, block{auditArchI386, ivs, c.a.newLabel()})
	}
	// Native architecture first: it is the one nearly every syscall uses.
	if nativeArch() == archX86 && len(blocks) == 2 {
		blocks[0], blocks[1] = blocks[1], blocks[0]
	}

	c.a.ld(4) // seccomp_data.arch
	for _, b := range blocks {
		c.a.jump(bpfJeq, b.audit, b.l, noLabel)
	}
	c.a.ret(retBadArch)
	for _, b := range blocks {
		c.a.bind(b.l)
		c.a.ld(0) // seccomp_data.nr
		if err := c.tree(b.ivs); err != nil {
			return nil, err
		}
	}
	return c.a.assemble()
}

// appendIv appends iv, merging it into the previous interval when both just
// return the same value.
func appendIv(ivs []interval, iv interval) []interval {
	if n := len(ivs); n > 0 && ivs[n-1].out.rules == nil && iv.out.rules == nil && ivs[n-1].out.ret == iv.out.ret {
		return ivs
	}
	return append(ivs, iv)
}

// segment lays out the numbers [lo, hi) of one architecture: its named
// syscalls, the default action up to the newest named number, ENOSYS past it.
// A nil ar means the architecture is not in the filter.
func (c *compiler) segment(ivs []interval, ar *archRules, lo, hi uint32) []interval {
	if ar == nil {
		return appendIv(ivs, interval{lo, outcome{ret: retBadArch}})
	}
	newer := c.def
	if c.stub && ar.named {
		newer = retENOSYS
	}
	nrs := make([]uint32, 0, len(ar.byNr))
	for nr := range ar.byNr {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)

	// Boundaries where the "unnamed" outcome changes: default up to maxLow,
	// ENOSYS after it, and (x32 only) default again from 512.
	stubStart := lo + ar.maxLow + 1
	if !ar.named {
		stubStart = lo
	}
	stubEnd := hi
	if ar.arch == archX32 {
		stubEnd = lo + 512
	}
	unnamed := func(nr uint32) uint32 {
		if nr >= stubStart && nr < stubEnd {
			return newer
		}
		return c.def
	}
	// Every point where an unnamed number's outcome may change, plus each
	// named syscall and the number after it.
	points := []uint32{lo, stubStart, stubEnd}
	for _, nr := range nrs {
		points = append(points, nr, nr+1)
	}
	slices.Sort(points)
	points = slices.Compact(points)
	for _, p := range points {
		if p < lo || p >= hi {
			continue
		}
		if sr, ok := ar.byNr[p]; ok {
			switch {
			case len(sr.conds) > 0:
				ivs = append(ivs, interval{p, outcome{rules: sr}})
			case sr.hasUncond:
				ivs = appendIv(ivs, interval{p, outcome{ret: sr.uncond}})
			default:
				ivs = appendIv(ivs, interval{p, outcome{ret: c.def}})
			}
			continue
		}
		ivs = appendIv(ivs, interval{p, outcome{ret: unnamed(p)}})
	}
	return ivs
}

// tree emits a balanced JGE search over ivs; A holds the syscall number.
func (c *compiler) tree(ivs []interval) error {
	if len(ivs) == 1 {
		o := ivs[0].out
		if o.rules == nil {
			c.a.ret(o.ret)
			return nil
		}
		return c.chain(o.rules)
	}
	mid := len(ivs) / 2
	right := c.a.newLabel()
	c.a.jump(bpfJge, ivs[mid].start, right, noLabel)
	if err := c.tree(ivs[:mid]); err != nil {
		return err
	}
	c.a.bind(right)
	return c.tree(ivs[mid:])
}

// chain emits one syscall's argument rules: each rule's conditions fall
// through on success and jump to the next rule on failure.
func (c *compiler) chain(sr *sysRules) error {
	for _, r := range sr.conds {
		next := c.a.newLabel()
		for _, cd := range r.conds {
			c.cond(cd, next)
		}
		c.a.ret(r.ret)
		c.a.bind(next)
	}
	if sr.hasUncond {
		c.a.ret(sr.uncond)
	} else {
		c.a.ret(c.def)
	}
	return nil
}

// cond emits a 64-bit unsigned comparison of one argument from its two
// 32-bit halves (both supported ABIs are little-endian: low word first).
// Success falls through; failure jumps to fail.
func (c *compiler) cond(cd cond, fail label) {
	lo := uint32(16 + 8*cd.index)
	hi := lo + 4
	vh, vl := uint32(cd.val>>32), uint32(cd.val)
	pass := c.a.newLabel()
	a := &c.a
	switch cd.op {
	case specs.OpEqualTo:
		a.ld(hi)
		a.jump(bpfJeq, vh, noLabel, fail)
		a.ld(lo)
		a.jump(bpfJeq, vl, pass, fail)
	case specs.OpNotEqual:
		a.ld(hi)
		a.jump(bpfJeq, vh, noLabel, pass)
		a.ld(lo)
		a.jump(bpfJeq, vl, fail, pass)
	case specs.OpGreaterThan:
		a.ld(hi)
		a.jump(bpfJgt, vh, pass, noLabel)
		a.jump(bpfJeq, vh, noLabel, fail)
		a.ld(lo)
		a.jump(bpfJgt, vl, pass, fail)
	case specs.OpGreaterEqual:
		a.ld(hi)
		a.jump(bpfJgt, vh, pass, noLabel)
		a.jump(bpfJeq, vh, noLabel, fail)
		a.ld(lo)
		a.jump(bpfJge, vl, pass, fail)
	case specs.OpLessThan:
		a.ld(hi)
		a.jump(bpfJgt, vh, fail, noLabel)
		a.jump(bpfJeq, vh, noLabel, pass)
		a.ld(lo)
		a.jump(bpfJge, vl, fail, pass)
	case specs.OpLessEqual:
		a.ld(hi)
		a.jump(bpfJgt, vh, fail, noLabel)
		a.jump(bpfJeq, vh, noLabel, pass)
		a.ld(lo)
		a.jump(bpfJgt, vl, fail, pass)
	case specs.OpMaskedEqual:
		mh, ml := vh, vl
		wh, wl := uint32(cd.val2>>32), uint32(cd.val2)
		a.ld(hi)
		a.and(mh)
		a.jump(bpfJeq, wh, noLabel, fail)
		a.ld(lo)
		a.and(ml)
		a.jump(bpfJeq, wl, pass, fail)
	}
	a.bind(pass)
}

// FromProgram rebuilds a Filter from a program Compile made, for a process that receives
// the compiled filter from another (the runtime compiles once, and the container's init
// installs it).
func FromProgram(prog []unix.SockFilter, flags uint, notify bool) *Filter {
	return &Filter{prog: prog, flags: flags, notify: notify}
}
