package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// RemoveReport lists what a removal did, in Docker's terms.
type RemoveReport struct {
	Untagged []string  // familiar names and repo digests removed
	Deleted  []v1.Hash // image IDs whose images are gone
	// Reclaimed is the disk space freed by collecting blobs and layers.
	Reclaimed int64
}

// InUseError is returned when removing an image a snapshot still uses, without force.
type InUseError struct {
	Ref, Key string
	ID       v1.Hash
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", e.Ref, e.Key, shortID(e.ID))
}

// Remove is `rmi`: removing a name untags it, and an image left without names is deleted,
// unless a snapshot uses it. Removing by ID deletes the image with all its names, which
// needs force when it has names in several repositories or is in use. Blobs and layers no
// longer referenced are then collected.
func (s *Store) Remove(refs []string, force bool) (*RemoveReport, error) {
	rep := &RemoveReport{}
	leases, err := s.leases()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ref := range refs {
		err := s.update(func(db *database) error {
			img, matched, err := db.resolve(ref)
			if err != nil {
				return err
			}
			key := img.Digest.String()
			var user string
			for _, l := range leases {
				if l.Image == img.Digest {
					user = l.key
				}
			}
			if matched != "" && len(img.Names) > 1 {
				delete(db.Tags, matched)
				rep.Untagged = append(rep.Untagged, FamiliarName(matched))
				return nil
			}
			if user != "" && !force {
				return &InUseError{Ref: ref, Key: user, ID: img.ID}
			}
			if matched == "" && !force && len(repos(img.Names)) > 1 {
				return fmt.Errorf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", shortID(img.ID))
			}
			for _, n := range img.Names {
				delete(db.Tags, n)
				rep.Untagged = append(rep.Untagged, FamiliarName(n))
			}
			for _, rd := range img.RepoDigests {
				rep.Untagged = append(rep.Untagged, FamiliarName(rd))
			}
			delete(db.Images, key)
			rep.Deleted = append(rep.Deleted, img.ID)
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(rep.Deleted) > 0 {
		n, err := s.collect()
		rep.Reclaimed = n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

func repos(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		r, _ := SplitName(n)
		m[r] = true
	}
	return m
}

// Prune deletes dangling images (no names), or with all every image no snapshot uses, and
// collects what they leave unreferenced.
func (s *Store) Prune(all bool) (*RemoveReport, error) {
	rep := &RemoveReport{}
	leases, err := s.leases()
	if err != nil {
		return nil, err
	}
	used := map[v1.Hash]bool{}
	for _, l := range leases {
		used[l.Image] = true
	}
	err = s.update(func(db *database) error {
		for key, img := range db.Images {
			if used[img.Digest] || (!all && len(img.Names) > 0) {
				continue
			}
			for _, n := range img.Names {
				delete(db.Tags, n)
				rep.Untagged = append(rep.Untagged, FamiliarName(n))
			}
			delete(db.Images, key)
			rep.Deleted = append(rep.Deleted, img.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	n, err := s.collect()
	rep.Reclaimed = n
	return rep, err
}

// collect deletes every blob and layer that no image and no lease references, along with
// ingest debris. It holds gc.lock exclusively: no writer is mid-way, so anything unreferenced
// is garbage.
func (s *Store) collect() (int64, error) {
	gl, err := s.lock("gc.lock", unix.LOCK_EX)
	if err != nil {
		return 0, err
	}
	defer unlock(gl)
	db, err := s.readDB()
	if err != nil {
		return 0, err
	}
	leases, err := s.leases()
	if err != nil {
		return 0, err
	}
	blobs := map[string]bool{}
	layers := map[string]bool{}
	for _, img := range db.Images {
		blobs[img.Digest.Hex] = true
		blobs[img.ID.Hex] = true
		for _, b := range img.Blobs {
			blobs[b.Hex] = true
		}
		for _, l := range img.Layers {
			layers[l.Hex] = true
		}
	}
	for _, l := range leases {
		for _, d := range l.Layers {
			layers[d.Hex] = true
		}
	}
	var freed int64
	var errs []error
	ents, _ := os.ReadDir(filepath.Join(s.dir, "blobs", "sha256"))
	for _, e := range ents {
		if blobs[e.Name()] {
			continue
		}
		p := filepath.Join(s.dir, "blobs", "sha256", e.Name())
		freed += du(p)
		if err := os.Remove(p); err != nil {
			errs = append(errs, fmt.Errorf("remove blob %s: %w", p, err))
		}
	}
	ents, _ = os.ReadDir(filepath.Join(s.dir, "layers"))
	for _, e := range ents {
		if layers[e.Name()] {
			continue
		}
		p := filepath.Join(s.dir, "layers", e.Name())
		freed += du(p)
		os.Remove(filepath.Join(s.dir, "l", e.Name()[:min(16, len(e.Name()))]))
		if err := s.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("remove layer %s: %w", p, err))
		}
	}
	for _, d := range []string{"ingest", "locks"} {
		ents, _ = os.ReadDir(filepath.Join(s.dir, d))
		for _, e := range ents {
			if d == "ingest" && strings.HasPrefix(e.Name(), "meta-") {
				continue // an index update in flight (those take no gc.lock)
			}
			s.RemoveAll(filepath.Join(s.dir, d, e.Name()))
		}
	}
	return freed, errors.Join(errs...)
}

// du is the disk space used under p.
func du(p string) int64 {
	var total int64
	filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
		if err == nil {
			total += statBlocks(fi)
		}
		return nil
	})
	return total
}
