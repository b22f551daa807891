package main

import (
	"fmt"
	"regexp"
	"strings"
)

// Verdict is one program's outcome against one runtime.
type Verdict string

const (
	Pass Verdict = "pass"
	Fail Verdict = "fail"
	Skip Verdict = "skip"
)

// Result is what one validation program printed and how it ended.
type Result struct {
	Verdict Verdict
	// Tests, NotOK and Skipped count the TAP test points.
	Tests, NotOK, Skipped int
	// Why is a one-line reason for a failure: the first "not ok" line, a diagnostic printed
	// outside any test, or the exit status and the program's last stderr line.
	Why string
}

var (
	planRe = regexp.MustCompile(`^1\.\.(\d+)`)
	skipRe = regexp.MustCompile(`(?i)#\s*skip`)
	errRe  = regexp.MustCompile(`"error":\s*"((?:[^"\\]|\\.)*)"`)
)

// Classify turns a program's TAP output, stderr and exit status into a verdict.
//
// The validation programs of runtime-tools v0.9.0 report in three ways, and all three count:
//   - most print test points, and pass when every one is "ok" (skips included) and at least
//     one was not skipped;
//   - the hook programs print no test point at all ("1..0") and report a failure only as a
//     YAML diagnostic with an "error" key that follows no test point;
//   - the *_fail programs print nothing when the runtime refused the bad config, and exit
//     non-zero (util.Fatal) when it did not.
//
// So: a non-zero exit, any "not ok", or an orphan "error" diagnostic is a failure; a run
// whose test points were all skipped is a skip; anything else that exited 0 is a pass.
func Classify(tap, stderr string, exitCode int) Result {
	var r Result
	afterTest := false
	lines := strings.Split(tap, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "not ok"):
			r.Tests++
			r.NotOK++
			if r.Why == "" {
				r.Why = strings.TrimSpace(l)
			}
			afterTest = true
		case strings.HasPrefix(l, "ok"):
			r.Tests++
			if skipRe.MatchString(l) {
				r.Skipped++
			}
			afterTest = true
		case planRe.MatchString(l):
			afterTest = false
		case strings.TrimSpace(l) == "---":
			j := i + 1
			for j < len(lines) && strings.TrimSpace(lines[j]) != "..." {
				j++
			}
			block := strings.Join(lines[i:min(j, len(lines))], "\n")
			if !afterTest {
				if m := errRe.FindStringSubmatch(block); m != nil && r.Why == "" {
					r.Why = "diagnostic: " + firstLine(unescape(m[1]))
				}
			}
			i = j
			afterTest = false
		}
		// Other lines (comments, and the "Refer to: ..." second line of a multi-line test
		// description) leave a following diagnostic attached to the test point before them.
	}
	switch {
	case exitCode != 0:
		r.Verdict = Fail
		why := fmt.Sprintf("exit status %d", exitCode)
		if s := lastLine(stderr); s != "" {
			why += ": " + s
		}
		if r.Why == "" {
			r.Why = why
		} else {
			r.Why = why + "; " + r.Why
		}
	case r.NotOK > 0 || r.Why != "":
		r.Verdict = Fail
	case r.Tests > 0 && r.Tests == r.Skipped:
		r.Verdict = Skip
		r.Why = "every test point skipped"
	default:
		r.Verdict = Pass
	}
	return r
}

// Cell is the result as a table cell: the verdict and the counts behind it.
func (r Result) Cell() string {
	switch {
	case r.Verdict == Pass && r.Tests == 0:
		return "pass"
	case r.Verdict == Pass && r.Skipped > 0:
		return fmt.Sprintf("pass (%d, %d skipped)", r.Tests, r.Skipped)
	case r.Verdict == Pass:
		return fmt.Sprintf("pass (%d)", r.Tests)
	case r.Verdict == Fail && r.NotOK > 0:
		return fmt.Sprintf("**fail** (%d/%d not ok)", r.NotOK, r.Tests)
	case r.Verdict == Fail:
		return "**fail**"
	}
	return string(r.Verdict)
}

func unescape(s string) string {
	return strings.NewReplacer(`\n`, "\n", `\t`, " ", `\"`, `"`, `\\`, `\`).Replace(s)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(ls) - 1; i >= 0; i-- {
		l := strings.TrimSpace(ls[i])
		if l == "" || strings.HasPrefix(l, "exit status") || strings.HasPrefix(l, "Refer to:") {
			continue
		}
		if len(l) > 300 {
			l = l[:300] + "..."
		}
		return l
	}
	return ""
}
