package engine

import (
	"strings"
	"testing"
)

func TestIDAndNameChecks(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct {
		s      string
		id, nm bool
	}{
		{id, true, true},
		{id[:63], false, true},
		{id + "0", false, true},
		{strings.ToUpper(id), false, true},
		{id[:63] + "g", false, true},
		{"web", false, true},
		{"Web_1.a-b", false, true},
		{"9lives", false, true},
		{"", false, false},
		{"_web", false, false},
		{".web", false, false},
		{"-web", false, false},
		{"we b", false, false},
		{"web/1", false, false},
		{"wéb", false, false},
	} {
		if got := isID(c.s); got != c.id {
			t.Errorf("isID(%q) = %v, want %v", c.s, got, c.id)
		}
		if got := isName(c.s); got != c.nm {
			t.Errorf("isName(%q) = %v, want %v", c.s, got, c.nm)
		}
	}
}
