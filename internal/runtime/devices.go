package runtime

import (
	"github.com/berth-containers/berth/internal/rootfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultDeviceRules are the device cgroup rules every container gets after its own: the
// default nodes the runtime creates in /dev, the console and the pty devices. Unlike runc,
// there is no blanket mknod right, so a container cannot create a node for a disk.
var defaultDeviceRules = func() []specs.LinuxDeviceCgroup {
	var rules []specs.LinuxDeviceCgroup
	add := func(major, minor int64) {
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"})
	}
	for _, d := range rootfs.DefaultDevices {
		add(d.Major, d.Minor)
	}
	add(5, 1)    // /dev/console
	add(5, 2)    // /dev/ptmx
	add(136, -1) // /dev/pts/*
	return rules
}()

// effectiveResources is linux.resources with the device rules the runtime adds: the
// default devices and every node in linux.devices, after the configured rules so that they
// win over a deny-all.
func effectiveResources(spec *specs.Spec) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if spec.Linux.Resources != nil {
		c := *spec.Linux.Resources
		r = &c
	}
	rules := append([]specs.LinuxDeviceCgroup(nil), r.Devices...)
	for _, rule := range defaultDeviceRules {
		rule := rule
		if *rule.Minor < 0 {
			rule.Minor = nil
		}
		rules = append(rules, rule)
	}
	for _, d := range spec.Linux.Devices {
		if d.Type == "p" {
			continue // fifos are not device-controlled
		}
		typ := d.Type
		if typ == "u" {
			typ = "c"
		}
		major, minor := d.Major, d.Minor
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: "rwm"})
	}
	r.Devices = rules
	return r
}
