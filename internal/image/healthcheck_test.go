package image_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-containers/berth/internal/image"
)

// HEALTHCHECK as `import --change` takes it: Docker's Dockerfile forms.
func TestApplyChangeHealthcheck(t *testing.T) {
	for _, c := range []struct {
		change string
		want   *v1.HealthConfig
		err    string
	}{
		{"HEALTHCHECK NONE", &v1.HealthConfig{Test: []string{"NONE"}}, ""},
		{"HEALTHCHECK CMD curl -f http://localhost/ || exit 1", &v1.HealthConfig{Test: []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}}, ""},
		{`HEALTHCHECK --interval=5s --timeout=2s --start-period=1m --retries=4 CMD ["test", "-f", "/ok"]`,
			&v1.HealthConfig{Test: []string{"CMD", "test", "-f", "/ok"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, StartPeriod: time.Minute, Retries: 4}, ""},
		{"HEALTHCHECK --interval=soon CMD true", nil, `HEALTHCHECK --interval: "soon" is not a duration`},
		{"HEALTHCHECK --retries=-1 CMD true", nil, `HEALTHCHECK --retries: "-1" is not a count`},
		{"HEALTHCHECK --start-interval=1s CMD true", nil, "unknown option --start-interval"},
		{"HEALTHCHECK --interval CMD true", nil, "needs a value"},
		{"HEALTHCHECK", nil, "needs NONE or CMD"},
		{"HEALTHCHECK CMD [oops", nil, "not a JSON array"},
	} {
		var cfg v1.Config
		err := image.ApplyChange(&cfg, c.change)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.change, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(cfg.Healthcheck, c.want) {
			t.Errorf("%s: %+v, %v; want %+v", c.change, cfg.Healthcheck, err, c.want)
		}
	}
}
