package engine

import "io"

// Export writes a container's filesystem (its image with its changes, not its volumes) to w
// as a tar stream, as `docker export` does.
func (e *Engine) Export(ref string, w io.Writer) error {
	info, err := e.Inspect(ref)
	if err != nil {
		return err
	}
	sn, err := e.snapshotter()
	if err != nil {
		return err
	}
	if e.rootless {
		if snap, err := sn.Get(info.Container.ID); err == nil && e.runtimeMountsRoot(snap) {
			return e.exportRootless(snap, w)
		}
	}
	return sn.Export(info.Container.ID, w)
}
