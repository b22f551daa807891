package image

import (
	"strings"
	"testing"
)

// The hand-written checks accept and refuse what the regexps they replaced did:
// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ and ^(sha256:)?[a-f0-9]{4,64}$.
func TestIsKeyAndIsIDPrefix(t *testing.T) {
	for key, want := range map[string]bool{
		"a": true, "0": true, "abc_DEF.1-2": true, strings.Repeat("a", 128): true,
		"": false, strings.Repeat("a", 129): false, "_a": false, ".a": false, "-a": false,
		"a/b": false, "..": false, "a b": false, "é": false, "a\x00": false,
	} {
		if got := IsKey(key); got != want {
			t.Errorf("IsKey(%q) = %v, want %v", key, got, want)
		}
	}
	for ref, want := range map[string]bool{
		"abcd": true, "0123456789abcdef": true, "sha256:abcd": true, strings.Repeat("f", 64): true,
		"abc": false, "sha256:abc": false, strings.Repeat("f", 65): false, "ABCD": false,
		"abcg": false, "busybox": false, "sha256:": false, "sha512:abcd": false, "": false,
	} {
		if got := isIDPrefix(ref); got != want {
			t.Errorf("isIDPrefix(%q) = %v, want %v", ref, got, want)
		}
	}
}
