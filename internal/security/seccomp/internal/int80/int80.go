//go:build linux && amd64

// Package int80 makes i386 syscalls (int $0x80) from a 64-bit process, so
// tests can check how filters treat the AUDIT_ARCH_I386 ABI without shipping
// a 32-bit binary.
package int80

// Syscall runs i386 syscall nr with up to three arguments and returns eax
// as the kernel left it (a negative errno on failure).
func Syscall(nr, a1, a2, a3 uintptr) int32
