package image

import (
	"io"
	"os"

	"github.com/berth-containers/berth/internal/image/archive"
)

// LayerOps are the file operations on layers that need power over every owner in them.
// The zero value does them in this process, which is right for root. An unprivileged
// user's store unpacks and removes inside a user namespace that maps its subordinate ids
// (the engine's rootless mode sets them), so that a layer's files keep their owners and
// can be removed again.
type LayerOps struct {
	// Unpack extracts the uncompressed tar stream r into dest, as archive.UnpackWith.
	Unpack func(r io.Reader, dest string, o archive.Options) (archive.Stats, error)
	// RemoveAll removes path and everything under it, as os.RemoveAll.
	RemoveAll func(path string) error
	// Flatten applies the layer directory layer onto dst, carrying out its whiteouts
	// (the copy snapshot driver). It reads the layer too, so it runs where Unpack does.
	Flatten func(layer, dst string) error
}

// SetLayerOps makes the store use ops for unpacking and removing layers.
func (s *Store) SetLayerOps(ops LayerOps) { s.ops = ops }

// UnpackLayer unpacks a layer (or a snapshot's copy of one) with the store's LayerOps.
func (s *Store) UnpackLayer(r io.Reader, dest string, o archive.Options) (archive.Stats, error) {
	if s.ops.Unpack != nil {
		return s.ops.Unpack(r, dest, o)
	}
	return archive.UnpackWith(r, dest, o)
}

// RemoveAll removes a tree of layer files with the store's LayerOps.
func (s *Store) RemoveAll(path string) error {
	if s.ops.RemoveAll != nil {
		return s.ops.RemoveAll(path)
	}
	return os.RemoveAll(path)
}

// Flatten applies one layer directory onto dst, carrying out its whiteouts, with the
// store's LayerOps.
func (s *Store) Flatten(layer, dst string) error {
	if s.ops.Flatten != nil {
		return s.ops.Flatten(layer, dst)
	}
	return FlattenLayer(layer, dst, false)
}

// FlattenLayer applies one layer directory onto dst in this process; rootless as in
// archive.Options.
func FlattenLayer(layer, dst string, rootless bool) error {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(archive.Tar(pw, layer, archive.TarOptions{OverlayWhiteouts: true}))
	}()
	_, err := archive.UnpackWith(pr, dst, archive.Options{ApplyWhiteouts: true, Rootless: rootless})
	pr.CloseWithError(io.ErrClosedPipe)
	return err
}
