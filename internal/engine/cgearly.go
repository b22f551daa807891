package engine

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine/monitor"
	"github.com/berth-containers/berth/internal/runtime"
)

// early holds the cgroups being made ahead of their containers' create, by id
// (runtime.EarlyCgroup): `berth run` starts its container's cgroup as soon as it has picked
// the id, so that the kernel's wait for cgroup_mutex passes while the image, the snapshot,
// the monitor and the spec are made.
type earlyCgroups struct {
	mu sync.Mutex
	m  map[string]*runtime.EarlyCgroup
}

// startEarlyCgroup begins the cgroup of the new container id, when the built-in runtime
// will create it as root.
func (e *Engine) startEarlyCgroup(id string, hc *HostConfig) {
	if e.rootless || !isBuiltinRuntime(hc.Runtime) {
		return
	}
	e.keepEarlyCgroup(id, runtime.StartEarlyCgroup(id))
}

func (e *Engine) keepEarlyCgroup(id string, ec *runtime.EarlyCgroup) {
	if ec == nil {
		return
	}
	e.early.mu.Lock()
	if e.early.m == nil {
		e.early.m = map[string]*runtime.EarlyCgroup{}
	}
	e.early.m[id] = ec
	e.early.mu.Unlock()
}

// takeEarlyCgroup returns the cgroup made ahead for id, if any, for its create to adopt.
func (e *Engine) takeEarlyCgroup(id string) *runtime.EarlyCgroup {
	e.early.mu.Lock()
	defer e.early.mu.Unlock()
	ec := e.early.m[id]
	delete(e.early.m, id)
	return ec
}

// releaseEarlyCgroup removes the cgroup made ahead for id if no create took it.
func (e *Engine) releaseEarlyCgroup(id string) {
	e.takeEarlyCgroup(id).Release()
}

func isBuiltinRuntime(name string) bool {
	return name == "" || name == "berth" || name == "berth-runtime"
}

// begun is what BeginRun set going for this process's `berth run`.
var begun struct {
	once sync.Once
	done chan struct{}
	run  *begunRun
}

type begunRun struct {
	root string   // the engine root it was made in
	id   string   // the container's id
	tmp  string   // its .creating- directory
	dir  *os.File // that directory, locked
	cg   *runtime.EarlyCgroup
	mon  *preMonitor
}

// preMonitor is a container's berth-monitor started by BeginRun, waiting for the rest of
// its arguments (monitor.LateArgs): its start (a fork and exec here, the Go runtime's start
// there) overlaps the command's own instead of following the container's creation.
//
// It is started beside the create, which needs none of it: wait says when it runs. Its
// working directory is the .creating- one, so the create renames that only after wait.
type preMonitor struct {
	ready  chan struct{} // closed once it started, or failed to (ok false)
	ok     bool
	link   *monitorLink
	client net.Conn // our end of its client-fd (a session, if the run attaches)
	pid    int
	start  uint64
}

// wait waits for the monitor's start, and says whether it started.
func (p *preMonitor) wait() bool {
	if p == nil {
		return false
	}
	<-p.ready
	return p.ok
}

// close makes the monitor give up (it reads end of file where it waits for its arguments).
func (p *preMonitor) close() {
	if p.wait() {
		p.link.close()
		p.client.Close()
	}
}

// BeginRun starts, as `berth run` begins, the work of its container's start that waits for
// the kernel rather than for the CPU, while the command line is parsed and the image found
// (the cgroup attach's wait, where there is one, began in package gostart's C
// constructor): it picks the container's id, makes its (locked) .creating- directory and
// its cgroup, then starts its monitor (preMonitor). Create takes them over (CreateOptions.
// StartAfter); a process killed meanwhile leaves a .creating- directory, which the next
// listing removes with the cgroup, and a monitor that exits when its socket closes. Only
// as root with the built-in runtime; root is the engine root (DefaultRoot when empty).
func BeginRun(root string) {
	begun.once.Do(func() {
		begun.done = make(chan struct{})
		go func() {
			trace("begin run")
			b := beginRun(root)
			begun.run = b
			trace("begun")
			// The create goes on with the directory and the cgroup; this goroutine, already
			// running, forks and execs the monitor meanwhile (a goroutine of its own waited
			// behind the cgroup's mkdirs, 0.5 ms).
			close(begun.done)
			if b != nil {
				b.mon.spawn(b.root, b.tmp, b.id)
			}
			// Not beside the monitor's fork and exec: that would take the CPU from them,
			// and the create waits for the monitor before it is done.
			warmJSON()
		}()
	})
}

func beginRun(root string) *begunRun {
	if os.Geteuid() != 0 || Rootless() {
		return nil
	}
	if root == "" {
		root = DefaultRoot()
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil
	}
	id, err := newID()
	if err != nil {
		return nil
	}
	tmp := filepath.Join(abs, containersDir, creatingPfx+id)
	if os.Mkdir(tmp, 0o700) != nil {
		return nil // a new root, say: Create makes everything
	}
	df, err := os.Open(tmp)
	if err == nil {
		if err = flock(df, unix.LOCK_EX); err != nil {
			df.Close()
		}
	}
	if err != nil {
		os.Remove(tmp)
		return nil
	}
	return &begunRun{root: abs, id: id, tmp: tmp, dir: df, cg: runtime.StartEarlyCgroup(id),
		mon: &preMonitor{ready: make(chan struct{})}}
}

// spawn starts the container's monitor in its .creating- directory (its working directory
// stays the container's once renamed), to be given its arguments at the start.
func (p *preMonitor) spawn(root, dir, id string) {
	defer close(p.ready)
	rroot, err := filepath.Abs(DefaultRuntimeRoot())
	if err != nil {
		return
	}
	e := &Engine{Root: root, RuntimeRoot: rroot}
	link, linkTheirs, err := newMonitorLink()
	if err != nil {
		return
	}
	defer linkTheirs.Close()
	conn, theirs, err := socketpair()
	if err != nil {
		link.close()
		return
	}
	defer theirs.Close()
	trace("monitor fork")
	pid, start, err := e.startMonitor(dir, id, []string{monitor.LateArgs, "spawn-fd=3", "client-fd=4"}, []*os.File{linkTheirs, theirs})
	trace("monitor started")
	if err != nil {
		link.close()
		conn.Close()
		return
	}
	p.link, p.client, p.pid, p.start, p.ok = link, conn, pid, start, true
}

// takeBegun returns what BeginRun made, if it was for this engine's root; it is then the
// caller's to use or drop.
func (e *Engine) takeBegun() *begunRun {
	if begun.done == nil {
		return nil
	}
	<-begun.done
	b := begun.run
	begun.run = nil
	if b != nil && b.root != e.Root {
		b.drop()
		return nil
	}
	return b
}

// drop undoes what BeginRun made.
func (b *begunRun) drop() {
	if b == nil {
		return
	}
	b.mon.close()
	b.cg.Release()
	os.RemoveAll(b.tmp)
	b.dir.Close()
}

// DropBegun undoes what BeginRun made if no Create took it (a command line that failed
// to parse, say).
func DropBegun() {
	if begun.done == nil {
		return
	}
	<-begun.done
	b := begun.run
	begun.run = nil
	b.drop()
}

// warmJSON has encoding/json build, on a core the command's start leaves idle, what the
// run will need on its path: the encoders of the records it writes, and the field lists
// that the decoders of the image config and the records share with them. Built on first
// use they cost 0.2-0.4 ms of the run's own time.
func warmJSON() {
	for _, v := range []any{&Container{}, &State{}, &runtime.Record{}, &v1.ConfigFile{}} {
		json.Marshal(v)
	}
}
