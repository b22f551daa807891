package main

import (
	"strings"
	"testing"
)

// The outputs below are shortened from what the v0.9.0 programs print on this host.
func TestClassify(t *testing.T) {
	cases := []struct {
		name, tap, stderr string
		code              int
		want              Verdict
		tests, notOK      int
		why               string
	}{
		{name: "all ok with skips", tap: "TAP version 13\nok 1 - has expected hostname\n  ---\n  {\n    \"error\": \"exit status 1\"\n  }\n  ...\nok 2 # SKIP linux.sysctl not set\n1..2\n",
			want: Pass, tests: 2},
		{name: "a not ok", tap: "TAP version 13\nok 1 - a\nnot ok 2 - memory kernel is set correctly\n# expect: 1, actual: 2\n1..2\n",
			want: Fail, tests: 2, notOK: 1, why: "not ok 2 - memory kernel is set correctly"},
		{name: "hook program clean", tap: "TAP version 13\n1..0\n", want: Pass},
		{name: "hook program with an orphan error", tap: "TAP version 13\n  ---\n  {\n    \"error\": \"Hooks MUST be called in the listed order\\nRefer to: x\"\n  }\n  ...\n1..0\n",
			want: Fail, why: "diagnostic: Hooks MUST be called in the listed order"},
		{name: "fail program refused (nothing printed)", tap: "", want: Pass},
		{name: "fail program not refused", tap: "TAP version 13\nok 1 - has expected hostname\n1..1\n", stderr: "Any value which cannot be mapped to a relevant kernel interface MUST cause an error\nRefer to: https://example\n", code: 1,
			want: Fail, tests: 1, why: "exit status 1: Any value which cannot be mapped to a relevant kernel interface MUST cause an error"},
		{name: "crash before TAP", stderr: "failed to create the container\nberth-runtime: container x: bad\nexit status 1\n", code: 1,
			want: Fail, why: "exit status 1: berth-runtime: container x: bad"},
		{name: "two-line description", tap: "TAP version 13\nok 1 - state MUST generate an error\nRefer to: https://x\n  ---\n  {\n    \"error\": \"exit status 1\"\n  }\n  ...\n1..1\n",
			want: Pass, tests: 1},
		{name: "every point skipped", tap: "TAP version 13\nok 1 # skip linux-specific\n1..1\n", want: Skip, tests: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Classify(c.tap, c.stderr, c.code)
			if r.Verdict != c.want || r.Tests != c.tests || r.NotOK != c.notOK {
				t.Fatalf("got %+v, want verdict %s tests %d notOK %d", r, c.want, c.tests, c.notOK)
			}
			if c.why != "" && !strings.HasPrefix(r.Why, c.why) {
				t.Errorf("why = %q, want prefix %q", r.Why, c.why)
			}
		})
	}
}

func TestCell(t *testing.T) {
	for _, c := range []struct {
		r    Result
		want string
	}{
		{Result{Verdict: Pass, Tests: 307, Skipped: 37}, "pass (307, 37 skipped)"},
		{Result{Verdict: Pass}, "pass"},
		{Result{Verdict: Fail, Tests: 54, NotOK: 6}, "**fail** (6/54 not ok)"},
		{Result{Verdict: Fail}, "**fail**"},
	} {
		if got := c.r.Cell(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.r, got, c.want)
		}
	}
}
