package integration

import (
	"sort"
	"strings"
	"testing"

	"github.com/berth-containers/berth/internal/nsview"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// `berth ns` attributes to a berth-runtime container exactly the namespace types it
// created, and not the ones it joined or shares with the host.
func TestNamespaceViewAttributesRealContainer(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, `sleep 60`)
	b.Spec.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.UTSNamespace},
		{Type: specs.IPCNamespace}, {Type: specs.NetworkNamespace},
	}
	b.save(t)
	r.mustOK("run", "-d", "-b", b.Dir, "viewed")
	snap, err := nsview.Scan(nsview.Options{StateDirs: nsview.StateDirsWithBerthRoot(r.root)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ns := range snap.Namespaces {
		if ns.Container != nil && !ns.Container.Host && ns.Container.ID == "viewed" {
			got = append(got, ns.Type.String())
			if ns.Container.Runtime != "berth" {
				t.Errorf("%s namespace attributed to runtime %q", ns.Type, ns.Container.Runtime)
			}
		}
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "ipc,mnt,net,pid,uts" {
		t.Errorf("namespaces attributed to the container: %v, want exactly ipc,mnt,net,pid,uts", got)
	}
}
