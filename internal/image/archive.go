//go:build !berth_lean

package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-containers/berth/internal/image/archive"
)

// dockerManifestEntry is one image in a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

const ociLayerTar = types.MediaType("application/vnd.oci.image.layer.v1.tar")

// Save writes the images named by refs to w as one archive that both `docker load` and
// `podman load` read: the docker-archive format (manifest.json) over an OCI image layout
// (oci-layout, index.json, blobs/), the way Docker 25 and later write it. Layers are stored
// uncompressed, named by diff ID, as docker save does.
func (s *Store) Save(w io.Writer, refs []string) error {
	db, err := s.readDB()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	written := map[string]bool{}
	var entries []dockerManifestEntry
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	writeBytes := func(data []byte) (v1.Descriptor, error) {
		sum := sha256.Sum256(data)
		h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		d := v1.Descriptor{Digest: h, Size: int64(len(data))}
		if written[h.Hex] {
			return d, nil
		}
		written[h.Hex] = true
		if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + h.Hex, Mode: 0o444, Size: d.Size, Typeflag: tar.TypeReg, ModTime: zeroTime}); err != nil {
			return d, err
		}
		_, err := tw.Write(data)
		return d, err
	}
	for _, ref := range refs {
		img, matched, err := db.resolve(ref)
		if err != nil {
			return err
		}
		names := img.Names
		if matched != "" {
			names = []string{matched}
		}
		cfg, err := os.ReadFile(s.blobPath(img.ID))
		if err != nil {
			return fmt.Errorf("save %s: read config: %w", ref, err)
		}
		cd, err := writeBytes(cfg)
		if err != nil {
			return fmt.Errorf("save %s: %w", ref, err)
		}
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cd.Digest, Size: cd.Size}}
		ent := dockerManifestEntry{Config: "blobs/sha256/" + cd.Digest.Hex, RepoTags: []string{}}
		for i, diff := range img.Layers {
			size, err := s.writeLayerTar(tw, img.Blobs[i], diff, written)
			if err != nil {
				return fmt.Errorf("save %s: %w", ref, err)
			}
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: ociLayerTar, Digest: diff, Size: size})
			ent.Layers = append(ent.Layers, "blobs/sha256/"+diff.Hex)
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return err
		}
		md, err := writeBytes(mb)
		if err != nil {
			return fmt.Errorf("save %s: %w", ref, err)
		}
		desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: md.Digest, Size: md.Size}
		if len(names) == 0 {
			idx.Manifests = append(idx.Manifests, desc)
		}
		for _, n := range names {
			d := desc
			_, tag := SplitName(n)
			d.Annotations = map[string]string{"io.containerd.image.name": n, "org.opencontainers.image.ref.name": tag}
			idx.Manifests = append(idx.Manifests, d)
			ent.RepoTags = append(ent.RepoTags, FamiliarName(n))
		}
		entries = append(entries, ent)
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"index.json", idx}, {"manifest.json", entries}, {"oci-layout", map[string]string{"imageLayoutVersion": "1.0.0"}}} {
		b, err := json.Marshal(f.v)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o444, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: zeroTime}); err != nil {
			return fmt.Errorf("save: %w", err)
		}
		if _, err := tw.Write(b); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// writeLayerTar writes a layer uncompressed under its diff ID, once per archive.
func (s *Store) writeLayerTar(tw *tar.Writer, blob, diff v1.Hash, written map[string]bool) (int64, error) {
	ls, err := s.readLayerSizes(diff)
	size := ls.Tar
	if err != nil || size == 0 {
		// Not recorded (a layer from an older store): count by decompressing once.
		f, err := os.Open(s.blobPath(blob))
		if err != nil {
			return 0, fmt.Errorf("open layer blob %s: %w", blob, err)
		}
		dr, _, err := archive.Decompress(f)
		if err == nil {
			size, err = io.Copy(io.Discard, dr)
			dr.Close()
		}
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("read layer blob %s: %w", blob, err)
		}
	}
	if written[diff.Hex] {
		return size, nil
	}
	written[diff.Hex] = true
	f, err := os.Open(s.blobPath(blob))
	if err != nil {
		return 0, fmt.Errorf("open layer blob %s: %w", blob, err)
	}
	defer f.Close()
	dr, _, err := archive.Decompress(f)
	if err != nil {
		return 0, err
	}
	defer dr.Close()
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + diff.Hex, Mode: 0o444, Size: size, Typeflag: tar.TypeReg, ModTime: zeroTime}); err != nil {
		return 0, err
	}
	n, err := io.Copy(tw, dr)
	if err != nil {
		return 0, fmt.Errorf("write layer %s: %w", diff, err)
	}
	if n != size {
		return 0, fmt.Errorf("layer %s is %d bytes, expected %d", diff, n, size)
	}
	return size, nil
}

