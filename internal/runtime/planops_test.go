package runtime

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The plan's operation numbers are written twice, in plan.go and in nsenter's plan.c: every
// op constant here must have the same number as its OP_ twin there, and the other way round.
func TestPlanOpNumbersMatchPlanC(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "plan.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	goOps := map[string]int{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if len(v.Names) != 1 || len(v.Values) != 1 || !strings.HasPrefix(v.Names[0].Name, "op") {
				continue
			}
			lit, ok := v.Values[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.INT {
				continue
			}
			n, _ := strconv.Atoi(lit.Value)
			// opMountHost and OP_MOUNT_HOST are both MOUNTHOST.
			goOps[strings.ToUpper(strings.TrimPrefix(v.Names[0].Name, "op"))] = n
		}
	}
	src, err := os.ReadFile("../namespaces/nsenter/plan.c")
	if err != nil {
		t.Fatal(err)
	}
	cOps := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(OP_[A-Z_]+) = (\d+),`).FindAllStringSubmatch(string(src), -1) {
		if m[1] != "OP_MAX" {
			cOps[strings.ReplaceAll(strings.TrimPrefix(m[1], "OP_"), "_", "")], _ = strconv.Atoi(m[2])
		}
	}
	if len(goOps) < 30 || len(cOps) < 30 {
		t.Fatalf("found %d ops in plan.go and %d in plan.c: the parsing is broken", len(goOps), len(cOps))
	}
	for name, n := range goOps {
		if c, ok := cOps[name]; !ok || c != n {
			t.Errorf("plan.go's op%s is %d; plan.c has %d (present: %v)", name, n, c, ok)
		}
	}
	for name := range cOps {
		if _, ok := goOps[name]; !ok {
			t.Errorf("plan.c's OP_%s has no twin in plan.go", name)
		}
	}
}
