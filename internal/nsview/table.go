package nsview

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Column is an output column of `berth ns`: lsns's columns plus CONTAINER, CID and RUNTIME.
type Column struct {
	Name string
	Help string
	// whint, right, trunc and number mirror util-linux's column hints so that widths,
	// alignment and JSON types come out as lsns prints them.
	whint  int
	right  bool
	trunc  bool
	number bool
}

// Columns lists every column in lsns's order, berth's own last.
var Columns = []Column{
	{Name: "NS", Help: "namespace identifier (inode number)", whint: 10, right: true, number: true},
	{Name: "TYPE", Help: "kind of namespace", whint: 5},
	{Name: "PATH", Help: "path to the namespace"},
	{Name: "NPROCS", Help: "number of processes in the namespace", whint: 5, right: true, number: true},
	{Name: "PID", Help: "lowest PID in the namespace", whint: 5, right: true, number: true},
	{Name: "PPID", Help: "PPID of the PID", whint: 5, right: true, number: true},
	{Name: "COMMAND", Help: "command line of the PID", trunc: true},
	{Name: "UID", Help: "UID of the PID", right: true, number: true},
	{Name: "USER", Help: "username of the PID"},
	{Name: "NETNSID", Help: "namespace ID as used by network subsystem", right: true},
	{Name: "NSFS", Help: "nsfs mountpoint (usually used network subsystem)"},
	{Name: "PNS", Help: "parent namespace identifier (inode number)", whint: 10, right: true, number: true},
	{Name: "ONS", Help: "owner namespace identifier (inode number)", whint: 10, right: true, number: true},
	{Name: "CONTAINER", Help: "container that created the namespace, or host"},
	{Name: "CID", Help: "full id of that container"},
	{Name: "RUNTIME", Help: "runtime that runs that container"},
}

