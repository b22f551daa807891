package rootfs

import (
	"strings"
	"testing"
)

func TestParseOverlay(t *testing.T) {
	for _, c := range []struct {
		in     string
		userNS bool
		want   string
	}{
		{"lowerdir=/l", false, ""}, // one lower without upper: refused below
		{"lowerdir=/l2:/l1,upperdir=/u,workdir=/w", false, "lowerdir=/l2:/l1,upperdir=/u,workdir=/w"},
		{"lowerdir=/l2:/l1,upperdir=/u,workdir=/w", true, "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,userxattr"},
		{"userxattr,workdir=/w,upperdir=/u,lowerdir=/l", false, "lowerdir=/l,upperdir=/u,workdir=/w,userxattr"},
		{"userxattr,lowerdir=/l,upperdir=/u,workdir=/w", true, "lowerdir=/l,upperdir=/u,workdir=/w,userxattr"},
		{"lowerdir=/a:/b", false, "lowerdir=/a:/b"},
	} {
		got, err := ParseOverlay(c.in, c.userNS)
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %q", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q (userns %v): %q, %v; want %q", c.in, c.userNS, got, err, c.want)
		}
	}
	long := "lowerdir=/" + strings.Repeat("x", 4090) + ":/y,upperdir=/u,workdir=/w"
	for in, want := range map[string]string{
		"":                                  "empty value",
		"lowerdir=l,upperdir=/u,workdir=/w": `"l" is not an absolute path`,
		"lowerdir=/l/../x,upperdir=/u,workdir=/w":            `not a clean path`,
		"lowerdir=/l//x,upperdir=/u,workdir=/w":              `not a clean path`,
		"lowerdir=/l,upperdir=/u":                            "upperdir and workdir go together",
		"lowerdir=/l,upperdir=/u,workdir=/w,index=on":        `"index=on" is not one of`,
		"lowerdir=/l,upperdir=/u,workdir=/w,redirect_dir=on": "is not one of",
		"lowerdir=/l,lowerdir=/m,upperdir=/u,workdir=/w":     `"lowerdir" given twice`,
		"lowerdir=/l,upperdir=/u:/v,workdir=/w":              "only allowed between lower directories",
		"lowerdir=/l,upperdir=/u,workdir=/w\\,x":             "contains",
		"lowerdir=/l\\:/m,upperdir=/u,workdir=/w":            "contains",
		"lowerdir=/l,upperdir=/u,workdir=/u":                 "the same directory",
		"lowerdir=/l,upperdir=/l,workdir=/w":                 "upperdir /l is also a lowerdir",
		"lowerdir=/l:/l,upperdir=/u,workdir=/w":              "appears twice",
		"lowerdir=/l::/m,upperdir=/u,workdir=/w":             `"" is not an absolute path`,
		"lowerdir=,upperdir=/u,workdir=/w":                   `"lowerdir" has no path`,
		"upperdir=/u,workdir=/w":                             "lowerdir is required",
		"lowerdir=/l,upperdir=/u,workdir=/w,userxattr=1":     "takes no value",
		"lowerdir=/,upperdir=/u,workdir=/w":                  "the host's / cannot be",
		"lowerdir=/l,upperdir=/u,workdir=/w,":                `"" is not one of`,
		"lowerdir=/l\n,upperdir=/u,workdir=/w":               "contains",
		long:                                                 "more than the 4095 mount(2) takes",
	} {
		if got, err := ParseOverlay(in, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.80q: %.80q, %v; want an error with %q", in, got, err, want)
		}
	}
}
