//go:build !berth_lean

package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image/archive"
)

// fetchFunc opens a layer blob's compressed stream (from a registry or an archive).
type fetchFunc func() (io.ReadCloser, error)

// layerResult says what ensureLayer had to do.
type layerResult struct {
	sizes      layerSizes
	downloaded bool // the blob was fetched
	unpacked   bool // the layer was unpacked
}

// ensureLayer makes sure the blob `blob` and its unpacked layer `diffID` are both in the
// store. When both are missing, one pass over the fetched stream writes the blob, unpacks the
// layer and checks both digests. Everything is written in ingest/ and renamed into place only
// once verified, under flocks that make concurrent callers for the same content wait and then
// find it done.
func (s *Store) ensureLayer(blob, diffID v1.Hash, fetch fetchFunc, prog *progressLayer) (layerResult, error) {
	var res layerResult
	if blob.Algorithm != "sha256" || diffID.Algorithm != "sha256" {
		return res, fmt.Errorf("layer %s: only sha256 digests are supported", blob)
	}
	bl, err := s.lock(filepath.Join("locks", blob.Hex+".lock"), unix.LOCK_EX)
	if err != nil {
		return res, err
	}
	defer unlock(bl)
	ll, err := s.lock(filepath.Join("locks", "layer-"+diffID.Hex+".lock"), unix.LOCK_EX)
	if err != nil {
		return res, err
	}
	defer unlock(ll)

	haveBlob, haveLayer := s.hasBlob(blob), s.hasLayer(diffID)
	if haveBlob && haveLayer {
		res.sizes, err = s.readLayerSizes(diffID)
		if err != nil {
			return res, fmt.Errorf("layer %s: read sizes: %w", shortID(diffID), err)
		}
		prog.set(stateExists)
		return res, nil
	}

	blobTmp := filepath.Join(s.dir, "ingest", blob.Hex)
	layerTmp := filepath.Join(s.dir, "ingest", "layer-"+diffID.Hex)
	// Whatever is here was left by a writer that died holding these locks.
	os.Remove(blobTmp)
	if !haveLayer {
		if err := s.RemoveAll(layerTmp); err != nil {
			return res, fmt.Errorf("clear stale layer %s: %w", layerTmp, err)
		}
		if err := os.MkdirAll(filepath.Join(layerTmp, "diff"), 0o755); err != nil {
			return res, fmt.Errorf("create layer directory: %w", err)
		}
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(blobTmp)
			s.RemoveAll(layerTmp)
		}
	}()

	var src io.Reader
	var blobFile *os.File
	var blobHash hash.Hash
	if haveBlob {
		f, err := os.Open(s.blobPath(blob))
		if err != nil {
			return res, fmt.Errorf("open blob %s: %w", blob, err)
		}
		defer f.Close()
		src = f
		prog.set(stateExtracting)
	} else {
		if fetch == nil {
			return res, fmt.Errorf("layer blob %s is not in the store", blob)
		}
		rc, err := fetch()
		if err != nil {
			return res, fmt.Errorf("fetch layer %s: %w", blob, err)
		}
		defer rc.Close()
		blobFile, err = os.OpenFile(blobTmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return res, fmt.Errorf("create %s: %w", blobTmp, err)
		}
		defer blobFile.Close()
		blobHash = sha256.New()
		src = io.TeeReader(prog.reader(rc), io.MultiWriter(blobFile, blobHash))
		res.downloaded = true
		prog.set(stateDownloading)
	}

	if !haveLayer {
		sizes, err := s.unpackVerified(src, filepath.Join(layerTmp, "diff"), diffID)
		if err != nil {
			return res, fmt.Errorf("layer %s: %w", shortID(blob), err)
		}
		res.sizes, res.unpacked = sizes, true
	}
	// Read what the unpacker did not need (tar padding, or the whole blob when only the blob
	// was missing) so the blob digest covers every byte.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return res, fmt.Errorf("read layer %s: %w", blob, err)
	}

	if blobFile != nil {
		if got := hex.EncodeToString(blobHash.Sum(nil)); got != blob.Hex {
			return res, fmt.Errorf("layer blob digest mismatch: expected %s, got sha256:%s", blob, got)
		}
		if err := blobFile.Close(); err != nil {
			return res, fmt.Errorf("write %s: %w", blobTmp, err)
		}
		if err := os.Rename(blobTmp, s.blobPath(blob)); err != nil {
			return res, fmt.Errorf("commit blob %s: %w", blob, err)
		}
	}
	if res.unpacked {
		if err := s.commitLayer(layerTmp, diffID, res.sizes); err != nil {
			return res, err
		}
	} else {
		res.sizes, err = s.readLayerSizes(diffID)
		if err != nil {
			return res, fmt.Errorf("layer %s: read sizes: %w", shortID(diffID), err)
		}
	}
	ok = true
	prog.set(stateComplete)
	return res, nil
}

// unpackVerified decompresses r, unpacks it into dir and checks the result's digest against
// diffID.
func (s *Store) unpackVerified(r io.Reader, dir string, diffID v1.Hash) (layerSizes, error) {
	var sizes layerSizes
	dr, _, err := archive.Decompress(r)
	if err != nil {
		return sizes, err
	}
	defer dr.Close()
	dh := sha256.New()
	cr := &countingReader{r: io.TeeReader(dr, dh)}
	st, err := s.UnpackLayer(cr, dir, archive.Options{})
	if err != nil {
		return sizes, err
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return sizes, fmt.Errorf("decompress: %w", err)
	}
	if got := hex.EncodeToString(dh.Sum(nil)); got != diffID.Hex {
		return sizes, fmt.Errorf("uncompressed layer digest mismatch: expected %s, got sha256:%s", diffID, got)
	}
	sizes.Files, sizes.Tar = st.Size, cr.n
	return sizes, nil
}

// commitLayer moves a verified, unpacked layer from ingest/ into layers/ and links it.
func (s *Store) commitLayer(tmp string, diffID v1.Hash, sizes layerSizes) error {
	b, _ := json.Marshal(sizes)
	if err := os.WriteFile(filepath.Join(tmp, "size"), b, 0o644); err != nil {
		return fmt.Errorf("write layer sizes: %w", err)
	}
	link := s.shortLink(diffID)
	target := filepath.Join("..", "layers", diffID.Hex, "diff")
	if cur, err := os.Readlink(link); err == nil {
		if cur != target {
			return fmt.Errorf("layer %s: short link %s already points at %s", diffID, link, cur)
		}
	} else if err := os.Symlink(target, link); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("link layer %s: %w", diffID, err)
	}
	final := filepath.Join(s.dir, "layers", diffID.Hex)
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("commit layer %s: %w", diffID, err)
	}
	return nil
}

// writeBlob stores small content (manifests, configs) under its digest.
func (s *Store) writeBlob(data []byte) (v1.Hash, error) {
	sum := sha256.Sum256(data)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if s.hasBlob(h) {
		return h, nil
	}
	return h, writeFileAtomic(s, s.blobPath(h), data)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
