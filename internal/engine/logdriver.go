package engine

import (
	"errors"
	"strconv"
)

// Log drivers: json-file (the monitor writes <id>-json.log) and none (the monitor writes
// nothing; the output still reaches attached clients, so a foreground run shows it).

// LogDriverNone is --log-driver none.
const LogDriverNone = "none"

// ErrLogsNotReadable is `berth logs` on a container whose driver keeps no log: Docker's
// error.
var ErrLogsNotReadable = errors.New("configured logging driver does not support reading")

// checkLogConfig validates --log-driver and --log-opt and fills in the defaults.
func checkLogConfig(lc *LogConfig) error {
	if lc.Type == "" {
		lc.Type = "json-file"
	}
	if lc.Config == nil {
		lc.Config = map[string]string{}
	}
	switch lc.Type {
	case "json-file":
	case LogDriverNone:
		// Docker takes any option for none, and has no use for them.
		return nil
	default:
		return usagef("logger: no log driver named '%s' is registered (berth has json-file and none)", lc.Type)
	}
	for k, v := range lc.Config {
		switch k {
		case "max-size":
			if _, err := ParseSize(v); err != nil {
				return usagef("invalid log option max-size %q: %v", v, err)
			}
		case "max-file":
			if n, err := strconv.Atoi(v); err != nil || n < 1 {
				return usagef("invalid log option max-file %q: must be a positive number", v)
			}
		default:
			return usagef("unknown log opt '%s' for json-file log driver", k)
		}
	}
	if _, ok := lc.Config["max-size"]; !ok {
		lc.Config["max-size"] = defaultLogMaxSize
		if _, ok := lc.Config["max-file"]; !ok {
			lc.Config["max-file"] = defaultLogMaxFiles
		}
	}
	return nil
}

// noLog tells whether the container keeps no log.
func noLog(c *Container) bool { return c.HostConfig.LogConfig.Type == LogDriverNone }
