package engine

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/cgroups"
	"github.com/berth-containers/berth/internal/network"
)

// UsageLine is one row of `system df`.
type UsageLine struct {
	Type        string
	Total       int
	Active      int
	Size        int64
	Reclaimable int64
}

// DiskUsage is `system df`: images, containers (their writable layers and logs) and
// volumes, with what pruning would free.
func (e *Engine) DiskUsage() ([]UsageLine, error) {
	infos, err := e.List()
	if err != nil {
		return nil, err
	}
	s, err := e.imageStore()
	if err != nil {
		return nil, err
	}
	imgs, err := s.List()
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	ctr := UsageLine{Type: "Containers", Total: len(infos)}
	for _, i := range infos {
		used[i.Container.Image] = true
		size := dirSize(filepath.Join(e.Root, "snapshots", i.Container.ID, "upper")) + dirSize(e.dir(i.Container.ID))
		ctr.Size += size
		if i.Running() || i.State.Status == StatusRestarting {
			ctr.Active++
		} else {
			ctr.Reclaimable += size
		}
	}
	im := UsageLine{Type: "Images", Total: len(imgs)}
	for _, img := range imgs {
		im.Size += img.Size
		if used[img.ID.String()] {
			im.Active++
		} else {
			im.Reclaimable += img.Size
		}
	}
	vols, err := e.VolumeList()
	if err != nil {
		return nil, err
	}
	vl := UsageLine{Type: "Local Volumes", Total: len(vols)}
	for _, v := range vols {
		size := dirSize(e.volumePath(v.Name))
		vl.Size += size
		if users, _ := e.VolumeUsers(v.Name); len(users) > 0 {
			vl.Active++
		} else {
			vl.Reclaimable += size
		}
	}
	return []UsageLine{im, ctr, vl, {Type: "Build Cache"}}, nil
}

// PruneReport is what `system prune` removed.
type PruneReport struct {
	Containers []string
	Networks   []string
	Volumes    []string
	Images     []string
	Reclaimed  int64
}

// SystemPrune removes stopped containers, networks without containers, dangling images
// (every unused one with allImages) and, with volumes, unused anonymous volumes.
func (e *Engine) SystemPrune(allImages, volumes bool) (*PruneReport, error) {
	rep := &PruneReport{}
	var errs []error
	ids, n, err := e.ContainerPrune()
	rep.Containers, rep.Reclaimed = ids, n
	errs = append(errs, err)
	if nets, err := e.networks(); err == nil {
		list, err := nets.List()
		errs = append(errs, err)
		for _, ni := range list {
			if ni.IsDefault() || len(ni.Containers) > 0 {
				continue
			}
			if err := nets.Remove(ni.ID); err != nil {
				var inUse *network.InUseError
				if !errors.As(err, &inUse) {
					errs = append(errs, err)
				}
				continue
			}
			rep.Networks = append(rep.Networks, ni.Name)
		}
	}
	if volumes {
		names, n, err := e.VolumePrune(false)
		rep.Volumes = names
		rep.Reclaimed += n
		errs = append(errs, err)
	}
	if s, err := e.imageStore(); err == nil {
		ir, err := s.Prune(allImages)
		errs = append(errs, err)
		if ir != nil {
			for _, d := range ir.Deleted {
				rep.Images = append(rep.Images, d.String())
			}
			rep.Reclaimed += ir.Reclaimed
		}
	}
	return rep, errors.Join(errs...)
}

// SystemInfo is `berth info`'s (Docker's field names where they apply).
type SystemInfo struct {
	Containers        int
	ContainersRunning int
	ContainersPaused  int
	ContainersStopped int
	Images            int
	Driver            string
	LoggingDriver     string
	CgroupDriver      string
	CgroupVersion     string
	DefaultRuntime    string
	Runtimes          []string
	SecurityOptions   []string
	KernelVersion     string
	OperatingSystem   string
	OSType            string
	Architecture      string
	NCPU              int
	MemTotal          int64
	Name              string
	BerthRootDir      string
	RuntimeRootDir    string
	Volumes           int
}

// Info gathers `berth info`.
func (e *Engine) Info() (*SystemInfo, error) {
	in := &SystemInfo{Driver: "overlay", LoggingDriver: "json-file", CgroupDriver: "cgroupfs", DefaultRuntime: "berth",
		OSType: goruntime.GOOS, NCPU: goruntime.NumCPU(), BerthRootDir: e.Root, RuntimeRootDir: e.RuntimeRoot,
		SecurityOptions: []string{"name=seccomp,profile=builtin", "name=landlock"}}
	infos, err := e.List()
	if err != nil {
		return nil, err
	}
	in.Containers = len(infos)
	for _, i := range infos {
		switch i.State.Status {
		case StatusRunning, StatusRestarting:
			in.ContainersRunning++
		case StatusPaused:
			in.ContainersPaused++
		default:
			in.ContainersStopped++
		}
	}
	if s, err := e.imageStore(); err == nil {
		if imgs, err := s.List(); err == nil {
			in.Images = len(imgs)
		}
	}
	if sn, err := e.snapshotter(); err == nil {
		in.Driver = e.storageDriver(sn)
	}
	if vols, err := e.VolumeList(); err == nil {
		in.Volumes = len(vols)
	}
	in.CgroupVersion = "1"
	if l, err := cgroups.DetectLayout(); err == nil {
		if l == cgroups.Unified {
			in.CgroupVersion = "2"
		}
	}
	in.Runtimes = []string{"berth"}
	for _, r := range []string{"runc", "crun"} {
		if p, err := lookPath(r); err == nil && p != "" {
			in.Runtimes = append(in.Runtimes, r)
		}
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		in.KernelVersion = unix.ByteSliceToString(uts.Release[:])
		in.Architecture = unix.ByteSliceToString(uts.Machine[:])
	}
	in.OperatingSystem = osRelease()
	in.MemTotal = int64(hostMemory())
	in.Name, _ = os.Hostname()
	return in, nil
}

func osRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }
