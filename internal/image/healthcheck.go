package image

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// parseHealthcheck reads a Dockerfile HEALTHCHECK's arguments: NONE, or [--interval=D]
// [--timeout=D] [--start-period=D] [--retries=N] CMD command (shell form: CMD-SHELL; JSON
// array: CMD). --start-interval is refused: the image config's schema here
// (go-containerregistry's) has no field for it.
func parseHealthcheck(rest string) (*v1.HealthConfig, error) {
	if strings.EqualFold(strings.TrimSpace(rest), "NONE") {
		return &v1.HealthConfig{Test: []string{"NONE"}}, nil
	}
	h := &v1.HealthConfig{}
	for strings.HasPrefix(rest, "--") {
		opt, after, _ := strings.Cut(rest, " ")
		rest = strings.TrimSpace(after)
		k, v, ok := strings.Cut(strings.TrimPrefix(opt, "--"), "=")
		if !ok {
			return nil, fmt.Errorf("HEALTHCHECK option %s needs a value (%s=VALUE)", opt, opt)
		}
		var d time.Duration
		var err error
		if k != "retries" {
			if d, err = time.ParseDuration(v); err != nil || d < 0 {
				return nil, fmt.Errorf("HEALTHCHECK --%s: %q is not a duration", k, v)
			}
		}
		switch k {
		case "interval":
			h.Interval = d
		case "timeout":
			h.Timeout = d
		case "start-period":
			h.StartPeriod = d
		case "retries":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("HEALTHCHECK --retries: %q is not a count", v)
			}
			h.Retries = n
		default:
			return nil, fmt.Errorf("HEALTHCHECK: unknown option --%s", k)
		}
	}
	instr, cmd, _ := strings.Cut(rest, " ")
	cmd = strings.TrimSpace(cmd)
	if !strings.EqualFold(instr, "CMD") || cmd == "" {
		return nil, fmt.Errorf("HEALTHCHECK needs NONE or CMD and a command")
	}
	if strings.HasPrefix(cmd, "[") {
		var args []string
		if err := json.Unmarshal([]byte(cmd), &args); err != nil || len(args) == 0 {
			return nil, fmt.Errorf("HEALTHCHECK CMD: not a JSON array of strings")
		}
		h.Test = append([]string{"CMD"}, args...)
	} else {
		h.Test = []string{"CMD-SHELL", cmd}
	}
	return h, nil
}