// Load reads an archive made by Save, `docker save`, `podman save` (docker-archive or
// oci-archive) or `skopeo copy` to an OCI archive, and adds its images to the store. It
// returns what Docker prints: "Loaded image: NAME" or "Loaded image ID: sha256:...".
func (s *Store) Load(r io.Reader) ([]string, error) {
	wl, err := s.writerLock()
	if err != nil {
		return nil, err
	}
	defer unlock(wl)
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "ingest"), "load-")
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer os.RemoveAll(tmp)
	a, err := extractArchive(r, tmp)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if _, ok := a.files["manifest.json"]; ok {
		return s.loadDocker(a)
	}
	if _, ok := a.files["index.json"]; ok {
		return s.loadOCI(a)
	}
	return nil, errors.New("load: archive has neither manifest.json nor index.json: not a docker or OCI image archive")
}

type archFile struct {
	path   string
	digest v1.Hash
	size   int64
	moved  bool
}

type extracted struct {
	files map[string]*archFile
	links map[string]string
}

// extractArchive saves the archive's regular files under dir (flat, numbered: names never
// become paths) with their digests, and records its links by name.
func extractArchive(r io.Reader, dir string) (*extracted, error) {
	a := &extracted{files: map[string]*archFile{}, links: map[string]string{}}
	tr := tar.NewReader(bufio.NewReaderSize(r, 1<<20))
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		switch hdr.Typeflag {
		case tar.TypeReg:
			p := filepath.Join(dir, fmt.Sprint(n))
			n++
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return nil, err
			}
			h := sha256.New()
			sz, err := io.Copy(io.MultiWriter(f, h), tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
			a.files[name] = &archFile{path: p, size: sz, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}}
		case tar.TypeSymlink:
			a.links[name] = path.Join(path.Dir(name), hdr.Linkname)
		case tar.TypeLink:
			a.links[name] = path.Clean(hdr.Linkname)
		}
	}
	return a, nil
}

func (a *extracted) get(name string) (*archFile, error) {
	name = path.Clean(strings.TrimPrefix(name, "/"))
	for i := 0; i < 16; i++ {
		if f, ok := a.files[name]; ok {
			return f, nil
		}
		t, ok := a.links[name]
		if !ok {
			break
		}
		name = path.Clean(strings.TrimPrefix(t, "/"))
	}
	return nil, fmt.Errorf("archive has no file %s", name)
}

func (a *extracted) read(name string) ([]byte, error) {
	f, err := a.get(name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(f.path)
}

// adoptBlob moves an extracted file into blobs/ under its digest.
func (s *Store) adoptBlob(f *archFile) error {
	if f.moved || s.hasBlob(f.digest) {
		return nil
	}
	if err := os.Rename(f.path, s.blobPath(f.digest)); err != nil {
		return fmt.Errorf("store blob %s: %w", f.digest, err)
	}
	f.moved = true
	f.path = s.blobPath(f.digest)
	return nil
}

func layerMediaType(f *archFile) (types.MediaType, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(fh, head)
	switch {
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return types.OCILayer, nil
	case n == 4 && bytes.Equal(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return types.OCILayerZStd, nil
	}
	return ociLayerTar, nil
}

func (s *Store) loadDocker(a *extracted) ([]string, error) {
	mb, err := a.read("manifest.json")
	if err != nil {
		return nil, err
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(mb, &entries); err != nil {
		return nil, fmt.Errorf("load: parse manifest.json: %w", err)
	}
	var out []string
	for _, e := range entries {
		cf, err := a.get(e.Config)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		rawConfig, err := os.ReadFile(cf.path)
		if err != nil {
			return nil, err
		}
		var layers []*archFile
		for _, l := range e.Layers {
			f, err := a.get(l)
			if err != nil {
				return nil, fmt.Errorf("load: %w", err)
			}
			layers = append(layers, f)
		}
		img, err := s.loadImage(rawConfig, nil, layers, nil)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		var names []string
		for _, t := range e.RepoTags {
			c, err := CanonicalName(t)
			if err != nil {
				return nil, fmt.Errorf("load: %w", err)
			}
			names = append(names, c)
		}
		if img, err = s.register(img, names); err != nil {
			return nil, err
		}
		out = append(out, loadedLines(img, names)...)
	}
	return out, nil
}

func loadedLines(img *Image, names []string) []string {
	if len(names) == 0 {
		return []string{"Loaded image ID: " + img.ID.String()}
	}
	var out []string
	for _, n := range names {
		out = append(out, "Loaded image: "+FamiliarName(n))
	}
	return out
}

// loadImage stores an image given its config and layer files, writing an OCI manifest when
// none comes with it. Layers are unpacked and checked against the config's diff IDs.
func (s *Store) loadImage(rawConfig []byte, rawManifest []byte, layers []*archFile, mediaTypes []types.MediaType) (*Image, error) {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("image config lists %d layers, archive %d", len(cfg.RootFS.DiffIDs), len(layers))
	}
	cd, err := s.writeBlob(rawConfig)
	if err != nil {
		return nil, err
	}
	img := &Image{ID: cd, Created: cfg.Created.Time.UTC()}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cd, Size: int64(len(rawConfig))}}
	for i, f := range layers {
		if err := s.adoptBlob(f); err != nil {
			return nil, err
		}
		res, err := s.ensureLayer(f.digest, cfg.RootFS.DiffIDs[i], nil, nil)
		if err != nil {
			return nil, err
		}
		mt := types.MediaType("")
		if mediaTypes != nil {
			mt = mediaTypes[i]
		} else if mt, err = layerMediaType(f); err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Digest: f.digest, Size: f.size})
		img.Layers = append(img.Layers, cfg.RootFS.DiffIDs[i])
		img.Blobs = append(img.Blobs, f.digest)
		img.Size += res.sizes.Files
	}
	if rawManifest == nil {
		if rawManifest, err = json.Marshal(m); err != nil {
			return nil, err
		}
	}
	if img.Digest, err = s.writeBlob(rawManifest); err != nil {
		return nil, err
	}
	return img, nil
}

