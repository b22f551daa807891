package network

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// The engine's whole `run --rm` must fit in 30 ms; the network's share is one Attach and
// one Detach after the container (and so its namespace) is gone. This measures both on a
// warm default network, without and with a published port, and fails if the median pair
// takes more than a third of the budget without ports, or the whole budget with one.
// Deleting any nftables object waits for an RCU grace period in the kernel (8-15 ms
// here), which is why ports cost more to remove than to add.
func TestAttachDetachTime(t *testing.T) {
	m := testManager(t)
	warm := newNetns(t)
	mustAttach(t, m, Attachment{ContainerID: "warm", NetnsPath: warm})
	measure := func(ports []PortMapping) (att, det time.Duration) {
		const n = 15
		var as, ds []time.Duration
		for i := 0; i < n; i++ {
			ns := newNetns(t)
			id := fmt.Sprintf("t%02d", i)
			t0 := time.Now()
			if _, err := m.Attach(context.Background(), Attachment{ContainerID: id, Name: id, NetnsPath: ns, Ports: ports}); err != nil {
				t.Fatal(err)
			}
			t1 := time.Now()
			// The container exits: its namespace goes with its last reference.
			if err := unix.Unmount(ns, unix.MNT_DETACH); err != nil {
				t.Fatal(err)
			}
			t2 := time.Now()
			if err := m.Detach(id); err != nil {
				t.Fatal(err)
			}
			as, ds = append(as, t1.Sub(t0)), append(ds, time.Since(t2))
		}
		return median(as), median(ds)
	}
	a0, d0 := measure(nil)
	ports, _ := ParsePublish("18090:80")
	a1, d1 := measure(ports)
	var live []time.Duration
	for i := 0; i < 5; i++ {
		ns := newNetns(t)
		mustAttach(t, m, Attachment{ContainerID: "live", NetnsPath: ns})
		t0 := time.Now()
		if err := m.Detach("live"); err != nil {
			t.Fatal(err)
		}
		live = append(live, time.Since(t0))
	}
	t.Logf("median attach/detach: no port %v/%v; one port %v/%v; detach while the namespace lives (veth deleted) %v",
		a0, d0, a1, d1, median(live))
	if a0+d0 > 10*time.Millisecond {
		t.Errorf("attach+detach without ports: %v, over 10 ms (a third of run --rm's 30 ms)", a0+d0)
	}
	if a1+d1 > 30*time.Millisecond {
		t.Errorf("attach+detach with a port: %v, over run --rm's 30 ms", a1+d1)
	}
	if err := m.Detach("warm"); err != nil {
		t.Fatal(err)
	}
}
