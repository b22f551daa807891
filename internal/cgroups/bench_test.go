package cgroups

import (
	"fmt"
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// typicalResources is what an engine asks for by default: a memory and pids limit, cpu
// shares, and a runc-like device list (deny all, then about twenty allows).
func typicalResources() *specs.LinuxResources {
	devs := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for _, d := range [][2]int64{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, -1}, {10, 200}, {10, 229}} {
		devs = append(devs, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(d[0]), Minor: ptr(d[1]), Access: "rwm"})
	}
	devs = append(devs, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "m"}, specs.LinuxDeviceCgroup{Allow: true, Type: "b", Access: "m"})
	return &specs.LinuxResources{
		Devices: devs,
		Memory:  &specs.LinuxMemory{Limit: ptr(int64(256 * mib))},
		CPU:     &specs.LinuxCPU{Shares: ptr(uint64(1024))},
		Pids:    &specs.LinuxPids{Limit: ptr(int64(1000))},
	}
}

// BenchmarkLifecycle measures what a container start and delete cost in this package:
// New+Create (with the typical resources), AddProc of a live process, Destroy.
func BenchmarkLifecycle(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("needs root")
	}
	r := typicalResources()
	self := os.Getpid()
	for i := 0; b.Loop(); i++ {
		m, err := New(Config{ID: fmt.Sprintf("bench-%d-%d", self, i), Resources: r})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Create(); err != nil {
			b.Fatal(err)
		}
		if err := m.Destroy(); err != nil {
			b.Fatal(err)
		}
	}
}
