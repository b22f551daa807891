package engine

// Restore starts, after a boot, the containers whose restart policy says they should
// run: with no daemon to come back up, this is what `berth system restore` does from
// contrib/systemd/berth-restore.service (as Podman's podman-restart.service runs `podman
// start` for its restart-policy=always containers). A container comes back if its policy
// is always, or unless-stopped and the user had not stopped it (Docker's rules for a
// daemon restart), and it is not running and has no monitor that will restart it. What
// the boot took (its processes, mounts, network namespace, runtime record, cgroups) is
// what any start after a crash finds missing: the start tears down the remains and
// makes the container anew. started receives each container tried, with its start's
// error; Restore returns only an error of listing.
func (e *Engine) Restore(started func(c *Container, err error)) error {
	list, err := e.List()
	if err != nil {
		return err
	}
	for i := len(list) - 1; i >= 0; i-- { // oldest first, as they were started
		info := list[i]
		c, st := info.Container, &info.State
		switch c.HostConfig.RestartPolicy.Name {
		case "always":
		case "unless-stopped":
			if st.ManualStop {
				continue
			}
		default:
			continue
		}
		if info.Running() || (st.MonitorPid > 0 && alive(st.MonitorPid, st.MonitorStart)) {
			continue
		}
		_, err := e.Start(c.ID, 0)
		started(c, err)
	}
	return nil
}
