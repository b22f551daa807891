//go:build !berth_lean

package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image/archive"
)

var zeroTime = time.Unix(0, 0)

// ImportOptions tunes Import.
type ImportOptions struct {
	// Ref names the new image ("" leaves it untagged).
	Ref string
	// Changes are Dockerfile instructions applied to the config: CMD, ENTRYPOINT, ENV,
	// WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL, HEALTHCHECK.
	Changes []string
	// Message is the history comment.
	Message string
	// Platform is recorded in the config (the host's when nil).
	Platform *v1.Platform
}

// Import makes a one-layer image from a root filesystem tarball (plain, gzip or zstd). One
// pass over the stream compresses the layer blob, unpacks the layer and computes both
// digests.
func (s *Store) Import(r io.Reader, o ImportOptions) (*Image, error) {
	var cfg v1.Config
	for _, c := range o.Changes {
		if err := ApplyChange(&cfg, c); err != nil {
			return nil, err
		}
	}
	var names []string
	if o.Ref != "" {
		c, err := CanonicalName(o.Ref)
		if err != nil {
			return nil, err
		}
		if strings.Contains(c, "@") {
			return nil, fmt.Errorf("import: cannot name an image by digest (%s)", o.Ref)
		}
		names = []string{c}
	}
	wl, err := s.writerLock()
	if err != nil {
		return nil, err
	}
	defer unlock(wl)

	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "ingest"), "import-")
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer s.RemoveAll(tmp)
	layerTmp := filepath.Join(tmp, "layer")
	if err := os.MkdirAll(filepath.Join(layerTmp, "diff"), 0o755); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	blobTmp := filepath.Join(tmp, "blob")
	bf, err := os.Create(blobTmp)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer bf.Close()

	dr, _, err := archive.Decompress(r)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer dr.Close()
	bh, dh := sha256.New(), sha256.New()
	bc := &countingWriter{w: io.MultiWriter(bf, bh)}
	gz, err := gzip.NewWriterLevel(bc, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	src := &countingReader{r: io.TeeReader(dr, io.MultiWriter(dh, gz))}
	st, err := s.UnpackLayer(src, filepath.Join(layerTmp, "diff"), archive.Options{})
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("import: compress layer: %w", err)
	}
	if err := bf.Close(); err != nil {
		return nil, fmt.Errorf("import: write layer: %w", err)
	}
	blob := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(bh.Sum(nil))}
	diff := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(dh.Sum(nil))}
	sizes := layerSizes{Files: st.Size, Tar: src.n}

	if err := s.commitImported(blobTmp, layerTmp, blob, diff, sizes); err != nil {
		return nil, err
	}

	plat := HostPlatform()
	if o.Platform != nil {
		plat = *o.Platform
	}
	now := time.Now().UTC()
	cf := v1.ConfigFile{
		Architecture: plat.Architecture, OS: plat.OS, Variant: plat.Variant,
		Created: v1.Time{Time: now},
		Config:  cfg,
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diff}},
		History: []v1.History{{Created: v1.Time{Time: now}, CreatedBy: "berth import", Comment: o.Message}},
	}
	rawConfig, err := json.Marshal(cf)
	if err != nil {
		return nil, err
	}
	cd, err := s.writeBlob(rawConfig)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cd, Size: int64(len(rawConfig))},
		Layers: []v1.Descriptor{{MediaType: types.OCILayer, Digest: blob, Size: bc.n}}}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	md, err := s.writeBlob(rawManifest)
	if err != nil {
		return nil, err
	}
	img := &Image{ID: cd, Digest: md, Layers: []v1.Hash{diff}, Blobs: []v1.Hash{blob}, Size: st.Size, Created: now, Added: now}
	return s.register(img, names)
}

// ImportDir is Import of the tree under dir.
func (s *Store) ImportDir(dir string, o ImportOptions) (*Image, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.Tar(pw, dir, archive.TarOptions{})) }()
	img, err := s.Import(pr, o)
	pr.CloseWithError(io.ErrClosedPipe)
	return img, err
}

