package main

import (
	"strings"

	"github.com/spf13/pflag"
)

// stringArray is pflag's stringArray (each use of the flag adds one value, commas and all)
// without its String, which renders the default through an encoding/csv writer and so
// allocates a 4 KiB buffer per flag as the flag is defined: `run` has 29 such flags, and
// they were 184 KiB of the 1.4 MiB it allocates, every page of which the kernel faults in.
type stringArray struct {
	p       *[]string
	changed bool
}

func stringArrayVarP(fs *pflag.FlagSet, p *[]string, name, short, usage string) {
	fs.VarP(&stringArray{p: p}, name, short, usage)
}

func (s *stringArray) Set(v string) error {
	if !s.changed {
		*s.p, s.changed = nil, true
	}
	*s.p = append(*s.p, v)
	return nil
}

func (s *stringArray) Type() string { return "stringArray" }

func (s *stringArray) String() string {
	if s.p == nil || len(*s.p) == 0 {
		return "" // pflag's zero: no "(default ...)" in the help
	}
	return "[" + strings.Join(*s.p, ",") + "]"
}
