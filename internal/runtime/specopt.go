package runtime

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// loadSpec returns the spec Create works from, and its JSON: o.Spec when the caller built
// it in memory (the engine: no config.json to write and read back), checked as LoadSpec
// checks a bundle's config.json; o.Spec and o.SpecJSON as ReadSpec gave them; otherwise the
// bundle's config.json. Create keeps the JSON as its own copy in the container's state
// directory either way (exec and update read it).
//
// For a spec in memory the JSON comes later (pending): encoding/json's first encode of a
// spec builds the encoders of its whole type tree, 0.6-0.8 ms in a fresh process against
// 20 µs for the encode itself, and nothing needs the bytes until the init is set up, so
// the encode runs beside the create and Create waits for it while the init works.
func (o *CreateOpts) loadSpec(bundle string) (*specs.Spec, []byte, *pendingJSON, error) {
	switch {
	case o.Spec == nil:
		s, b, err := ReadSpec(bundle)
		return s, b, nil, err
	case o.SpecJSON != nil:
		return o.Spec, o.SpecJSON, nil, nil
	}
	if err := validateSpec(o.Spec, bundle); err != nil {
		return nil, nil, nil, fmt.Errorf("OCI config: %w", err)
	}
	return o.Spec, nil, encodeSpecAsync(o.Spec), nil
}

// pendingJSON is a spec being encoded on another goroutine.
type pendingJSON struct {
	done chan struct{}
	b    []byte
	err  error
}

// encodeSpecAsync encodes s (through linuxSpec, as decodeSpec decodes: the same bytes for
// a Linux spec, and no encoders for other platforms' types). s must not change meanwhile.
func encodeSpecAsync(s *specs.Spec) *pendingJSON {
	p := &pendingJSON{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.b, p.err = json.Marshal(linuxSpec{Version: s.Version, Process: s.Process, Root: s.Root, Hostname: s.Hostname,
			Domainname: s.Domainname, Mounts: s.Mounts, Hooks: s.Hooks, Annotations: s.Annotations, Linux: s.Linux})
		if p.err != nil {
			p.err = fmt.Errorf("OCI config: encode: %w", p.err)
		}
	}()
	return p
}

func (p *pendingJSON) wait() ([]byte, error) {
	<-p.done
	return p.b, p.err
}
