package cgroups

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Device rules (linux.resources.devices) are applied in order, the later rule winning for
// the access bits it names, exactly as successive writes to v1's devices.allow and
// devices.deny behave. On v1 they are those writes. On v2, which has no devices
// controller, they are compiled into a BPF_PROG_TYPE_CGROUP_DEVICE program attached to
// the container's cgroup.
//
// The program is generated and attached with raw bpf(2) calls rather than a library such
// as cilium/ebpf: it needs five bpf commands and a dozen instruction encodings, all stable
// kernel ABI, and the library would be by far the biggest dependency of the runtime for a
// few hundred lines of it, on the container start path.

// devRule is one validated device rule; major and minor are -1 for "any".
type devRule struct {
	allow        bool
	typ          byte // 'a', 'b' or 'c'
	major, minor int64
	access       uint32 // BPF_DEVCG_ACC_* bits: mknod 1, read 2, write 4
}

const accAll = unix.BPF_DEVCG_ACC_MKNOD | unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE

// compileDevices validates the rules. A type "a" rule with any major and minor is the v1
// kernel's reset (it applies to every access, whatever its access string says); type "a"
// with a number is taken as the same rule for block and char devices.
func compileDevices(devs []specs.LinuxDeviceCgroup) ([]devRule, error) {
	var rules []devRule
	for i, d := range devs {
		field := fmt.Sprintf("linux.resources.devices[%d]", i)
		r := devRule{allow: d.Allow, major: -1, minor: -1}
		switch d.Type {
		case "", "a":
			r.typ = 'a'
		case "b", "c":
			r.typ = d.Type[0]
		default:
			return nil, fmt.Errorf("cgroups: %s.type %q is not a, b or c", field, d.Type)
		}
		for _, n := range []struct {
			name string
			v    *int64
			dst  *int64
		}{{"major", d.Major, &r.major}, {"minor", d.Minor, &r.minor}} {
			if n.v == nil || *n.v == -1 {
				continue
			}
			if *n.v < 0 || *n.v > math.MaxInt32 {
				return nil, fmt.Errorf("cgroups: %s.%s %d is out of range", field, n.name, *n.v)
			}
			*n.dst = *n.v
		}
		acc := d.Access
		if acc == "" {
			acc = "rwm"
		}
		for _, c := range acc {
			switch c {
			case 'r':
				r.access |= unix.BPF_DEVCG_ACC_READ
			case 'w':
				r.access |= unix.BPF_DEVCG_ACC_WRITE
			case 'm':
				r.access |= unix.BPF_DEVCG_ACC_MKNOD
			default:
				return nil, fmt.Errorf("cgroups: %s.access %q has %q; only r, w and m are allowed", field, d.Access, c)
			}
		}
		if r.typ == 'a' {
			if r.major == -1 && r.minor == -1 {
				r.access = accAll
			} else {
				b, c := r, r
				b.typ, c.typ = 'b', 'c'
				rules = append(rules, b, c)
				continue
			}
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// v1Line is the rule as devices.allow/devices.deny take it.
func (r devRule) v1Line() (file, line string) {
	file = "devices.deny"
	if r.allow {
		file = "devices.allow"
	}
	if r.typ == 'a' {
		return file, "a"
	}
	num := func(v int64) string {
		if v < 0 {
			return "*"
		}
		return strconv.FormatInt(v, 10)
	}
	var acc strings.Builder
	if r.access&unix.BPF_DEVCG_ACC_READ != 0 {
		acc.WriteByte('r')
	}
	if r.access&unix.BPF_DEVCG_ACC_WRITE != 0 {
		acc.WriteByte('w')
	}
	if r.access&unix.BPF_DEVCG_ACC_MKNOD != 0 {
		acc.WriteByte('m')
	}
	return file, fmt.Sprintf("%c %s:%s %s", r.typ, num(r.major), num(r.minor), acc.String())
}

// bpfInsn encodes one eBPF instruction (struct bpf_insn, little-endian).
func bpfInsn(code uint8, dst, src uint8, off int16, imm int32) uint64 {
	return uint64(code) | uint64(dst&0xf|(src&0xf)<<4)<<8 | uint64(uint16(off))<<16 | uint64(uint32(imm))<<32
}

const (
	opLdxW   = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W   // dst = *(u32 *)(src + off)
	opMovK   = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K // dst = imm
	opMovX   = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X // dst = src
	opAndK   = unix.BPF_ALU64 | unix.BPF_AND | unix.BPF_K // dst &= imm
	opRshK   = unix.BPF_ALU64 | unix.BPF_RSH | unix.BPF_K // dst >>= imm
	opJneK   = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K   // if dst != imm goto +off
	opJeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K   // if dst == imm goto +off
	opExit   = unix.BPF_JMP | unix.BPF_EXIT               // return r0
	devBlock = unix.BPF_DEVCG_DEV_BLOCK
	devChar  = unix.BPF_DEVCG_DEV_CHAR
)

// devicesProgram compiles the rules into a cgroup device program. The context is
// struct bpf_cgroup_dev_ctx { u32 access_type (access<<16 | type); u32 major; u32 minor; }.
// Rules are checked last to first; r2 holds the requested access bits not yet decided. A
// matching deny rule that names one of them denies; a matching allow rule decides the
// bits it names, and allows once none is left. Bits no rule decides are allowed, as in a
// fresh v1 cgroup under an allow-all parent; rule lists normally start with a deny-all.
func devicesProgram(rules []devRule) []uint64 {
	p := []uint64{
		bpfInsn(opLdxW, 2, 1, 0, 0), // r2 = access_type
		bpfInsn(opMovX, 3, 2, 0, 0), // r3 = r2
		bpfInsn(opAndK, 3, 0, 0, 0xffff),
		bpfInsn(opRshK, 2, 0, 0, 16), // r2 = requested access bits
		bpfInsn(opLdxW, 4, 1, 4, 0),  // r4 = major
		bpfInsn(opLdxW, 5, 1, 8, 0),  // r5 = minor
	}
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		if r.typ == 'a' && r.access == accAll {
			// A reset (type a, any numbers) decides every access: nothing before it, nor
			// the default, can run, and the verifier rejects unreachable instructions.
			v := int32(0)
			if r.allow {
				v = 1
			}
			return append(p, bpfInsn(opMovK, 0, 0, 0, v), bpfInsn(opExit, 0, 0, 0, 0))
		}
		var block []uint64
		var jumps []int // indexes in block of jumps to the end of the block
		skipIf := func(op uint8, reg uint8, imm int32) {
			jumps = append(jumps, len(block))
			block = append(block, bpfInsn(op, reg, 0, 0, imm))
		}
		switch r.typ {
		case 'b':
			skipIf(opJneK, 3, devBlock)
		case 'c':
			skipIf(opJneK, 3, devChar)
		}
		if r.major >= 0 {
			skipIf(opJneK, 4, int32(r.major))
		}
		if r.minor >= 0 {
			skipIf(opJneK, 5, int32(r.minor))
		}
		if r.access != accAll {
			block = append(block, bpfInsn(opMovX, 0, 2, 0, 0), bpfInsn(opAndK, 0, 0, 0, int32(r.access)))
			skipIf(opJeqK, 0, 0)
		}
		if r.allow {
			block = append(block, bpfInsn(opAndK, 2, 0, 0, int32(^r.access)))
			skipIf(opJneK, 2, 0)
			block = append(block, bpfInsn(opMovK, 0, 0, 0, 1), bpfInsn(opExit, 0, 0, 0, 0))
		} else {
			block = append(block, bpfInsn(opMovK, 0, 0, 0, 0), bpfInsn(opExit, 0, 0, 0, 0))
		}
		for _, j := range jumps {
			off := len(block) - j - 1
			block[j] = block[j]&^(0xffff<<16) | uint64(uint16(off))<<16
		}
		p = append(p, block...)
	}
	return append(p, bpfInsn(opMovK, 0, 0, 0, 1), bpfInsn(opExit, 0, 0, 0, 0))
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	for try := 0; ; try++ {
		r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		// A signal can make the verifier give up with EAGAIN (older kernels) or EINTR.
		if (e == unix.EINTR || e == unix.EAGAIN && cmd == unix.BPF_PROG_LOAD) && try < 5 {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

type bpfProgLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

type bpfAttachAttr struct {
	targetFd     uint32
	attachBpfFd  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBpfFd uint32
}

type bpfQueryAttr struct {
	targetFd    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     uint64
	progCnt     uint32
	_           uint32
}

type bpfGetFDAttr struct {
	progID    uint32
	nextID    uint32
	openFlags uint32
}

func loadDeviceProgram(insns []uint64) (int, error) {
	code := make([]byte, 8*len(insns))
	for i, in := range insns {
		binary.LittleEndian.PutUint64(code[8*i:], in)
	}
	license := []byte("Apache-2.0\x00")
	attr := bpfProgLoadAttr{
		progType:           unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:            uint32(len(insns)),
		insns:              uint64(uintptr(unsafe.Pointer(&code[0]))),
		license:            uint64(uintptr(unsafe.Pointer(&license[0]))),
		expectedAttachType: unix.BPF_CGROUP_DEVICE,
	}
	copy(attr.progName[:], "berth_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	if err == nil {
		return fd, nil
	}
	// Load again with the verifier's log, which says why, only on failure.
	log := make([]byte, 64*1024)
	attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(len(log)), uint64(uintptr(unsafe.Pointer(&log[0])))
	fd, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(log)
	if err2 == nil {
		return fd, nil
	}
	msg := strings.TrimSpace(string(log[:clen(log)]))
	return -1, fmt.Errorf("bpf(BPF_PROG_LOAD) of a %d-instruction cgroup device program: %w; verifier: %s", len(insns), err, msg)
}

func clen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

// attachedDevicePrograms lists the ids of the device programs attached to the cgroup.
func attachedDevicePrograms(dirfd int) ([]uint32, error) {
	ids := make([]uint32, 64)
	attr := bpfQueryAttr{
		targetFd:   uint32(dirfd),
		attachType: unix.BPF_CGROUP_DEVICE,
		progIDs:    uint64(uintptr(unsafe.Pointer(&ids[0]))),
		progCnt:    uint32(len(ids)),
	}
	_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(ids)
	if err != nil {
		return nil, fmt.Errorf("bpf(BPF_PROG_QUERY): %w", err)
	}
	return ids[:attr.progCnt], nil
}

// setDeviceFilter attaches the program for rules to the v2 cgroup dir and detaches the
// device programs attached before (from an earlier Create or Update, maybe by another
// process). The new one is attached first: with BPF_F_ALLOW_MULTI every attached program
// must allow an access, so the overlap is never wider than either rule set.
func setDeviceFilter(dir string, rules []devRule) error {
	dirfd, err := openRetry(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(dirfd)
	old, err := attachedDevicePrograms(dirfd)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	prog, err := loadDeviceProgram(devicesProgram(rules))
	if err != nil {
		return err
	}
	defer unix.Close(prog)
	att := bpfAttachAttr{targetFd: uint32(dirfd), attachBpfFd: uint32(prog), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: unix.BPF_F_ALLOW_MULTI}
	if _, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&att), unsafe.Sizeof(att)); err != nil {
		return fmt.Errorf("bpf(BPF_PROG_ATTACH) device program to %s: %w", dir, err)
	}
	for _, id := range old {
		ga := bpfGetFDAttr{progID: id}
		fd, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&ga), unsafe.Sizeof(ga))
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return fmt.Errorf("bpf(BPF_PROG_GET_FD_BY_ID, %d) for the old device program of %s: %w", id, dir, err)
		}
		det := bpfAttachAttr{targetFd: uint32(dirfd), attachBpfFd: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE}
		_, err = bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&det), unsafe.Sizeof(det))
		unix.Close(fd)
		if err != nil && err != unix.ENOENT {
			return fmt.Errorf("bpf(BPF_PROG_DETACH) old device program %d from %s: %w", id, dir, err)
		}
	}
	return nil
}
