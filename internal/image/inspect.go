package image

import (
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// InspectInfo is `image inspect` output, with Docker's field names.
type InspectInfo struct {
	ID            string    `json:"Id"`
	RepoTags      []string  `json:"RepoTags"`
	RepoDigests   []string  `json:"RepoDigests"`
	Parent        string    `json:"Parent"`
	Comment       string    `json:"Comment"`
	Created       string    `json:"Created"`
	DockerVersion string    `json:"DockerVersion"`
	Author        string    `json:"Author"`
	Config        v1.Config `json:"Config"`
	Architecture  string    `json:"Architecture"`
	Variant       string    `json:"Variant,omitempty"`
	Os            string    `json:"Os"`
	Size          int64     `json:"Size"`
	RootFS        struct {
		Type   string   `json:"Type"`
		Layers []string `json:"Layers"`
	} `json:"RootFS"`
	Metadata struct {
		LastTagTime string `json:"LastTagTime"`
	} `json:"Metadata"`
	// Digest is the manifest digest (not in Docker's output; podman has it).
	Digest string `json:"Digest"`
}

// Inspect describes img as `docker image inspect` does.
func (s *Store) Inspect(img *Image) (*InspectInfo, error) {
	cf, err := s.ConfigFile(img)
	if err != nil {
		return nil, err
	}
	in := &InspectInfo{
		ID:           img.ID.String(),
		RepoTags:     []string{},
		RepoDigests:  []string{},
		Created:      cf.Created.UTC().Format(time.RFC3339Nano),
		Author:       cf.Author,
		Config:       cf.Config,
		Architecture: cf.Architecture,
		Variant:      cf.Variant,
		Os:           cf.OS,
		Size:         img.Size,
		Digest:       img.Digest.String(),
	}
	for _, n := range img.Names {
		in.RepoTags = append(in.RepoTags, FamiliarName(n))
	}
	for _, rd := range img.RepoDigests {
		in.RepoDigests = append(in.RepoDigests, FamiliarName(rd))
	}
	if len(cf.History) > 0 {
		in.Comment = cf.History[len(cf.History)-1].Comment
	}
	in.RootFS.Type = "layers"
	in.RootFS.Layers = []string{}
	for _, l := range img.Layers {
		in.RootFS.Layers = append(in.RootFS.Layers, l.String())
	}
	if !img.Added.IsZero() {
		in.Metadata.LastTagTime = img.Added.Format(time.RFC3339Nano)
	}
	return in, nil
}

// HistoryEntry is one line of `image history`.
type HistoryEntry struct {
	ID        string // the image ID on the top entry, "<missing>" below, as Docker prints
	Created   time.Time
	CreatedBy string
	Size      int64
	Comment   string
	Empty     bool
}

// History lists img's build steps, newest first, with the size of the layer each added.
func (s *Store) History(img *Image) ([]HistoryEntry, error) {
	cf, err := s.ConfigFile(img)
	if err != nil {
		return nil, err
	}
	sizes := make([]int64, len(img.Layers))
	for i, l := range img.Layers {
		if ls, err := s.readLayerSizes(l); err == nil {
			sizes[i] = ls.Files
		}
	}
	hist := cf.History
	if len(hist) == 0 {
		// Images without history get one entry per layer.
		for range img.Layers {
			hist = append(hist, v1.History{})
		}
	}
	var out []HistoryEntry
	li := 0
	for _, h := range hist {
		e := HistoryEntry{ID: "<missing>", Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment, Empty: h.EmptyLayer}
		if !h.EmptyLayer && li < len(sizes) {
			e.Size = sizes[li]
			li++
		}
		out = append(out, e)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > 0 {
		out[0].ID = img.ID.String()
	}
	return out, nil
}
