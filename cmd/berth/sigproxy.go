package main

// #include <errno.h>
// int berth_sigproxy_catch(int fd);
// int berth_sigproxy_default(int sig);
import "C"

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine"
)

// sigProxy forwards the signals this command receives to a container's process, as
// Docker's --sig-proxy does: every signal but the faults, the terminal's SIGWINCH and
// the children's SIGCHLD (sigproxy.c lists them and why).
//
// Why not os/signal: catching every signal there enables each one in a round trip with a
// thread of the runtime's own, about 60 of them, which made `berth run --rm busybox true`
// 1.2 ms slower (interleaved pairs, n=40, even when started in the background while the
// container was created; alone, signal.Notify of every signal takes 1.8-2.1 ms against
// 0.1 ms for one). Here a C handler per signal writes its number to a pipe that a
// goroutine reads: about 60 sigaction calls, and no thread. The proxy owns these signals
// for the rest of the process: nothing else in it may signal.Notify them.
//
// A signal that comes while nothing is forwarded (before the container runs, or after it
// ended) gets its default action, as if it were not caught.
type sigProxy struct {
	kill  func(id string, sig unix.Signal) error
	id    string
	state atomic.Int32 // proxyIdle, proxyForwarding or proxyOver
}

const (
	proxyIdle = iota
	proxyForwarding
	proxyOver
)

// startSigProxy catches every signal that is forwarded.
func startSigProxy(e *engine.Engine) (*sigProxy, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("signal proxy: pipe: %w", err)
	}
	r := os.NewFile(uintptr(fds[0]), "sigproxy")
	if sig, err := C.berth_sigproxy_catch(C.int(fds[1])); sig != 0 {
		r.Close()
		unix.Close(fds[1])
		return nil, fmt.Errorf("signal proxy: sigaction %v: %w", syscall.Signal(sig), err)
	}
	p := &sigProxy{kill: func(id string, sig unix.Signal) error { return e.Kill(id, sig) }}
	go func() {
		var buf [64]byte
		for {
			n, err := r.Read(buf[:])
			for _, b := range buf[:n] {
				p.handle(syscall.Signal(b))
			}
			if err != nil {
				return
			}
		}
	}()
	return p, nil
}

// forward sends what comes from now on to container id.
func (p *sigProxy) forward(id string) {
	p.id = id
	p.state.Store(proxyForwarding)
}

// stop ends the forwarding (the signals stay caught, see sigProxy).
func (p *sigProxy) stop() { p.state.Store(proxyOver) }

func (p *sigProxy) handle(sig syscall.Signal) {
	if p.state.Load() != proxyForwarding {
		C.berth_sigproxy_default(C.int(sig))
		unix.Kill(os.Getpid(), sig)
		return
	}
	p.kill(p.id, unix.Signal(sig))
}