func columnIndex(name string) int {
	for i, c := range Columns {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

// DefaultColumns are lsns's default columns plus CONTAINER before COMMAND; listing only
// network namespaces adds NETNSID and NSFS, as lsns does.
func DefaultColumns(netOnly bool) []string {
	cols := []string{"NS", "TYPE", "NPROCS", "PID", "USER"}
	if netOnly {
		cols = append(cols, "NETNSID", "NSFS")
	}
	return append(cols, "CONTAINER", "COMMAND")
}

// AllColumns names every column, for --output-all.
func AllColumns() []string {
	out := make([]string, len(Columns))
	for i, c := range Columns {
		out[i] = c.Name
	}
	return out
}

// ParseColumns reads an -o list. A leading "+" appends to defaults, as in util-linux.
func ParseColumns(spec string, defaults []string) ([]string, error) {
	var out []string
	if rest, ok := strings.CutPrefix(spec, "+"); ok {
		out = append(out, defaults...)
		spec = rest
	}
	for _, name := range strings.Split(spec, ",") {
		if name == "" {
			continue
		}
		i := columnIndex(name)
		if i < 0 {
			return nil, fmt.Errorf("unknown column: %s", name)
		}
		out = append(out, Columns[i].Name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no columns in %q", spec)
	}
	return out, nil
}

// Tree is how rows nest.
type Tree int

const (
	// TreeNone prints a flat list.
	TreeNone Tree = iota
	// TreeProcess nests a namespace under the row of its lowest pid's parent process.
	TreeProcess
	// TreeOwner nests namespaces under their owning user namespace.
	TreeOwner
	// TreeParent nests pid and user namespaces under their parent.
	TreeParent
)

// ParseTree reads -T's argument; empty means owner, as in lsns.
func ParseTree(s string) (Tree, error) {
	switch s {
	case "", "owner":
		return TreeOwner, nil
	case "parent":
		return TreeParent, nil
	case "process":
		return TreeProcess, nil
	}
	return TreeNone, fmt.Errorf("unknown tree type: %s (want owner, parent or process)", s)
}

// NeedFor is what a Scan must gather to print these columns in this tree.
func NeedFor(cols []string, tree Tree) Need {
	var n Need
	for _, c := range cols {
		switch c {
		case "PPID", "COMMAND", "UID", "USER":
			n |= NeedProcess
		case "NETNSID":
			n |= NeedNetNSID
		case "NSFS":
			n |= NeedNSFS
		case "PNS", "ONS":
			n |= NeedRelations
		}
	}
	switch tree {
	case TreeProcess:
		n |= NeedProcess
	case TreeOwner, TreeParent:
		n |= NeedGhosts
	}
	return n
}

// ListOptions shape the namespace list.
type ListOptions struct {
	Columns []string
	Tree    Tree
	JSON    bool
	Raw     bool
	// NoHeadings, NoTruncate and NoWrap are lsns's -n, -u and -W.
	NoHeadings bool
	NoTruncate bool
	NoWrap     bool
	// Task keeps only the namespaces this pid is in (lsns -p); 0 keeps all.
	Task int
	// Only keeps only these inodes when not nil (berth ns --container).
	Only map[uint64]bool
	// Persistent keeps only namespaces that no process is in.
	Persistent bool
	// ASCII draws the tree with ASCII characters, as util-linux does outside UTF-8 locales.
	ASCII bool
	// TermWidth truncates COMMAND to fit a terminal this wide; 0 never truncates.
	TermWidth int
}

type cell struct {
	s  string
	ok bool
}

type row struct {
	cells    []cell
	children []*row
	last     bool // last child of its parent, for the tree art
}

// WriteList prints the snapshot's namespaces as lsns does (table, raw or JSON; flat or as
// a tree).
func (s *Snapshot) WriteList(w io.Writer, o ListOptions) error {
	cols := make([]int, len(o.Columns))
	for i, name := range o.Columns {
		if cols[i] = columnIndex(name); cols[i] < 0 {
			return fmt.Errorf("unknown column: %s", name)
		}
	}
	var task [numTypes]uint64
	if o.Task != 0 {
		task, _ = s.NamespacesOf(o.Task)
	}
	keep := func(ns *Namespace) bool {
		if o.Task != 0 && (task[ns.Type] != ns.Inode || ns.Inode == 0) {
			return false
		}
		if o.Persistent && ns.NProcs != 0 {
			return false
		}
		if o.Only != nil && !o.Only[ns.Inode] {
			return false
		}
		return true
	}
	users := make(map[int]string)
	lines := make(map[*Namespace]*row)
	procLine := make(map[int]*row) // the latest row of each pid, for TreeProcess
	var roots []*row
	add := func(ns *Namespace, parent *row) *row {
		r := &row{cells: s.cells(ns, ns.Pid, cols, users, o)}
		if parent != nil {
			parent.children = append(parent.children, r)
		} else {
			roots = append(roots, r)
		}
		lines[ns] = r
		return r
	}
	var show func(ns *Namespace, depth int)
	show = func(ns *Namespace, depth int) {
		var parent *row
		related := func(ino uint64) *Namespace {
			if ino == 0 || ino == ns.Inode || depth > 64 {
				return nil
			}
			return s.byIno[ino]
		}
		switch o.Tree {
		case TreeOwner:
			if owner := related(ns.Owner); owner != nil {
				if lines[owner] == nil {
					show(owner, depth+1)
				}
				parent = lines[owner]
			}
		case TreeParent:
			if p := related(ns.Parent); p != nil {
				if lines[p] == nil {
					show(p, depth+1)
				}
				parent = lines[p]
			} else if owner := related(ns.Owner); owner != nil && lines[owner] == nil {
				show(owner, depth+1)
			}
		case TreeProcess:
			if ns.Pid != 0 {
				if p := s.Process(ns.Pid); p.ok {
					parent = procLine[p.PPid]
				}
			}
		}
		if lines[ns] != nil {
			return // drawn while drawing a relative
		}
		r := add(ns, parent)
		if ns.Pid != 0 {
			procLine[ns.Pid] = r
		}
	}
	for _, ns := range s.Namespaces {
		if keep(ns) && lines[ns] == nil {
			show(ns, 0)
		}
	}
	return writeRows(w, cols, roots, o)
}

func writeRows(w io.Writer, cols []int, roots []*row, o ListOptions) error {
	markLast(roots)
	treeCol := -1
	for i, c := range cols {
		if (o.Tree == TreeProcess && Columns[c].Name == "COMMAND") ||
			((o.Tree == TreeOwner || o.Tree == TreeParent) && Columns[c].Name == "NS") {
			treeCol = i
		}
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	switch {
	case o.JSON:
		writeJSON(bw, cols, roots, o.Tree != TreeNone)
	case o.Raw:
		writeRaw(bw, cols, roots, treeCol, o)
	default:
		writeTable(bw, cols, roots, treeCol, o)
	}
	return bw.Flush()
}

// ParseProcessColumns reads -o for the processes of one namespace (lsns <namespace>).
func ParseProcessColumns(spec string, defaults []string) ([]string, error) {
	return ParseColumns(spec, defaults)
}

// WriteProcesses prints the processes in ns, one row each, as lsns <namespace> does; in
// the process tree a child nests under its parent when both are in ns.
func (s *Snapshot) WriteProcesses(w io.Writer, ns *Namespace, o ListOptions) error {
	cols := make([]int, len(o.Columns))
	for i, name := range o.Columns {
		if cols[i] = columnIndex(name); cols[i] < 0 {
			return fmt.Errorf("unknown column: %s", name)
		}
	}
	pids := s.Pids(ns)
	in := make(map[int]bool, len(pids))
	for _, p := range pids {
		in[p] = true
	}
	users := make(map[int]string)
	lines := make(map[int]*row)
	var roots []*row
	var show func(pid, depth int)
	show = func(pid, depth int) {
		var parent *row
		if o.Tree == TreeProcess {
			if p := s.Process(pid); p.ok && in[p.PPid] && p.PPid != pid && depth < 4096 {
				if lines[p.PPid] == nil {
					show(p.PPid, depth+1)
				}
				parent = lines[p.PPid]
			}
		}
		if lines[pid] != nil {
			return
		}
		r := &row{cells: s.cells(ns, pid, cols, users, o)}
		if parent != nil {
			parent.children = append(parent.children, r)
		} else {
			roots = append(roots, r)
		}
		lines[pid] = r
	}
	for _, pid := range pids {
		if lines[pid] == nil {
			show(pid, 0)
		}
	}
	return writeRows(w, cols, roots, o)
}

func markLast(rows []*row) {
	for i, r := range rows {
		r.last = i == len(rows)-1
		markLast(r.children)
	}
}

func (s *Snapshot) cells(ns *Namespace, pid int, cols []int, users map[int]string, o ListOptions) []cell {
	out := make([]cell, len(cols))
	var p *Process
	if pid != 0 {
		p = s.Process(pid)
	}
	num := func(v uint64) cell { return cell{strconv.FormatUint(v, 10), true} }
	for i, c := range cols {
		switch Columns[c].Name {
		case "NS":
			out[i] = num(ns.Inode)
		case "TYPE":
			out[i] = cell{ns.Type.String(), true}
		case "PATH":
			if p != nil {
				out[i] = cell{"/proc/" + strconv.Itoa(pid) + "/ns/" + ns.Type.String(), true}
			}
		case "NPROCS":
			out[i] = num(uint64(ns.NProcs))
		case "PID":
			if p != nil {
				out[i] = num(uint64(pid))
			}
		case "PPID":
			if p != nil && p.ok {
				out[i] = num(uint64(p.PPid))
			}
		case "COMMAND":
			if p != nil && p.Command != "" {
				out[i] = cell{p.Command, true}
			}
		case "UID", "USER":
			uid := ns.ownerUID
			if p != nil {
				if uid = p.UID; uid < 0 {
					break
				}
			}
			if Columns[c].Name == "UID" {
				out[i] = cell{strconv.Itoa(uid), true}
			} else {
				out[i] = cell{userName(users, uid), true}
			}
		case "NETNSID":
			if p != nil && ns.Type == Net {
				switch {
				case ns.NetNSID == NetNSIDUnassigned:
					out[i] = cell{"unassigned", true}
				case ns.NetNSID >= 0:
					out[i] = cell{strconv.Itoa(ns.NetNSID), true}
				}
			}
		case "NSFS":
			if len(ns.NSFS) > 0 {
				sep := ","
				if o.JSON && !o.NoWrap {
					sep = "\n"
				}
				out[i] = cell{strings.Join(ns.NSFS, sep), true}
			}
		case "PNS":
			out[i] = num(ns.Parent)
		case "ONS":
			out[i] = num(ns.Owner)
		case "CONTAINER":
			if ns.Container != nil {
				out[i] = cell{ns.Container.String(), true}
			}
		case "CID":
			if ns.Container != nil && !ns.Container.Host {
				out[i] = cell{ns.Container.ID, true}
			}
		case "RUNTIME":
			if ns.Container != nil && !ns.Container.Host {
				out[i] = cell{ns.Container.Runtime, true}
			}
		}
	}
	return out
}

func userName(cache map[int]string, uid int) string {
	if n, ok := cache[uid]; ok {
		return n
	}
	n := strconv.Itoa(uid)
	if u, err := user.LookupId(n); err == nil {
		n = u.Username
	}
	cache[uid] = n
	return n
}

// walk visits rows depth-first, passing the tree art that precedes each row.
func walk(rows []*row, ascii bool, fn func(r *row, art string)) {
	vert, branch, right := "│ ", "├─", "└─"
	if ascii {
		vert, branch, right = "| ", "|-", "`-"
	}
	var rec func(rows []*row, indent string, depth int)
	rec = func(rows []*row, indent string, depth int) {
		for _, r := range rows {
			art, next := "", ""
			if depth > 0 {
				if r.last {
					art, next = indent+right, indent+"  "
				} else {
					art, next = indent+branch, indent+vert
				}
			}
			fn(r, art)
			rec(r.children, next, depth+1)
		}
	}
	rec(rows, "", 0)
}

func writeTable(w *bufio.Writer, cols []int, roots []*row, treeCol int, o ListOptions) {
	type line struct {
		cells []string
	}
	utf := !o.ASCII
	var out []line
	walk(roots, o.ASCII, func(r *row, art string) {
		l := line{cells: make([]string, len(cols))}
		for i, c := range r.cells {
			v := ""
			if c.ok {
				v = safeEncode(c.s, utf)
			}
			if i == treeCol {
				v = art + v
			}
			l.cells[i] = v
		}
		out = append(out, l)
	})
	if len(out) == 0 {
		return
	}
	widths := make([]int, len(cols))
	for i, c := range cols {
		col := Columns[c]
		min := utf8.RuneCountInString(col.Name)
		wmax := 0
		for _, l := range out {
			if n := utf8.RuneCountInString(l.cells[i]); n > wmax {
				wmax = n
			}
		}
		// libsmartcols: grow to the header, else to the width hint when both are below it.
		switch {
		case wmax < min:
			wmax = min
		case col.whint >= 1 && wmax < col.whint && min < col.whint:
			wmax = col.whint
		}
		widths[i] = wmax
	}
	if o.TermWidth > 0 && !o.NoTruncate {
		total := len(cols) - 1
		for _, wd := range widths {
			total += wd
		}
		for i, c := range cols {
			if total > o.TermWidth && Columns[c].trunc {
				cut := total - o.TermWidth
				keep := utf8.RuneCountInString(Columns[c].Name)
				if widths[i]-cut > keep {
					keep = widths[i] - cut
				}
				total -= widths[i] - keep
				widths[i] = keep
			}
		}
	}
	right := func(i int) bool {
		return Columns[cols[i]].right && i != treeCol
	}
	emit := func(cells []string) {
		for i, v := range cells {
			n := utf8.RuneCountInString(v)
			if n > widths[i] {
				v = truncateRunes(v, widths[i])
				n = widths[i]
			}
			if i > 0 {
				w.WriteByte(' ')
			}
			pad := widths[i] - n
			if right(i) {
				writeSpaces(w, pad)
				w.WriteString(v)
			} else {
				w.WriteString(v)
				if i < len(cells)-1 {
					writeSpaces(w, pad)
				}
			}
		}
		w.WriteByte('\n')
	}
	if !o.NoHeadings {
		head := make([]string, len(cols))
		for i, c := range cols {
			head[i] = Columns[c].Name
		}
		emit(head)
	}
	for _, l := range out {
		emit(l.cells)
	}
}

func truncateRunes(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

func writeSpaces(w *bufio.Writer, n int) {
	for ; n > 0; n-- {
		w.WriteByte(' ')
	}
}

// safeEncode hex-escapes what a terminal should not be sent: control characters, and
// outside UTF-8 locales every non-ASCII byte.
func safeEncode(s string, utf bool) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || (c >= 0x80 && !utf) {
			clean = false
			break
		}
	}
	if clean && (!utf || utf8.ValidString(s)) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError && (r >= 0x20 && r < 0x7f || utf && r >= 0x80 && unicode.IsPrint(r)) {
			b.WriteString(s[i : i+size])
		} else {
			for k := 0; k < size; k++ {
				fmt.Fprintf(&b, `\x%02x`, s[i+k])
			}
		}
		i += size
	}
	return b.String()
}

// rawEncode is libsmartcols's raw-mode escaping: everything but printable, non-space
// ASCII, and the backslash itself, becomes \xHH.
func rawEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '\\' {
			fmt.Fprintf(&b, `\x%02x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func writeRaw(w *bufio.Writer, cols []int, roots []*row, treeCol int, o ListOptions) {
	if !o.NoHeadings && len(roots) > 0 {
		for i, c := range cols {
			if i > 0 {
				w.WriteByte(' ')
			}
			w.WriteString(Columns[c].Name)
		}
		w.WriteByte('\n')
	}
	walk(roots, o.ASCII, func(r *row, art string) {
		for i, c := range r.cells {
			if i > 0 {
				w.WriteByte(' ')
			}
			v := c.s
			if i == treeCol {
				v = art + v
			}
			if c.ok || i == treeCol {
				w.WriteString(rawEncode(v))
			}
		}
		w.WriteByte('\n')
	})
}

// writeJSON prints the layout libsmartcols gives lsns -J, nesting children under
// "children" in tree views.
func writeJSON(w *bufio.Writer, cols []int, roots []*row, tree bool) {
	w.WriteString("{\n   \"namespaces\": [\n")
	if len(roots) == 0 {
		w.WriteString("\n")
	}
	var obj func(rows []*row, indent int)
	obj = func(rows []*row, indent int) {
		pad := strings.Repeat(" ", indent)
		for i, r := range rows {
			if i == 0 {
				w.WriteString(pad + "{\n")
			} else {
				w.WriteString(pad + "},{\n")
			}
			for k, c := range cols {
				w.WriteString(pad + "   \"")
				w.WriteString(strings.ToLower(Columns[c].Name))
				w.WriteString("\": ")
				cv := r.cells[k]
				switch {
				case !cv.ok:
					w.WriteString("null")
				case Columns[c].number:
					w.WriteString(cv.s)
				default:
					writeJSONString(w, cv.s)
				}
				if k < len(cols)-1 || (tree && len(r.children) > 0) {
					w.WriteByte(',')
				}
				w.WriteByte('\n')
			}
			if tree && len(r.children) > 0 {
				w.WriteString(pad + "   \"children\": [\n")
				obj(r.children, indent+6)
				w.WriteString(pad + "   ]\n")
			}
		}
		if len(rows) > 0 {
			w.WriteString(pad + "}\n")
		}
	}
	obj(roots, 6)
	w.WriteString("   ]\n}\n")
}

func writeJSONString(w *bufio.Writer, s string) {
	w.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			w.WriteString(`\"`)
		case '\\':
			w.WriteString(`\\`)
		case '\n':
			w.WriteString(`\n`)
		case '\t':
			w.WriteString(`\t`)
		case '\r':
			w.WriteString(`\r`)
		case '\b':
			w.WriteString(`\b`)
		case '\f':
			w.WriteString(`\f`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(w, `\u%04x`, c)
			} else {
				w.WriteByte(c)
			}
		}
	}
	w.WriteByte('"')
}

// UTF8Locale tells whether the environment's locale is UTF-8, as util-linux decides
// between box-drawing and ASCII tree art.
func UTF8Locale() bool {
	for _, v := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if s := os.Getenv(v); s != "" {
			s = strings.ToLower(s)
			return strings.Contains(s, "utf-8") || strings.Contains(s, "utf8")
		}
	}
	return false
}
