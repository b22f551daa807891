package runtime

import "encoding/json"

// initConfigWire is an initConfig whose spec travels as the bundle's config.json bytes.
// The outer Spec hides the embedded one from encoding/json, so the parent never builds
// the encoders of the whole spec type tree nor encodes the spec; the init decodes the
// same bytes the parent decoded.
type initConfigWire struct {
	*initConfig
	Spec json.RawMessage `json:"spec"`
}

// wireConfig is what spawn sends the init: ic, with the spec as read when there is one.
func (c *creation) wireConfig(ic *initConfig) (any, error) {
	if c.pendingSpec != nil {
		if err := c.storeSpec(); err != nil {
			return nil, err
		}
	}
	if c.rawSpec == nil {
		return ic, nil
	}
	return initConfigWire{initConfig: ic, Spec: c.rawSpec}, nil
}
