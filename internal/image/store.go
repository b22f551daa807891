// Package image keeps container images on disk and moves them to and from registries and
// archives.
//
// Layout under <root>/image (root is /var/lib/berth unless --root/BERTH_ROOT say otherwise):
//
//	oci-layout, index.json   an OCI image layout over blobs/, so OCI tools can read the store
//	blobs/sha256/<hex>       content-addressed blobs: manifests, configs, compressed layers
//	images.json              the index of images and of the names and tags pointing at them
//	layers/<diffid>/diff     each layer unpacked once, in overlayfs lower-layer form, shared
//	layers/<diffid>/size     its sizes (files, tar stream)
//	l/<short>                short symlinks to layers/<diffid>/diff, keeping overlay's mount
//	                         options within a page for images with many layers
//	leases/<key>.json        snapshots using an image: their layers are never collected
//	ingest/                  blobs and layers being written; renamed into place when verified
//	locks/                   per-blob and per-layer flock files
//
// Writers hold gc.lock shared for their whole run; garbage collection takes it exclusively,
// so it never collects blobs of a pull that has not registered its image yet. Each blob and
// layer is written under its own flock: concurrent pulls of the same content download and
// unpack it once, and a writer killed half-way leaves only ingest/ debris that the next
// holder of the lock (or the next collection) removes.
package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where berth keeps its state unless told otherwise.
const DefaultRoot = "/var/lib/berth"

// ErrNotFound is returned (wrapped) when a name or ID matches no local image.
var ErrNotFound = errors.New("no such image")

// Store is the local image store. It holds no state in memory beyond paths, so any number
// of Stores (in any number of processes) may work on one root at once.
type Store struct {
	root string // the berth root
	dir  string // <root>/image
	ops  LayerOps
}

// Image is one image in the store.
type Image struct {
	// ID is the digest of the image's config, what `berth images` shows (as Docker does).
	ID v1.Hash `json:"id"`
	// Digest is the digest of the image's manifest, which names its blobs.
	Digest v1.Hash `json:"digest"`
	// Names are the canonical references tagging the image ("docker.io/library/busybox:latest").
	Names []string `json:"names,omitempty"`
	// RepoDigests are "repository@sha256:..." references it was pulled or pushed by.
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Layers are the diff IDs of the image's layers, bottom first.
	Layers []v1.Hash `json:"layers"`
	// Blobs are the digests of the layers' blobs, bottom first.
	Blobs []v1.Hash `json:"blobs"`
	// Size is the unpacked size of all layers in bytes.
	Size int64 `json:"size"`
	// Created is the creation time recorded in the image config.
	Created time.Time `json:"created"`
	// Added is when the image was last pulled, loaded, imported or tagged here.
	Added time.Time `json:"added"`
}

type database struct {
	Images map[string]*Image `json:"images"` // by manifest digest
	Tags   map[string]string `json:"tags"`   // canonical name -> manifest digest
}

