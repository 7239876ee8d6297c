//go:build linux

package netconn

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// Poller is an epoll set of the caller's own, for an event loop that
// serves sockets outside the net package's poller (the stream relay):
// level-triggered, with a wake-up pipe. Its sockets are added by
// descriptor (SocketFD) with a Token each, which Wait reports back. It is
// safe for concurrent use but for Close, which must not run with Wake.
//
// Wait does not block a thread: the epoll set is itself waited on in the
// net package's poller (an epoll set is readable when one of its own is
// ready), so a goroutine waiting costs no thread, and its wake-up is the
// runtime's scheduling, not a thread's.
type Poller struct {
	raw     []syscall.EpollEvent // Wait's
	epfd    int
	file    *os.File           // epfd, in the net package's poller
	rc      syscall.RawConn    // file's
	due     time.Time          // file's read deadline: the last Wait's
	pollFn  func(uintptr) bool // p.poll, bound once so that Wait does not allocate
	polled  []syscall.EpollEvent
	pollN   int   // what poll found in polled
	pollErr error // and its error
	wakeR   int   // a pipe's read end in epfd: Wake writes to wakeW
	wakeW   int
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
	p := &Poller{raw: make([]syscall.EpollEvent, maxEvents), epfd: epfd, wakeR: pipe[0], wakeW: pipe[1]}
	p.pollFn = p.poll
	// Non-blocking, so that os.NewFile puts it in the net package's poller.
	err = syscall.SetNonblock(epfd, true)
	if err == nil {
		p.file = os.NewFile(uintptr(epfd), "epoll")
		p.rc, err = p.file.SyscallConn()
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("netconn: cannot wait on an epoll set: %w", err)
	}
	return p, nil
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
	return epollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// Modify changes what fd is waited for.
func (p *Poller) Modify(fd int, tok Token, wait int) error {
	ev := syscall.EpollEvent{Events: epollEvents(wait), Fd: tok.Index, Pad: int32(tok.Gen)}
	if wait == 0 {
		ev.Events = 0
	}
	return epollCtl(p.epfd, syscall.EPOLL_CTL_MOD, fd, &ev)
}

// Remove stops waiting for fd; it must be called before fd is closed.
func (p *Poller) Remove(fd int) {
	epollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, &syscall.EpollEvent{})
}

// Wait waits for events until due (the zero Time: without a deadline),
// and fills evs with them: it returns how many, 0 if none came by due.
// At a due that has passed it reports what is ready, without waiting.
// A Wake is reported once however many were made since the last. One
// goroutine only may call it.
//
// due is the epoll file's read deadline, a runtime timer: it is set only
// when it changes, so a loop that waits for the same due over many
// wake-ups resets no timer at each.
func (p *Poller) Wait(evs []PollEvent, due time.Time) (int, error) {
	raw := p.raw[:min(len(p.raw), len(evs))]
	if !due.Equal(p.due) {
		p.file.SetReadDeadline(due)
		p.due = due
	}
	p.polled = raw
	err := p.rc.Read(p.pollFn)
	n, werr := p.pollN, p.pollErr
	p.polled, p.pollN, p.pollErr = nil, 0, nil
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// RawConn.Read reports a passed deadline before it polls.
		n, werr = epollPoll(p.epfd, raw)
	case err != nil:
		return 0, err
	}
	if werr == syscall.EINTR {
		return 0, nil
	}
	if werr != nil {
		return 0, werr
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

// poll is Wait's callback of RawConn.Read: it polls the set without
// blocking into p.polled. The net package's poller waits, and calls it
// again once the set is readable. Level-triggered: 0 means nothing is
// ready, so the next event makes the set readable anew.
func (p *Poller) poll(fd uintptr) bool {
	for {
		p.pollN, p.pollErr = epollPoll(int(fd), p.polled)
		if p.pollErr != syscall.EINTR {
			return p.pollN > 0 || p.pollErr != nil
		}
	}
}

// Wake makes a Wait return.
func (p *Poller) Wake() { WriteFD(p.wakeW, []byte{0}) }

func (p *Poller) drainWake() {
	var b [64]byte
	for {
		if n, err := ReadFD(p.wakeR, b[:]); n <= 0 || err != nil {
			return
		}
	}
}

// Close closes the epoll set and the wake-up pipe.
func (p *Poller) Close() {
	if p.file != nil {
		p.file.Close()
	} else {
		syscall.Close(p.epfd)
	}
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
func ReadFD(fd int, b []byte) (int, error) { return rawRW(syscall.SYS_READ, fd, b) }

// WriteFD writes to the non-blocking socket fd what it takes now: n <
// len(b) with ErrWouldBlock if not all of it.
func WriteFD(fd int, b []byte) (int, error) {
	n, err := rawRW(syscall.SYS_WRITE, fd, b)
	if err == nil && n < len(b) {
		err = ErrWouldBlock
	}
	return n, err
}

// The calls a Poller's user makes per event are raw system calls: none of
// them blocks (the sockets and the wake-up pipe are non-blocking, and
// epollPoll does not wait). syscall's own functions tell the scheduler
// that the call may block, and the first such call after the process was
// idle wakes the runtime's monitor thread (sysmon), which then polls every
// 20 µs for a millisecond or more: a relay that wakes for a few events at
// a time would keep that thread busy.

// rawRW reads (SYS_READ) or writes (SYS_WRITE) b on fd, again if a
// signal interrupted it: ErrWouldBlock for EAGAIN.
func rawRW(trap uintptr, fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, ErrWouldBlock
		}
		return 0, e
	}
}

// epollPoll returns the events of epfd ready now, without waiting.
func epollPoll(epfd int, evs []syscall.EpollEvent) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
