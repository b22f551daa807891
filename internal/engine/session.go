package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/engine/monitor"
)

// Session is a connection to a container's monitor: the container's output and control
// frames come in, input and window sizes go out.
type Session struct {
	ID   string
	conn net.Conn
	rd   *bufio.Reader
	wmu  sync.Mutex
}

// Event is one frame from the monitor.
type Event struct {
	Type byte // monitor.Frame*
	Data []byte
}

// ExitCode is the payload of an exit frame.
func (ev Event) ExitCode() int {
	n, err := strconv.Atoi(string(ev.Data))
	if err != nil {
		return 255
	}
	return n
}

// StartError is the container's start failure from a start-error frame.
func (ev Event) StartError() *StartError {
	code, msg, _ := strings.Cut(string(ev.Data), " ")
	n, err := strconv.Atoi(code)
	if err != nil {
		return &StartError{Code: 125, Msg: string(ev.Data)}
	}
	return &StartError{Code: n, Msg: msg}
}

// StartError is a container that could not start; Code is Docker's exit code for it.
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

// ExitCode makes the CLI exit with Docker's code.
func (e *StartError) ExitCode() int { return e.Code }

func newSession(id string, conn net.Conn, want byte) (*Session, error) {
	s := &Session{ID: id, conn: conn, rd: bufio.NewReaderSize(conn, 64<<10)}
	if err := s.send(monitor.FrameHello, []byte{want}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("container %s: talk to its monitor: %w", short(id), err)
	}
	return s, nil
}

// dialMonitor connects to the monitor's socket; the directory is reached through a
// descriptor so the path stays within the 108 bytes of a socket address.
func (e *Engine) dialMonitor(id string, want byte) (*Session, error) {
	d, err := os.Open(e.dir(id))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	p := fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), monitor.AttachSocket)
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return nil, err
	}
	return newSession(id, conn, want)
}

func (s *Session) send(typ byte, data []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.conn.Write(monitor.AppendFrame(nil, typ, data))
	return err
}

// Next returns the next frame; io.EOF when the monitor closed the connection.
func (s *Session) Next() (Event, error) {
	var hdr [monitor.HeaderSize]byte
	if _, err := io.ReadFull(s.rd, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return Event{}, err
	}
	n := int(hdr[1])<<24 | int(hdr[2])<<16 | int(hdr[3])<<8 | int(hdr[4])
	if n < 0 || n > monitor.MaxFrame {
		return Event{}, fmt.Errorf("monitor sent a frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rd, b); err != nil {
		return Event{}, io.EOF
	}
	return Event{Type: hdr[0], Data: b}, nil
}

// Stdin sends input for the container.
func (s *Session) Stdin(b []byte) error {
	for len(b) > 0 {
		n := len(b)
		if n > 32<<10 {
			n = 32 << 10
		}
		if err := s.send(monitor.FrameStdin, b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// CloseStdin closes the container's stdin (the client's input ended).
func (s *Session) CloseStdin() error { return s.send(monitor.FrameCloseStdin, nil) }

// Resize sets the container's terminal size.
func (s *Session) Resize(rows, cols uint16) error {
	return s.send(monitor.FrameResize, []byte{byte(rows >> 8), byte(rows), byte(cols >> 8), byte(cols)})
}

// Cleaned tells the monitor the end of the run was handled here, with FinishRun's result.
func (s *Session) Cleaned(result string) error { return s.send(monitor.FrameCleaned, []byte(result)) }

// SetDeadline bounds the next reads.
func (s *Session) SetDeadline(t time.Time) error { return s.conn.SetReadDeadline(t) }

// Close ends the session; the container goes on.
func (s *Session) Close() error { return s.conn.Close() }

// Attach connects to a running container's stdio. want is a set of monitor.Want* flags.
func (e *Engine) Attach(ref string, want byte) (*Session, error) {
	l, err := e.lock(ref, true)
	if err != nil {
		return nil, err
	}
	id := l.id
	st, err := l.readState()
	l.unlock()
	if err != nil {
		return nil, err
	}
	if st.Status != StatusRunning || !alive(st.Pid, st.PidStart) {
		return nil, messagef("You cannot attach to a stopped container, start it first")
	}
	s, err := e.dialMonitor(id, want)
	if err != nil {
		return nil, fmt.Errorf("container %s: its monitor is not reachable: %w", short(id), err)
	}
	return s, nil
}

// socketpair returns a connected pair: a net.Conn for us and a file for the monitor.
func socketpair() (net.Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "monitor-client")
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return conn, os.NewFile(uintptr(fds[1]), "monitor-end"), nil
}
