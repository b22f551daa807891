package nsview

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestParseNSLink(t *testing.T) {
	for in, want := range map[string]uint64{"mnt:[4026531840]": 4026531840, "time_for_children:[1]": 1} {
		if got, ok := parseNSLink([]byte(in)); !ok || got != want {
			t.Errorf("parseNSLink(%q) = %d %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "mnt:", "mnt:[]", "mnt:[12", "mnt:[x1]"} {
		if _, ok := parseNSLink([]byte(bad)); ok {
			t.Errorf("parseNSLink(%q) accepted", bad)
		}
	}
}

func TestParseTypeAndColumns(t *testing.T) {
	for in, want := range map[string]Type{"mnt": Mnt, "mount": Mnt, "network": Net, "NEWUSER": User, "time": Time} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseType("bogus"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("ParseType(bogus): %v", err)
	}
	cols, err := ParseColumns("+path,container", []string{"NS"})
	if err != nil || strings.Join(cols, ",") != "NS,PATH,CONTAINER" {
		t.Errorf("ParseColumns(+path,container) = %v, %v", cols, err)
	}
	if _, err := ParseColumns("NS,BOGUS", nil); err == nil || err.Error() != "unknown column: BOGUS" {
		t.Errorf("unknown column error: %v", err)
	}
	if _, err := ParseTree("sideways"); err == nil {
		t.Error("ParseTree accepted sideways")
	}
}

// The escapes are util-linux's: raw mode hex-escapes blanks, backslashes and non-ASCII;
// the table only what a terminal must not get.
func TestEscaping(t *testing.T) {
	in := "busybox sh -c a; é\"q\\b\tt"
	if got, want := rawEncode(in), `busybox\x20sh\x20-c\x20a;\x20\xc3\xa9"q\x5cb\x09t`; got != want {
		t.Errorf("raw %q, want %q", got, want)
	}
	if got, want := safeEncode(in, true), "busybox sh -c a; é\"q\\b\\x09t"; got != want {
		t.Errorf("table (UTF-8) %q, want %q", got, want)
	}
	if got, want := safeEncode(in, false), `busybox sh -c a; \xc3\xa9"q\b\x09t`; got != want {
		t.Errorf("table (C) %q, want %q", got, want)
	}
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	writeJSONString(w, in+"\n\x01")
	w.Flush()
	if want := `"busybox sh -c a; é\"q\\b\tt\n\u0001"`; b.String() != want {
		t.Errorf("JSON %s, want %s", b.String(), want)
	}
}

func TestJSONAndTableLayout(t *testing.T) {
	cols := []int{columnIndex("NS"), columnIndex("TYPE"), columnIndex("PID"), columnIndex("COMMAND")}
	child := &row{cells: []cell{{"4026531860", true}, {"mnt", true}, {"25", true}, {"kdevtmpfs", true}}}
	root := &row{cells: []cell{{"4026531839", true}, {"ipc", true}, {"2", true}, {"", false}}, children: []*row{child}}
	var out bytes.Buffer
	if err := writeRows(&out, cols, []*row{root}, ListOptions{JSON: true, Tree: TreeProcess}); err != nil {
		t.Fatal(err)
	}
	want := `{
   "namespaces": [
      {
         "ns": 4026531839,
         "type": "ipc",
         "pid": 2,
         "command": null,
         "children": [
            {
               "ns": 4026531860,
               "type": "mnt",
               "pid": 25,
               "command": "kdevtmpfs"
            }
         ]
      }
   ]
}
`
	if out.String() != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := writeRows(&out, cols, nil, ListOptions{JSON: true}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n   \"namespaces\": [\n\n   ]\n}\n"; out.String() != want {
		t.Errorf("empty JSON %q, want %q", out.String(), want)
	}
	out.Reset()
	// PID's data is narrower than its header, so the header sets the width, not the hint;
	// an empty last cell still gets its separator, as libsmartcols prints it.
	if err := writeRows(&out, cols, []*row{root}, ListOptions{Tree: TreeProcess}); err != nil {
		t.Fatal(err)
	}
	want = "        NS TYPE PID COMMAND\n4026531839 ipc    2 \n4026531860 mnt   25 └─kdevtmpfs\n"
	if out.String() != want {
		t.Errorf("table:\n%q\nwant:\n%q", out.String(), want)
	}
}
