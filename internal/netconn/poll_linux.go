//go:build linux

package netconn

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Poller is an epoll set of the caller's own, for an event loop that
// serves sockets outside the net package's poller (the stream relay):
// level-triggered, with a wake-up pipe. Its sockets are added by
// descriptor (SocketFD) with a Token each, which Wait reports back. It is
// safe for concurrent use but for Close, which must not run with Wake.
type Poller struct {
	raw   []syscall.EpollEvent // Wait's
	epfd  int
	wakeR int // a pipe's read end in epfd: Wake writes to wakeW
	wakeW int
}

// Token identifies a socket to its Poller's user: its index and the
// generation of what is at that index.
type Token struct {
	Index int32
	Gen   uint32
}

// PollEvent is what Wait reports of one socket, or Wake (Woken).
type PollEvent struct {
	Token    Token
	Readable bool // bytes, or the peer's FIN (Hangup tells)
	Writable bool
	Hangup   bool // the peer's FIN or RST, or an error
	Woken    bool // a Wake, not a socket
}

// What a socket is waited for.
const (
	WaitRead   = 1 << iota // bytes, the peer's FIN
	WaitWrite              // room to write
	WaitHangup             // the peer's FIN or RST only (always reported)
	WaitOnce               // report once, then wait for nothing until Modify
)

// wakeToken marks the wake-up pipe's events.
const wakeToken = -1

// ErrWouldBlock is what ReadFD and WriteFD return for a socket that has
// nothing to read, or no room to write.
var ErrWouldBlock = errors.New("netconn: the operation would block")

// NewPoller returns a Poller whose Wait reports up to maxEvents events.
func NewPoller(maxEvents int) (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netconn: cannot create an epoll set: %w", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("netconn: cannot create a wake-up pipe: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeToken}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(pipe[0])
		syscall.Close(pipe[1])
		return nil, fmt.Errorf("netconn: cannot watch the wake-up pipe: %w", err)
	}
	return &Poller{raw: make([]syscall.EpollEvent, maxEvents), epfd: epfd, wakeR: pipe[0], wakeW: pipe[1]}, nil
}

func epollEvents(wait int) uint32 {
	var e uint32 = syscall.EPOLLRDHUP
	if wait&WaitRead != 0 {
		e |= syscall.EPOLLIN
	}
	if wait&WaitWrite != 0 {
		e |= syscall.EPOLLOUT
	}
	if wait&WaitOnce != 0 {
		e |= syscall.EPOLLONESHOT
	}
	return e
}

// Add waits for fd as wait says (WaitRead, WaitWrite, WaitHangup; 0 for
// errors only), reporting tok.
func (p *Poller) Add(fd int, tok Token, wait int) error {
	ev := syscall.EpollEvent{Events: epollEvents(wait), Fd: tok.Index, Pad: int32(tok.Gen)}
	if wait == 0 {
		ev.Events = 0
	}
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// Modify changes what fd is waited for.
func (p *Poller) Modify(fd int, tok Token, wait int) error {
	ev := syscall.EpollEvent{Events: epollEvents(wait), Fd: tok.Index, Pad: int32(tok.Gen)}
	if wait == 0 {
		ev.Events = 0
	}
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, fd, &ev)
}

// Remove stops waiting for fd; it must be called before fd is closed.
func (p *Poller) Remove(fd int) {
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
}

// Wait waits up to timeout (negative: without one) for events, and fills
// evs with them: it returns how many. A Wake is reported once however
// many were made since the last. One goroutine only may call it.
func (p *Poller) Wait(evs []PollEvent, timeout time.Duration) (int, error) {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	raw := p.raw[:min(len(p.raw), len(evs))]
	n, err := syscall.EpollWait(p.epfd, raw, ms)
	if err != nil {
		if errors.Is(err, syscall.EINTR) {
			return 0, nil
		}
		return 0, err
	}
	for i, ev := range raw[:n] {
		if ev.Fd == wakeToken {
			p.drainWake()
			evs[i] = PollEvent{Woken: true}
			continue
		}
		evs[i] = PollEvent{
			Token:    Token{Index: ev.Fd, Gen: uint32(ev.Pad)},
			Readable: ev.Events&syscall.EPOLLIN != 0,
			Writable: ev.Events&syscall.EPOLLOUT != 0,
			Hangup:   ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0,
		}
	}
	return n, nil
}

// Wake makes a Wait return.
func (p *Poller) Wake() { syscall.Write(p.wakeW, []byte{0}) }

func (p *Poller) drainWake() {
	var b [64]byte
	for {
		if n, err := syscall.Read(p.wakeR, b[:]); n <= 0 || err != nil {
			return
		}
	}
}

// Close closes the epoll set and the wake-up pipe.
func (p *Poller) Close() {
	syscall.Close(p.epfd)
	syscall.Close(p.wakeR)
	syscall.Close(p.wakeW)
}

// SocketFD returns the descriptor of raw's socket.
func SocketFD(raw syscall.RawConn) (int, error) {
	fd := -1
	if err := raw.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, err
	}
	if fd < 0 {
		return -1, errNoSyscallConn
	}
	return fd, nil
}

// ReadFD reads from the non-blocking socket fd: ErrWouldBlock if it has
// nothing yet, (0, nil) at its end.
func ReadFD(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, b)
		switch err {
		case nil:
			return n, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, ErrWouldBlock
		}
		return 0, err
	}
}

// WriteFD writes to the non-blocking socket fd what it takes now: n <
// len(b) with ErrWouldBlock if not all of it.
func WriteFD(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Write(fd, b)
		switch err {
		case nil:
			if n < len(b) {
				return n, ErrWouldBlock
			}
			return n, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, ErrWouldBlock
		}
		return 0, err
	}
}
