//go:build !berth_lean

package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// PullOptions tunes Pull.
type PullOptions struct {
	RegistryOptions
	// Platform picks the image from a multi-platform index; nil means the host's.
	Platform *v1.Platform
	// Progress receives per-layer progress and status lines; nil shows nothing.
	Progress *Progress
	// Jobs is how many layers download at once (Docker's default, 3, when 0).
	Jobs int
}

// Pull fetches ref from its registry into the store and tags it. Layers download in
// parallel and are unpacked while they stream in; every blob is checked against its digest
// and every layer against its diff ID before it becomes visible.
func (s *Store) Pull(ctx context.Context, ref string, o PullOptions) (*Image, error) {
	r, err := s.reference(ref, o.RegistryOptions)
	if err != nil {
		return nil, err
	}
	want := HostPlatform()
	if o.Platform != nil {
		want = *o.Platform
	}
	wl, err := s.writerLock()
	if err != nil {
		return nil, err
	}
	defer unlock(wl)

	ropts := append(s.remoteOptions(ctx, r.Context().Registry, o.RegistryOptions), remote.WithPlatform(want))
	if _, isTag := r.(name.Tag); isTag {
		o.Progress.Printf("%s: Pulling from %s\n", r.Identifier(), r.Context().RepositoryStr())
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	var img v1.Image
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("pull %s: read index: %w", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("pull %s: read index: %w", ref, err)
		}
		var pick *v1.Descriptor
		var avail []string
		for i := range im.Manifests {
			m := &im.Manifests[i]
			if m.Platform != nil {
				avail = append(avail, m.Platform.String())
			}
			if m.MediaType.IsImage() && platformMatches(m.Platform, want) {
				pick = m
				break
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("pull %s: no image for platform %s in the index (it has: %s)", ref, want.String(), strings.Join(avail, ", "))
		}
		if img, err = idx.Image(pick.Digest); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
	case desc.MediaType.IsImage():
		if img, err = desc.Image(); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
	default:
		return nil, fmt.Errorf("pull %s: unsupported manifest type %s", ref, desc.MediaType)
	}

	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("pull %s: read manifest: %w", ref, err)
	}
	mdg, err := img.Digest()
	if err != nil {
		return nil, err
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("pull %s: parse manifest: %w", ref, err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pull %s: read config: %w", ref, err)
	}
	if sum := sha256.Sum256(rawConfig); hex.EncodeToString(sum[:]) != manifest.Config.Digest.Hex {
		return nil, fmt.Errorf("pull %s: config digest mismatch: manifest says %s", ref, manifest.Config.Digest)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("pull %s: parse config: %w", ref, err)
	}
	if o.Platform != nil && !desc.MediaType.IsIndex() && !platformMatches(cfg.Platform(), want) {
		return nil, fmt.Errorf("pull %s: image is for %s, not the requested %s", ref, cfg.Platform(), want)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(diffIDs) != len(manifest.Layers) {
		return nil, fmt.Errorf("pull %s: manifest lists %d layers but config %d diff IDs", ref, len(manifest.Layers), len(diffIDs))
	}

	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 3
	}
	o.Progress.begin()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	sizes := make([]int64, len(diffIDs))
	progs := make([]*progressLayer, len(diffIDs))
	for i, l := range manifest.Layers {
		progs[i] = o.Progress.add(shortID(l.Digest), l.Size)
	}
	for i := range manifest.Layers {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			ld := manifest.Layers[i]
			fetch := func() (io.ReadCloser, error) {
				layer, err := img.LayerByDigest(ld.Digest)
				if err != nil {
					return nil, err
				}
				return layer.Compressed()
			}
			res, err := s.ensureLayer(ld.Digest, diffIDs[i], fetch, progs[i])
			if err != nil {
				progs[i].set(stateFailed)
				return err
			}
			sizes[i] = res.sizes.Files
			return nil
		})
	}
	err = g.Wait()
	o.Progress.end()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}

	if _, err := s.writeBlob(rawConfig); err != nil {
		return nil, err
	}
	if _, err := s.writeBlob(rawManifest); err != nil {
		return nil, err
	}
	rec := &Image{ID: manifest.Config.Digest, Digest: mdg, Created: cfg.Created.Time.UTC(), Added: time.Now().UTC()}
	for i, l := range manifest.Layers {
		rec.Layers = append(rec.Layers, diffIDs[i])
		rec.Blobs = append(rec.Blobs, l.Digest)
		rec.Size += sizes[i]
	}
	repo := canonicalRepo(r.Context())
	rec.RepoDigests = []string{repo + "@" + desc.Digest.String()}
	var names []string
	if t, ok := r.(name.Tag); ok {
		names = []string{repo + ":" + t.TagStr()}
	}
	out, err := s.register(rec, names)
	if err != nil {
		return nil, err
	}
	o.Progress.Printf("Digest: %s\n", desc.Digest)
	return out, nil
}
