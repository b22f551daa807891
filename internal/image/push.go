//go:build !berth_lean

package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PushOptions tunes Push.
type PushOptions struct {
	RegistryOptions
	Progress *Progress
}

// PushResult is what Docker prints after a push.
type PushResult struct {
	Tag    string
	Digest v1.Hash
	Size   int64 // of the manifest
}

// Push uploads the local image src to the registry reference dst (src itself when empty).
// Blobs the registry already has are not sent again.
func (s *Store) Push(ctx context.Context, src, dst string, o PushOptions) (*PushResult, error) {
	img, err := s.Get(src)
	if err != nil {
		return nil, err
	}
	if dst == "" {
		dst = src
	}
	r, err := s.reference(dst, o.RegistryOptions)
	if err != nil {
		return nil, err
	}
	vi, err := s.v1Image(img)
	if err != nil {
		return nil, err
	}
	opts := s.remoteOptions(ctx, r.Context().Registry, o.RegistryOptions)
	var updates chan v1.Update
	var done chan struct{}
	if o.Progress != nil && o.Progress.tty {
		m, _, _ := s.Manifest(img)
		var total int64
		if m != nil {
			for _, l := range m.Layers {
				total += l.Size
			}
		}
		pl := o.Progress.add(shortID(img.ID), total)
		pl.set(statePushing)
		updates, done = make(chan v1.Update, 16), make(chan struct{})
		go func() {
			defer close(done)
			for u := range updates {
				pl.n.Store(u.Complete)
			}
			pl.set(statePushed)
		}()
		opts = append(opts, remote.WithProgress(updates))
		o.Progress.begin()
	}
	err = remote.Write(r, vi, opts...)
	if done != nil {
		<-done
		o.Progress.end()
	}
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", dst, err)
	}
	_, raw, err := s.Manifest(img)
	if err != nil {
		return nil, err
	}
	res := &PushResult{Tag: r.Identifier(), Digest: img.Digest, Size: int64(len(raw))}
	rd := canonicalRepo(r.Context()) + "@" + img.Digest.String()
	err = s.update(func(db *database) error {
		if cur := db.Images[img.Digest.String()]; cur != nil && !contains(cur.RepoDigests, rd) {
			cur.RepoDigests = append(cur.RepoDigests, rd)
		}
		return nil
	})
	return res, err
}

// v1Image presents a stored image to go-containerregistry.
func (s *Store) v1Image(img *Image) (v1.Image, error) {
	m, raw, err := s.Manifest(img)
	if err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(s.blobPath(img.ID))
	if err != nil {
		return nil, fmt.Errorf("read config of image %s: %w", shortID(img.ID), err)
	}
	return partial.CompressedToImage(&storedImage{s: s, m: m, raw: raw, cfg: cfg})
}

type storedImage struct {
	s   *Store
	m   *v1.Manifest
	raw []byte
	cfg []byte
}

func (i *storedImage) RawConfigFile() ([]byte, error) { return i.cfg, nil }
func (i *storedImage) RawManifest() ([]byte, error)   { return i.raw, nil }
func (i *storedImage) MediaType() (types.MediaType, error) {
	if i.m.MediaType != "" {
		return i.m.MediaType, nil
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	json.Unmarshal(i.raw, &probe)
	if probe.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return probe.MediaType, nil
}

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &storedBlob{s: i.s, d: i.m.Config}, nil
	}
	for _, l := range i.m.Layers {
		if l.Digest == h {
			return &storedBlob{s: i.s, d: l}, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not part of image %s", h, i.m.Config.Digest)
}

type storedBlob struct {
	s *Store
	d v1.Descriptor
}

func (b *storedBlob) Digest() (v1.Hash, error)            { return b.d.Digest, nil }
func (b *storedBlob) Size() (int64, error)                { return b.d.Size, nil }
func (b *storedBlob) MediaType() (types.MediaType, error) { return b.d.MediaType, nil }
func (b *storedBlob) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(b.s.blobPath(b.d.Digest))
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", b.d.Digest, err)
	}
	return f, nil
}