// Open opens (creating if needed) the image store under root.
func Open(root string) (*Store, error) {
	if root == "" {
		root = DefaultRoot
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("image store root %q: %w", root, err)
	}
	s := &Store{root: abs, dir: filepath.Join(abs, "image")}
	for _, d := range []string{"blobs/sha256", "layers", "l", "leases", "ingest", "locks"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create image store directory: %w", err)
		}
	}
	layout := filepath.Join(s.dir, "oci-layout")
	if _, err := os.Stat(layout); err != nil {
		if err := writeFileAtomic(s, layout, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Root is the berth root the store lives in.
func (s *Store) Root() string { return s.root }

// Dir is the image store's own directory (<root>/image), an OCI image layout.
func (s *Store) Dir() string { return s.dir }

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

// LayerDir is where the layer with the given diff ID is (or would be) unpacked.
func (s *Store) LayerDir(diffID v1.Hash) string {
	return filepath.Join(s.dir, "layers", diffID.Hex, "diff")
}

// shortLink is the short path overlay mount options use for a layer.
func (s *Store) shortLink(diffID v1.Hash) string {
	return filepath.Join(s.dir, "l", diffID.Hex[:16])
}

func (s *Store) hasBlob(h v1.Hash) bool {
	_, err := os.Stat(s.blobPath(h))
	return err == nil
}

func (s *Store) hasLayer(diffID v1.Hash) bool {
	_, err := os.Stat(s.LayerDir(diffID))
	return err == nil
}

// lock takes a flock on <dir>/<name>, waiting for it.
func (s *Store) lock(name string, how int) (*os.File, error) {
	p := filepath.Join(s.dir, name)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", p, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return f, nil
}

func unlock(f *os.File) {
	if f != nil {
		f.Close() // closing the last descriptor drops the flock
	}
}

// writerLock is held shared by anything adding content, so collection waits for it.
func (s *Store) writerLock() (*os.File, error) { return s.lock("gc.lock", unix.LOCK_SH) }

func writeFileAtomic(s *Store, path string, data []byte) error {
	return writeFile(s, path, data, true)
}

// writeFile writes data to path through a temporary file and a rename, so readers see the
// old or the new content, never a mix; with sync the data is on disk before the rename.
func writeFile(s *Store, path string, data []byte, sync bool) error {
	f, err := os.CreateTemp(filepath.Join(s.dir, "ingest"), "meta-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (s *Store) readDB() (*database, error) {
	db := &database{Images: map[string]*Image{}, Tags: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(s.dir, "images.json"))
	if errors.Is(err, os.ErrNotExist) {
		return db, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	if err := json.Unmarshal(b, db); err != nil {
		return nil, fmt.Errorf("parse image index %s: %w", filepath.Join(s.dir, "images.json"), err)
	}
	if db.Images == nil {
		db.Images = map[string]*Image{}
	}
	if db.Tags == nil {
		db.Tags = map[string]string{}
	}
	// Names are derived from Tags so the two can never disagree.
	for _, img := range db.Images {
		img.Names = nil
	}
	for name, dg := range db.Tags {
		if img := db.Images[dg]; img != nil {
			img.Names = append(img.Names, name)
		}
	}
	for _, img := range db.Images {
		sort.Strings(img.Names)
	}
	return db, nil
}

// update runs fn on the index under the metadata lock and writes the result back, together
// with the OCI index.json that mirrors it.
func (s *Store) update(fn func(*database) error) error {
	l, err := s.lock("lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock(l)
	db, err := s.readDB()
	if err != nil {
		return err
	}
	if err := fn(db); err != nil {
		return err
	}
	// Names are derived from Tags when read; storing them too would invite disagreement.
	for _, img := range db.Images {
		img.Names = nil
	}
	b, err := json.MarshalIndent(db, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s, filepath.Join(s.dir, "images.json"), b); err != nil {
		return err
	}
	return s.writeOCIIndex(db)
}

func (s *Store) writeOCIIndex(db *database) error {
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	named := map[string]bool{}
	names := make([]string, 0, len(db.Tags))
	for n := range db.Tags {
		names = append(names, n)
	}
	sort.Strings(names)
	add := func(img *Image, ann map[string]string) {
		fi, err := os.Stat(s.blobPath(img.Digest))
		if err != nil {
			return
		}
		mt := types.OCIManifestSchema1
		if b, err := os.ReadFile(s.blobPath(img.Digest)); err == nil {
			var m struct {
				MediaType types.MediaType `json:"mediaType"`
			}
			if json.Unmarshal(b, &m) == nil && m.MediaType != "" {
				mt = m.MediaType
			}
		}
		idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: mt, Digest: img.Digest, Size: fi.Size(), Annotations: ann})
	}
	for _, n := range names {
		img := db.Images[db.Tags[n]]
		if img == nil {
			continue
		}
		named[img.Digest.String()] = true
		add(img, map[string]string{"org.opencontainers.image.ref.name": n, "io.containerd.image.name": n})
	}
	for dg, img := range db.Images {
		if !named[dg] {
			add(img, nil)
		}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeFileAtomic(s, filepath.Join(s.dir, "index.json"), b)
}

// List returns every image in the store, newest first.
func (s *Store) List() ([]*Image, error) {
	db, err := s.readDB()
	if err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(db.Images))
	for _, img := range db.Images {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID.Hex < out[j].ID.Hex
	})
	return out, nil
}

// isIDPrefix tells whether ref is a full or abbreviated image ID: 4 to 64 lowercase hex
// digits, optionally after "sha256:". (Not a regexp: compiling `{4,64}` and `{0,127}` at
// package init cost every berth command 0.4-1.3 ms before main, measured with
// GODEBUG=inittrace=1.)
func isIDPrefix(ref string) bool {
	h := strings.TrimPrefix(ref, "sha256:")
	if len(h) < 4 || len(h) > 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Get finds an image by name ("busybox", "localhost:5000/app:v1"), by digest reference
// ("busybox@sha256:..."), or by full or abbreviated ID.
func (s *Store) Get(ref string) (*Image, error) {
	db, err := s.readDB()
	if err != nil {
		return nil, err
	}
	img, _, err := db.resolve(ref)
	return img, err
}

// resolve returns the image and, when ref was a name, the canonical name it matched.
func (db *database) resolve(ref string) (*Image, string, error) {
	if ref == "" {
		return nil, "", fmt.Errorf("empty image reference")
	}
	if isIDPrefix(ref) {
		p := strings.TrimPrefix(ref, "sha256:")
		var found *Image
		for _, img := range db.Images {
			if strings.HasPrefix(img.ID.Hex, p) || (len(p) == 64 && img.Digest.Hex == p) {
				if found != nil && found != img && found.ID != img.ID {
					return nil, "", fmt.Errorf("image ID prefix %q is ambiguous", ref)
				}
				found = img
			}
		}
		if found != nil {
			return found, "", nil
		}
		if strings.HasPrefix(ref, "sha256:") {
			return nil, "", fmt.Errorf("%w: %s", ErrNotFound, ref)
		}
	}
	canon, err := CanonicalName(ref)
	if err != nil {
		return nil, "", err
	}
	if dg, ok := db.Tags[canon]; ok {
		if img := db.Images[dg]; img != nil {
			return img, canon, nil
		}
	}
	if repo, dg, ok := strings.Cut(canon, "@"); ok {
		for _, img := range db.Images {
			if img.Digest.String() == dg {
				return img, "", nil
			}
			for _, rd := range img.RepoDigests {
				if rd == canon || (strings.HasSuffix(rd, "@"+dg) && strings.HasPrefix(rd, repo+"@")) {
					return img, "", nil
				}
			}
		}
	}
	return nil, "", fmt.Errorf("%w: %s", ErrNotFound, ref)
}

// ConfigFile reads the image's config.
func (s *Store) ConfigFile(img *Image) (*v1.ConfigFile, error) {
	f, err := os.Open(s.blobPath(img.ID))
	if err != nil {
		return nil, fmt.Errorf("read config of image %s: %w", img.ID.Hex[:12], err)
	}
	defer f.Close()
	cf, err := v1.ParseConfigFile(f)
	if err != nil {
		return nil, fmt.Errorf("parse config of image %s: %w", img.ID.Hex[:12], err)
	}
	return cf, nil
}

// Manifest reads the image's manifest.
func (s *Store) Manifest(img *Image) (*v1.Manifest, []byte, error) {
	b, err := os.ReadFile(s.blobPath(img.Digest))
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest of image %s: %w", img.ID.Hex[:12], err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("parse manifest %s: %w", img.Digest, err)
	}
	return &m, b, nil
}

// Tag gives the image found by src the additional name target.
func (s *Store) Tag(src, target string) error {
	canon, err := CanonicalName(target)
	if err != nil {
		return err
	}
	if strings.Contains(canon, "@") {
		return fmt.Errorf("tag %q: a tag cannot carry a digest", target)
	}
	return s.update(func(db *database) error {
		img, _, err := db.resolve(src)
		if err != nil {
			return err
		}
		db.Tags[canon] = img.Digest.String()
		img.Added = time.Now().UTC()
		return nil
	})
}

// register records an image whose blobs and layers are all in place and points names at it.
func (s *Store) register(img *Image, names []string) (*Image, error) {
	var out *Image
	err := s.update(func(db *database) error {
		key := img.Digest.String()
		cur := db.Images[key]
		if cur == nil {
			cur = img
			db.Images[key] = cur
		}
		for _, rd := range img.RepoDigests {
			if !contains(cur.RepoDigests, rd) {
				cur.RepoDigests = append(cur.RepoDigests, rd)
			}
		}
		cur.Added = time.Now().UTC()
		for _, n := range names {
			db.Tags[n] = key
		}
		// Another manifest for the same config (the same image, differently compressed)
		// that this one just took the last name from would linger as a dangling twin with
		// the same ID; Docker knows one image per ID, so fold it in.
		named := map[string]bool{}
		for _, dg := range db.Tags {
			named[dg] = true
		}
		for dg, other := range db.Images {
			if dg != key && other.ID == cur.ID && !named[dg] {
				for _, rd := range other.RepoDigests {
					if !contains(cur.RepoDigests, rd) {
						cur.RepoDigests = append(cur.RepoDigests, rd)
					}
				}
				delete(db.Images, dg)
			}
		}
		out = cur
		return nil
	})
	if err != nil {
		return nil, err
	}
	db, err := s.readDB()
	if err == nil && db.Images[out.Digest.String()] != nil {
		out = db.Images[out.Digest.String()]
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// layerSizes is what a layer's size file records.
type layerSizes struct {
	Files int64 `json:"files"` // sum of file sizes, Docker's layer size
	Tar   int64 `json:"tar"`   // bytes of the uncompressed tar stream
}

func (s *Store) readLayerSizes(diffID v1.Hash) (layerSizes, error) {
	var ls layerSizes
	b, err := os.ReadFile(filepath.Join(s.dir, "layers", diffID.Hex, "size"))
	if err != nil {
		return ls, err
	}
	err = json.Unmarshal(b, &ls)
	return ls, err
}

// Lease records that the snapshot key uses img, so its layers stay while the snapshot lives,
// whatever happens to the image's names.
func (s *Store) Lease(key string, img *Image) error {
	if err := validKey(key); err != nil {
		return err
	}
	b, err := json.Marshal(struct {
		Image  v1.Hash   `json:"image"`
		Layers []v1.Hash `json:"layers"`
	}{img.Digest, img.Layers})
	if err != nil {
		return err
	}
	// Not synced: a lease is as durable as the snapshot directory it goes with, and Prepare
	// is on the container start path.
	return writeFile(s, filepath.Join(s.dir, "leases", key+".json"), b, false)
}

// Release drops the lease key; removing a lease that does not exist is not an error.
func (s *Store) Release(key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.dir, "leases", key+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release lease %s: %w", key, err)
	}
	return nil
}

type lease struct {
	key    string
	Image  v1.Hash   `json:"image"`
	Layers []v1.Hash `json:"layers"`
}

func (s *Store) leases() ([]lease, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "leases"))
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	var out []lease
	for _, e := range ents {
		key, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, "leases", e.Name()))
		if err != nil {
			continue
		}
		l := lease{key: key}
		if json.Unmarshal(b, &l) != nil {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// IsKey tells whether key names a snapshot or container safely as one path component:
// 1 to 128 letters, digits, '_', '.' and '-', starting with a letter or digit.
func IsKey(key string) bool {
	if len(key) == 0 || len(key) > 128 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || (c != '_' && c != '.' && c != '-')) {
			return false
		}
	}
	return true
}

