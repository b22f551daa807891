// Package testuser makes an unprivileged user for one test (useradd, as root) and removes
// it when the test ends, checking that no line of it is left in /etc/passwd, /etc/subuid or
// /etc/subgid. The runtime's and the engine's rootless tests share it.
package testuser

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// User is the test's user. SubUID and SubGID are the first ids of its subordinate ranges,
// -1 when it was made without them.
type User struct {
	Name           string
	UID, GID       int
	SubUID, SubGID int
}

// New makes the user, named prefix and this process's pid. With withRange it gets the
// /etc/subuid and /etc/subgid ranges Debian's useradd gives; without, none.
func New(t testing.TB, prefix string, withRange bool) *User {
	t.Helper()
	name := fmt.Sprintf("%s%d", prefix, os.Getpid()%100000)
	args := []string{"-M", "-s", "/usr/sbin/nologin", name}
	if !withRange {
		args = append([]string{"-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"}, args...)
	}
	if out, err := exec.Command("useradd", args...).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
		for _, f := range []string{"/etc/subuid", "/etc/subgid", "/etc/passwd"} {
			if b, _ := os.ReadFile(f); strings.Contains(string(b), name+":") {
				t.Errorf("%s still names the test user after userdel", f)
			}
		}
	})
	lu, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	u := &User{Name: name, SubUID: -1, SubGID: -1}
	u.UID, _ = strconv.Atoi(lu.Uid)
	u.GID, _ = strconv.Atoi(lu.Gid)
	if withRange {
		u.SubUID, u.SubGID = rangeStart(t, "/etc/subuid", name), rangeStart(t, "/etc/subgid", name)
	}
	return u
}

// rangeStart is the first id of name's range in an /etc/subuid-style file.
func rangeStart(t testing.TB, file, name string) int {
	t.Helper()
	if f, err := os.Open(file); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			parts := strings.Split(sc.Text(), ":")
			if len(parts) == 3 && parts[0] == name {
				n, _ := strconv.Atoi(parts[1])
				return n
			}
		}
	}
	t.Fatalf("useradd gave %s no range in %s (Debian's useradd adds one when the file exists)", name, file)
	return 0
}