func (s *Store) commitImported(blobTmp, layerTmp string, blob, diff v1.Hash, sizes layerSizes) error {
	bl, err := s.lock(filepath.Join("locks", blob.Hex+".lock"), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock(bl)
	ll, err := s.lock(filepath.Join("locks", "layer-"+diff.Hex+".lock"), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock(ll)
	if !s.hasBlob(blob) {
		if err := os.Rename(blobTmp, s.blobPath(blob)); err != nil {
			return fmt.Errorf("import: commit blob: %w", err)
		}
	}
	if !s.hasLayer(diff) {
		return s.commitLayer(layerTmp, diff, sizes)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ApplyChange applies one Dockerfile instruction (as `docker import --change` takes) to cfg.
func ApplyChange(cfg *v1.Config, change string) error {
	change = strings.TrimSpace(change)
	instr, rest, _ := strings.Cut(change, " ")
	rest = strings.TrimSpace(rest)
	bad := func(why string) error { return fmt.Errorf("invalid change %q: %s", change, why) }
	switch strings.ToUpper(instr) {
	case "CMD", "ENTRYPOINT":
		var args []string
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &args); err != nil {
				return bad("not a JSON array of strings")
			}
		} else if rest != "" {
			args = []string{"/bin/sh", "-c", rest}
		}
		if strings.EqualFold(instr, "CMD") {
			cfg.Cmd = args
		} else {
			cfg.Entrypoint = args
		}
	case "ENV":
		kvs, err := keyValues(rest)
		if err != nil {
			return bad(err.Error())
		}
		for _, kv := range kvs {
			k, _, _ := strings.Cut(kv, "=")
			replaced := false
			for i, e := range cfg.Env {
				if strings.HasPrefix(e, k+"=") {
					cfg.Env[i], replaced = kv, true
				}
			}
			if !replaced {
				cfg.Env = append(cfg.Env, kv)
			}
		}
	case "LABEL":
		kvs, err := keyValues(rest)
		if err != nil {
			return bad(err.Error())
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			k, v, _ := strings.Cut(kv, "=")
			cfg.Labels[k] = v
		}
	case "WORKDIR":
		if rest == "" {
			return bad("WORKDIR needs a path")
		}
		cfg.WorkingDir = rest
	case "USER":
		if rest == "" {
			return bad("USER needs a user")
		}
		cfg.User = rest
	case "STOPSIGNAL":
		if rest == "" {
			return bad("STOPSIGNAL needs a signal")
		}
		cfg.StopSignal = rest
	case "EXPOSE":
		if rest == "" {
			return bad("EXPOSE needs a port")
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range strings.Fields(rest) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case "HEALTHCHECK":
		h, err := parseHealthcheck(rest)
		if err != nil {
			return bad(err.Error())
		}
		cfg.Healthcheck = h
	case "VOLUME":
		var vols []string
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				return bad("not a JSON array of strings")
			}
		} else {
			vols = strings.Fields(rest)
		}
		if len(vols) == 0 {
			return bad("VOLUME needs a path")
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			cfg.Volumes[v] = struct{}{}
		}
	default:
		return bad("only CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL and HEALTHCHECK can be changed")
	}
	return nil
}

// keyValues parses `k=v k2="v 2"` or the legacy `k value with spaces`.
func keyValues(s string) ([]string, error) {
	if s == "" {
		return nil, fmt.Errorf("needs key=value")
	}
	first := strings.Fields(s)[0]
	if !strings.Contains(first, "=") {
		k, v, _ := strings.Cut(s, " ")
		return []string{k + "=" + strings.TrimSpace(v)}, nil
	}
	var out []string
	var cur strings.Builder
	var quote rune
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, c := range s {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && (c == ' ' || c == '\t'):
			flush()
		default:
			cur.WriteRune(c)
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	flush()
	for _, kv := range out {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
	}
	return out, nil
}
