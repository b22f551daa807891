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
func (o *CreateOpts) loadSpec(bundle string) (*specs.Spec, []byte, error) {
	switch {
	case o.Spec == nil:
		return ReadSpec(bundle)
	case o.SpecJSON != nil:
		return o.Spec, o.SpecJSON, nil
	}
	if err := validateSpec(o.Spec, bundle); err != nil {
		return nil, nil, fmt.Errorf("OCI config: %w", err)
	}
	raw, err := json.Marshal(o.Spec)
	if err != nil {
		return nil, nil, fmt.Errorf("OCI config: encode: %w", err)
	}
	return o.Spec, raw, nil
}
