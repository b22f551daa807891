//go:build !berth_lean

package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression is a layer blob's compression, detected from its first bytes.
type Compression int

const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "uncompressed"
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Decompress returns the uncompressed stream of r, whatever of gzip, zstd or plain tar it
// holds. Media types are not trusted for this: registries and tools mislabel layers often
// enough that the bytes are the better witness.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, Uncompressed, fmt.Errorf("read layer header: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, Gzip, fmt.Errorf("open gzip layer: %w", err)
		}
		return zr, Gzip, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false))
		if err != nil {
			return nil, Zstd, fmt.Errorf("open zstd layer: %w", err)
		}
		return zstdCloser{zr}, Zstd, nil
	}
	return io.NopCloser(br), Uncompressed, nil
}

type zstdCloser struct{ *zstd.Decoder }

func (z zstdCloser) Close() error { z.Decoder.Close(); return nil }
