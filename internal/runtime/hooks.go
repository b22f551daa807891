package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runHooks runs each hook of one kind in order with the container's state on stdin, as the
// OCI runtime spec says; the first failure stops the rest and is returned.
func runHooks(kind string, hooks []specs.Hook, st specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for i, h := range hooks {
		if err := runHook(h, state); err != nil {
			return fmt.Errorf("hooks.%s[%d] %s: %w", kind, i, h.Path, err)
		}
	}
	return nil
}

func runHook(h specs.Hook, state []byte) error {
	ctx := context.Background()
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("timeout %d must be positive", *h.Timeout)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	} else {
		cmd.Args = []string{h.Path}
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%v: %s", ee, bytes.TrimSpace(out.Bytes()))
		}
		return err
	}
	return nil
}

// runHooksWarn runs every hook of one kind even when some fail, and reports each failure
// through warn: the spec has the remaining poststart and poststop hooks, and the lifecycle,
// go on as if a failed one had succeeded.
func runHooksWarn(kind string, hooks []specs.Hook, st specs.State, warn func(error)) {
	if len(hooks) == 0 {
		return
	}
	state, err := json.Marshal(st)
	if err != nil {
		warn(fmt.Errorf("hooks.%s: %w", kind, err))
		return
	}
	for i, h := range hooks {
		if err := runHook(h, state); err != nil {
			warn(fmt.Errorf("hooks.%s[%d] %s: %w", kind, i, h.Path, err))
		}
	}
}

// hookState is the OCI state given to hooks.
func hookState(id string, status specs.ContainerState, pid int, bundle string, ann map[string]string) specs.State {
	return specs.State{Version: specs.Version, ID: id, Status: status, Pid: pid, Bundle: bundle, Annotations: ann}
}
