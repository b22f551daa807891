package engine

import (
	"errors"
	"path/filepath"
)

// ContainerPrune removes every stopped container and returns their ids and the disk space
// their writable layers and logs took.
func (e *Engine) ContainerPrune() ([]string, int64, error) {
	infos, err := e.List()
	if err != nil {
		return nil, 0, err
	}
	var ids []string
	var reclaimed int64
	var errs []error
	for _, i := range infos {
		if i.State.Status != StatusExited && i.State.Status != StatusCreated && i.State.Status != StatusDead {
			continue
		}
		size := dirSize(filepath.Join(e.Root, "snapshots", i.Container.ID)) + dirSize(e.dir(i.Container.ID))
		if err := e.Remove(i.Container.ID, false, false); err != nil {
			var nf *NotFoundError
			if !errors.As(err, &nf) {
				errs = append(errs, err)
			}
			continue
		}
		ids = append(ids, i.Container.ID)
		reclaimed += size
	}
	return ids, reclaimed, errors.Join(errs...)
}