func validKey(key string) error {
	if !IsKey(key) {
		return fmt.Errorf("invalid snapshot key %q: use 1-128 letters, digits, '_', '.', '-'", key)
	}
	return nil
}

// LayerPaths returns the directories of img's layers, bottom first, unpacking any that are
// missing from their blobs. The paths are short symlinks to the layers' diff directories,
// suitable for overlay's lowerdir option.
func (s *Store) LayerPaths(img *Image) ([]string, error) {
	wl, err := s.writerLock()
	if err != nil {
		return nil, err
	}
	defer unlock(wl)
	out := make([]string, len(img.Layers))
	for i, d := range img.Layers {
		if !s.hasLayer(d) {
			if i >= len(img.Blobs) {
				return nil, fmt.Errorf("image %s: no blob for layer %s", img.ID.Hex[:12], d)
			}
			if _, err := s.ensureLayer(img.Blobs[i], d, nil, nil); err != nil {
				return nil, err
			}
		}
		out[i] = s.shortLink(d)
	}
	return out, nil
}

// DiskUsage sums the bytes the store's blobs and unpacked layers occupy on disk.
func (s *Store) DiskUsage() (int64, error) {
	var total int64
	err := filepath.Walk(s.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !fi.IsDir() {
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}

func shortID(h v1.Hash) string {
	if len(h.Hex) < 12 {
		return h.Hex
	}
	return h.Hex[:12]
}

func statBlocks(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
