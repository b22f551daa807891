package image

import (
	"strings"
	"testing"
)

// Every answer canonicalFast gives must be go-containerregistry's (CanonicalName in the
// full build); where it gives none, the lean build hands the command to berth-full.
func TestCanonicalFastAgreesWithGGCR(t *testing.T) {
	refs := []string{
		"busybox", "busybox:latest", "busybox:1.36.1", "busybox:Tag_1", "library/busybox",
		"docker.io/busybox", "docker.io/library/busybox:1", "index.docker.io/busybox",
		"index.docker.io/library/busybox:x", "user/app", "user/app:v1", "a/b/c/d:e",
		"localhost/app", "localhost:5000/app", "localhost:5000/app:v1", "127.0.0.1:5000/a/b:c",
		"registry.example/team/app", "registry.example:443/team/app:1.0", "my-reg.example/x_y/z__w",
		"a.b-c.d/e-f/g.h:i", "bench-busybox:1", "x-y--z", "ab", "a", "a/b",
		// Refused by the fast path (left to go-containerregistry), or invalid.
		"", "Busybox", "busybox:", "busybox:.x", "busybox:-x", "busybox@sha256:" + strings.Repeat("a", 64),
		"busybox:1@sha256:" + strings.Repeat("b", 64), "/busybox", "busybox/", "a//b", "-a", "a-", "a..b",
		"a._b", "a___b", "LOCALHOST/app", "Registry.example/app", "localhost:/app", "localhost:99999x/app",
		"reg.example./app", ".reg/app", "reg-.example/app", "a b", "a\x00b", "busybox:" + strings.Repeat("t", 129),
		strings.Repeat("a", 256), "user/App", "user/a:b:c", "reg.example/a:b/c", "é", "a/é",
	}
	// And strings made of the characters that matter, in every short arrangement a
	// fixed-seed generator makes.
	const alphabet = "ab0.-_/:A"
	seed := uint32(1)
	for i := 0; i < 30000; i++ {
		var b strings.Builder
		seed = seed*1664525 + 1013904223
		for n := 1 + int(seed>>28)%10; n > 0; n-- {
			seed = seed*1664525 + 1013904223
			b.WriteByte(alphabet[int(seed>>24)%len(alphabet)])
		}
		refs = append(refs, b.String())
	}
	answered := 0
	for _, ref := range refs {
		fast, ok := canonicalFast(ref)
		full, err := CanonicalName(ref)
		if !ok {
			continue
		}
		answered++
		if err != nil {
			t.Errorf("canonicalFast(%q) = %q, but go-containerregistry refuses it: %v", ref, fast, err)
		} else if fast != full {
			t.Errorf("canonicalFast(%q) = %q, go-containerregistry says %q", ref, fast, full)
		}
	}
	if answered < 2000 {
		t.Errorf("canonicalFast answered only %d of %d references: the comparison proves little", answered, len(refs))
	}
	// The forms `berth run` meets most are answered without go-containerregistry.
	for _, ref := range []string{"busybox", "busybox:1.36", "user/app", "localhost:5000/app:v1", "bench-busybox:1"} {
		if _, ok := canonicalFast(ref); !ok {
			t.Errorf("canonicalFast(%q) gives no answer", ref)
		}
	}
}
