package main

import (
	"strings"
	"testing"
)

// testCLI is the real global flags with one recording command, so that parsing is tested
// without running a container.
func testCLI(t *testing.T) (*cli, *[]string, *string) {
	t.Helper()
	c := newCLI()
	var got []string
	var bundle string
	cmd := &command{Use: "rec [flags] ID", Short: "record", Aliases: []string{"r"}, Args: oneID,
		RunE: func(cmd *command, args []string) error { got = append([]string{}, args...); return nil }}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle")
	c.commands = append(c.commands, cmd)
	globals.root = ""
	t.Cleanup(func() { globals.root = "" })
	return c, &got, &bundle
}

func TestCLIParsesLikeCobra(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		root, bundle string
		id           string
	}{
		{[]string{"--root", "/r1", "rec", "-b", "/b1", "id1"}, "/r1", "/b1", "id1"},
		{[]string{"rec", "--root=/r2", "--bundle=/b2", "id2"}, "/r2", "/b2", "id2"},
		{[]string{"--root=/r3", "r", "id3", "-b", "/b3"}, "/r3", "/b3", "id3"},
	} {
		c, got, bundle := testCLI(t)
		if err := c.execute(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if globals.root != tc.root || *bundle != tc.bundle || len(*got) != 1 || (*got)[0] != tc.id {
			t.Errorf("%q: root %q bundle %q args %q, want %q %q [%s]", tc.args, globals.root, *bundle, *got, tc.root, tc.bundle, tc.id)
		}
	}
}

func TestCLIErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, `unknown command "nosuch" for "berth-runtime"`},
		{[]string{"rec", "--bogus", "x"}, "unknown flag: --bogus"},
		{[]string{"--bogus", "rec", "x"}, "unknown flag: --bogus"},
		{[]string{"rec"}, "rec: expects exactly one container id, got 0 arguments"},
		{[]string{"rec", "-b"}, "flag needs an argument"},
		{[]string{"list", "extra"}, `unknown command "extra" for "berth-runtime list"`},
		{[]string{"--log-format", "xml", "rec", "x"}, `--log-format "xml": must be text or json`},
	} {
		c, got, _ := testCLI(t)
		err := c.execute(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.want)
		}
		if *got != nil {
			t.Errorf("%q: the command ran with %q", tc.args, *got)
		}
	}
}

// --help, help COMMAND and a bare invocation print usage and run nothing.
func TestCLIHelpRunsNothing(t *testing.T) {
	for _, args := range [][]string{{"rec", "--help"}, {"rec", "-h", "x"}, {"help", "rec"}, {"--help"}, {}} {
		c, got, _ := testCLI(t)
		if err := c.execute(args); err != nil {
			t.Errorf("%q: %v", args, err)
		}
		if *got != nil {
			t.Errorf("%q: the command ran with %q", args, *got)
		}
	}
}
