package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine"
	"github.com/berth-containers/berth/internal/engine/monitor"
)

type attachOpts struct {
	stdin, tty, sigProxy bool
	// untilStart: the session was opened before the start, so a start error may come.
	untilStart bool
	detachKeys string
	// proxy, with sigProxy, is the signal proxy started already; nil starts one.
	proxy *sigProxy
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// makeRaw puts the terminal in raw mode (cfmakeraw's settings) and returns how to undo it.
func makeRaw(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// parseDetachKeys reads Docker's --detach-keys: comma-separated "ctrl-X" or single
// characters.
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c == '@':
				out = append(out, 0)
			case c >= '[' && c <= '_':
				out = append(out, c-'['+27)
			default:
				return nil, fmt.Errorf("invalid detach keys (%s) provided", s)
			}
		default:
			return nil, fmt.Errorf("invalid detach keys (%s) provided", s)
		}
	}
	return out, nil
}

// detachFilter watches what is typed for the detach keys (a terminal's only).
type detachFilter struct {
	keys    []byte
	matched int
}

// feed returns the input to pass on, holding back a part of the sequence until it is
// complete or broken, and tells whether the sequence is complete (what follows it is
// dropped).
func (d *detachFilter) feed(data []byte) ([]byte, bool) {
	if len(d.keys) == 0 {
		return data, false
	}
	var out []byte
	for _, c := range data {
		if c == d.keys[d.matched] {
			d.matched++
			if d.matched == len(d.keys) {
				return out, true
			}
			continue
		}
		if d.matched > 0 {
			out = append(out, d.keys[:d.matched]...)
			d.matched = 0
		}
		if c == d.keys[0] {
			d.matched = 1
			continue
		}
		out = append(out, c)
	}
	return out, false
}

// attachLoop copies the container's output to ours and our input to the container until
// it exits (returning its code), the user detaches (0), or the monitor goes away.
func attachLoop(e *engine.Engine, s *engine.Session, id string, o attachOpts) (int, error) {
	defer s.Close()
	keys, err := parseDetachKeys(o.detachKeys)
	if err != nil {
		return 125, err
	}
	if o.tty {
		if isTerminal(os.Stdin) && o.stdin {
			restore, err := makeRaw(int(os.Stdin.Fd()))
			if err == nil {
				defer restore()
			}
		}
		resize := func() {
			for _, f := range []*os.File{os.Stdout, os.Stdin} {
				if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
					s.Resize(ws.Row, ws.Col)
					return
				}
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				resize()
			}
		}()
	}
	if o.sigProxy {
		if o.proxy == nil {
			var err error
			if o.proxy, err = startSigProxy(e); err != nil {
				return 125, err
			}
		}
		o.proxy.forward(id)
		defer o.proxy.stop()
	}
	var detached atomic.Bool
	if o.stdin {
		go func() {
			buf := make([]byte, 32<<10)
			df := &detachFilter{}
			if o.tty {
				df.keys = keys
			}
			for {
				n, err := os.Stdin.Read(buf)
				if n > 0 {
					data, detach := df.feed(buf[:n])
					if len(data) > 0 && s.Stdin(data) != nil {
						return
					}
					if detach {
						detached.Store(true)
						s.Close()
						return
					}
				}
				if err != nil {
					if errors.Is(err, io.EOF) && !o.tty {
						s.CloseStdin()
					}
					return
				}
			}
		}()
	}
	for {
		ev, err := s.Next()
		if err != nil {
			if detached.Load() {
				return 0, nil
			}
			// The monitor went away without an exit frame (it was killed): the record says
			// what is known.
			info, ierr := e.Inspect(id)
			if ierr == nil && !info.Running() {
				return info.State.ExitCode, nil
			}
			return 125, fmt.Errorf("lost the connection to the monitor of container %s: %v", id[:12], err)
		}
		switch ev.Type {
		case monitor.FrameStdout:
			os.Stdout.Write(ev.Data)
		case monitor.FrameStderr:
			os.Stderr.Write(ev.Data)
		case monitor.FrameStartError:
			return 125, ev.StartError()
		case monitor.FrameExit:
			return ev.ExitCode(), nil
		case monitor.FrameExited:
			// This process is up already: it finishes the run (records the exit, tears
			// it down, removes an --rm container) sooner than a helper the monitor would
			// start. Should it die meanwhile, the monitor starts the helper after all.
			res, err := e.FinishRun(id)
			if err != nil {
				res = "error " + err.Error()
			}
			s.Cleaned(res)
			return ev.ExitCode(), nil
		}
	}
}
