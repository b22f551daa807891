package runtime

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// loadSpec returns the spec Create works from: o.Spec when the caller built it in memory
// (the engine: no config.json to write and read back), checked as LoadSpec checks a
// bundle's config.json; otherwise the bundle's config.json. Create keeps its own copy in
// the container's state directory either way.
func (o *CreateOpts) loadSpec(bundle string) (*specs.Spec, error) {
	if o.Spec == nil {
		return LoadSpec(bundle)
	}
	if err := validateSpec(o.Spec, bundle); err != nil {
		return nil, fmt.Errorf("OCI config: %w", err)
	}
	return o.Spec, nil
}
