package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// --userns=auto gives each container its own range of 65536 host ids, starting at
// userNSBase (far above the ranges /etc/subuid hands to users by convention). A range is
// claimed by creating <root>/userns/<block> exclusively, holding the container's id, and
// freed when the container is removed; a claim whose container is gone is taken over.
const (
	userNSBase   = 1 << 30
	userNSSize   = 65536
	userNSBlocks = 16384
)

func (e *Engine) allocUserNS(id string) (*IDMap, error) {
	dir := filepath.Join(e.Root, "userns")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--userns=auto: %w", err)
	}
	for k := 0; k < userNSBlocks; k++ {
		p := filepath.Join(dir, strconv.Itoa(k))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			owner, rerr := os.ReadFile(p)
			if rerr == nil && len(owner) == 64 && !e.nameOwnerAlive(string(owner)) {
				if os.Remove(p) == nil {
					k-- // try this block again
				}
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("--userns=auto: claim %s: %w", p, err)
		}
		_, err = f.WriteString(id)
		f.Close()
		if err != nil {
			os.Remove(p)
			return nil, fmt.Errorf("--userns=auto: claim %s: %w", p, err)
		}
		return &IDMap{ContainerID: 0, HostID: uint32(userNSBase + k*userNSSize), Size: userNSSize}, nil
	}
	return nil, errors.New("--userns=auto: every id range is taken")
}

func (e *Engine) freeUserNS(id string) {
	dir := filepath.Join(e.Root, "userns")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, d := range ents {
		p := filepath.Join(dir, d.Name())
		if b, err := os.ReadFile(p); err == nil && string(b) == id {
			os.Remove(p)
		}
	}
}
