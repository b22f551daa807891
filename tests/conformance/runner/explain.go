package main

// note explains a program's result for berth-runtime.
type note struct {
	Text string
	// Deliberate marks a program berth-runtime fails on purpose although runc or crun
	// passes it: the note says what berth refuses and why.
	Deliberate bool
	// Racy marks a program whose verdict depends on timing for every runtime: a failure is
	// not held against berth when runc or crun happened to pass.
	Racy bool
}

// notes says, for each program berth-runtime fails here, why; and for a few it passes, what
// was fixed to get there. The runner refuses a berth failure without a note, and a failure
// where runc or crun passes unless the note is Deliberate.
var notes = map[string]note{
	// Faults of the suite itself: no runtime can pass these as written.
	"hooks":           {Text: "Suite bug: it expects the hooks' output to read `post-start1` where its own hooks write `post-start1 called`, so it fails every runtime; the order itself is right (`TestHooksOrderStateArgsEnv`)."},
	"hooks_stdin":     {Text: "Suite bugs: it reads the container's pid with `state` after `true` has exited (stopped: pid 0) and compares it with the pid the hooks got, and it wants status `created` for prestart hooks, which since runtime-spec 1.1 run during `create`, while the container is `creating` (runc says the same). The state on stdin is otherwise right (`TestHooksOrderStateArgsEnv`)."},
	"misc_props":      {Text: "Suite bug: its first case runs `/runtimetest` in a bundle it never copied runtimetest into, so create fails for every runtime (\"/runtimetest: no such file\"). The second case (unknown properties ignored) passes."},
	"pidfile":         {Text: "Suite race: the container runs `true`, which has exited before the program sends `kill KILL`, and killing a stopped container is an error, as the spec requires (runc and crun fail alike). The pid file itself is checked and right."},
	"prestart":        {Text: "Spec version: runtime-spec 1.0.2 ran prestart hooks after `start`; from 1.1 on they run during `create`, once the namespaces exist, which is what berth (spec 1.3.0), runc and crun do. The program checks the 1.0.2 order."},
	"process_rlimits": {Text: "Suite artefact: runtimetest, built with a current Go, raises its own soft RLIMIT_NOFILE at startup (Go does since 1.19), so it reads back 3999 instead of the 3000 the runtime set; the 17 other limits match, and so does the hard one. runc and crun fail identically."},
	"start":           {Text: "Its last case removes `process` and expects `create` to succeed and `start` to fail; berth, like runc and crun, refuses a config without `process` at `create` already (`process is missing`)."},
	"delete":          {Text: "It wants `delete` of a *created* (never started) container to fail; berth, like runc and crun, deletes it, killing the waiting init: containerd and Podman rely on this to clean up after a failed `start`. `delete` of a running container is refused (the other cases pass)."},

	// This host: the kernel or its configuration lacks what the program needs.
	"linux_cgroups_blkio":            {Text: "Host: `blkio.leaf_weight` does not exist on this kernel (CFQ, its only user, was removed in Linux 5.0); berth refuses the setting with that reason instead of dropping it. runc and crun fail to create too."},
	"linux_cgroups_relative_blkio":   {Text: "Host: as `linux_cgroups_blkio` (no `blkio.leaf_weight` on Linux 5.0 and later)."},
	"linux_cgroups_hugetlb":          {Text: "Host: there is no cgroup v1 hugetlb hierarchy here; hugetlb is only in the cgroup2 hierarchy at `/sys/fs/cgroup/unified`, where berth puts the limit. The program looks for it in v1 and fails; runc and crun cannot create the container at all."},
	"linux_cgroups_relative_hugetlb": {Text: "Host: as `linux_cgroups_hugetlb` (hugetlb only in the cgroup2 hierarchy; the program reads v1)."},
	"linux_cgroups_memory":           {Text: "Host kernel: `memory.kmem.limit_in_bytes` is accepted but ignored since Linux 5.16 (kernel memory accounting has no separate limit any more), so the 6 `memory kernel` points read back the unlimited value; the 48 others pass. crun fails the same 6, runc 12."},
	"linux_cgroups_relative_memory":  {Text: "Host kernel: as `linux_cgroups_memory` (kernel memory limits are ignored since Linux 5.16)."},
	"linux_cgroups_network":          {Text: "Host: no net_cls/net_prio hierarchy is mounted, so `linux.resources.network` cannot be applied; berth refuses it by name rather than ignore it. runc and crun fail to create too."},
	"linux_cgroups_relative_network": {Text: "Host: as `linux_cgroups_network` (no net_cls/net_prio hierarchy)."},
	"linux_process_apparmor_profile": {Text: "Host: AppArmor is not enabled, and berth refuses a profile it cannot apply rather than run the container unconfined (docs/security.md). runc and crun fail too."},
	"linux_rootfs_propagation":       {Text: "Host: its config asks for every capability, CAP_SYS_RESOURCE included, which this root does not hold, so setting the capability sets fails (`capset: operation not permitted`) for every runtime before propagation is looked at; propagation itself is tested in tests/integration (`TestRootfsPropagationAndCgroupView`)."},
	"process_capabilities":           {Text: "Host: as `linux_rootfs_propagation`: the config asks for all capabilities, and CAP_SYS_RESOURCE is not in this root's bounding set, so capset fails for every runtime."},

	// berth differs from runc or crun on purpose.
	"linux_mount_label": {Deliberate: true, Text: "SELinux is not enabled here, and berth refuses an SELinux mount label it cannot apply, as it refuses AppArmor profiles and process labels (docs/security.md: a container must not run with less confinement than asked). crun ignores the label; runc passes it to the kernel, which rejects `context=`, and fails. Docker and Podman send no label on such a host."},
	"linux_ns_itype":    {Deliberate: true, Text: "It lists no namespace at all, so the container would share the host's mount namespace. berth needs a mount namespace of the container's own to build the rootfs and refuses, saying so. runc \"passes\" by doing the container's mounts (`/proc`, `/dev`, `/sys`, cgroups) in the host's mount namespace and leaving them there after `delete` (the runner unmounts them); crun fails."},
	"linux_ns_path":     {Deliberate: true, Text: "The ipc, net, pid and uts cases pass (uts since berth allows a hostname in a UTS namespace joined by path: `TestHostnameInJoinedUTSNamespace`). The mount case joins another process's mount namespace: berth refuses, as it builds the rootfs only in a mount namespace of the container's own; joining one would mount into, and pivot_root, another process's view. No client asks for it."},

	// Passes worth a word.
	"poststart":                 {Racy: true, Text: "Racy for every runtime: the program's process (`sh -c 'echo ... >> /output'`) and the poststart hook append to the same file, and it wants the process's line first. berth runs poststart hooks only once the program is executed (`TestPoststartHookRunsAfterTheProgramIsExecuted`), but the shell's write after its exec still races with the hook's."},
	"poststart_fail":            {Text: "Passes since berth runs the poststart hooks after a failing one and only warns (`TestFailingPoststartPoststopHookDoesNotStopTheRest`)."},
	"poststop_fail":             {Text: "Passes since berth runs the poststop hooks after a failing one and only warns (`TestFailingPoststartPoststopHookDoesNotStopTheRest`)."},
	"process_capabilities_fail": {Text: "berth refuses the unknown capability `CAP_TEST` at create, as the spec requires; runc and crun drop it with a warning and run the container."},
}