func (s *Store) loadOCI(a *extracted) ([]string, error) {
	ib, err := a.read("index.json")
	if err != nil {
		return nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(ib, &idx); err != nil {
		return nil, fmt.Errorf("load: parse index.json: %w", err)
	}
	blob := func(h v1.Hash) (*archFile, error) {
		f, err := a.get("blobs/" + h.Algorithm + "/" + h.Hex)
		if err != nil {
			return nil, err
		}
		if f.digest != h {
			return nil, fmt.Errorf("blob %s in archive has digest %s", h, f.digest)
		}
		return f, nil
	}
	var out []string
	var walk func(descs []v1.Descriptor, inherited string) error
	walk = func(descs []v1.Descriptor, inherited string) error {
		for _, d := range descs {
			n := d.Annotations["io.containerd.image.name"]
			if n == "" {
				n = d.Annotations["org.opencontainers.image.ref.name"]
			}
			if n == "" {
				n = inherited
			}
			f, err := blob(d.Digest)
			if err != nil {
				return err
			}
			raw, err := os.ReadFile(f.path)
			if err != nil {
				return err
			}
			if d.MediaType.IsIndex() {
				var sub v1.IndexManifest
				if err := json.Unmarshal(raw, &sub); err != nil {
					return fmt.Errorf("parse index %s: %w", d.Digest, err)
				}
				var pick []v1.Descriptor
				for _, m := range sub.Manifests {
					if platformMatches(m.Platform, HostPlatform()) {
						pick = append(pick, m)
						break
					}
				}
				if len(pick) == 0 {
					return fmt.Errorf("index %s has no image for %s", d.Digest, HostPlatform())
				}
				if err := walk(pick, n); err != nil {
					return err
				}
				continue
			}
			var m v1.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				return fmt.Errorf("parse manifest %s: %w", d.Digest, err)
			}
			cf, err := blob(m.Config.Digest)
			if err != nil {
				return err
			}
			rawConfig, err := os.ReadFile(cf.path)
			if err != nil {
				return err
			}
			var layers []*archFile
			var mts []types.MediaType
			for _, l := range m.Layers {
				lf, err := blob(l.Digest)
				if err != nil {
					return err
				}
				layers = append(layers, lf)
				mts = append(mts, l.MediaType)
			}
			img, err := s.loadImage(rawConfig, raw, layers, mts)
			if err != nil {
				return err
			}
			var names []string
			// A bare tag ("latest") names no repository, so it cannot name the image.
			if n != "" && strings.ContainsAny(n, "/:") {
				c, err := CanonicalName(n)
				if err != nil {
					return err
				}
				names = []string{c}
			}
			if img, err = s.register(img, names); err != nil {
				return err
			}
			out = append(out, loadedLines(img, names)...)
		}
		return nil
	}
	if err := walk(idx.Manifests, ""); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return out, nil
}
