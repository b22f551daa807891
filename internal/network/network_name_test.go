package network

import "testing"

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "appnet": true, "net_1.x-y": true, "9lives": true, "A.B": true,
		"": false, "_x": false, ".x": false, "-x": false, "a b": false, "a/b": false, "é": false, "a:b": false,
	} {
		if got := validName(s); got != want {
			t.Errorf("validName(%q) = %v, want %v", s, got, want)
		}
	}
}
