package netconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// The gateway's sockets are non-blocking: a read or write on one returns at
// once, with what the kernel has or takes, or EAGAIN. Go's net package
// makes these calls as it makes any system call that may block
// (syscall.Syscall): it marks the running P as in a system call, and the
// runtime's monitor thread (sysmon), when it finds the same call in
// progress on two of its ticks (20 µs apart and more), hands the P to
// another thread, woken for it, if no P is idle, which is always so with
// one P per core (GOMAXPROCS=1 on a pinned core, or every P busy). A write
// to a loopback or LAN peer does the receiver's TCP work within the
// writer's system call and takes microseconds, long enough to be seen
// twice now and then; each handoff wakes a thread, and the thread the call
// returns to must then wait for a P. At 17,000 proxied requests a second
// on one core, that was 0.47 futex calls and 1.45 context switches per
// request, where nginx makes none and 0.70 (bench/README.md).
//
// On Linux, SockIO reads and writes a socket through its RawConn with
// rawRead and rawWrite, made with syscall.RawSyscall: the runtime is not
// told, so the P stays with the goroutine, as it may for a call that
// cannot block. Waiting for readiness, and the deadlines, are still the
// poller's (RawConn.Read and Write). The proxy's held flush uses them too
// (ReadOnce, WriteOnce). Elsewhere, and under the race detector
// (sockio_plain.go), rawRead and rawWrite are the syscall package's calls.

// SockIO is the Read and Write of a plain socket (PlainSocket) by rawRead
// and rawWrite: as the connection's own, with the same results and errors
// (*net.OpError with Op "read" or "write"; io.EOF at the end of the
// stream). A Read, or a Write, that starts while another is under way is
// the connection's own: the callbacks' state is one per direction.
type SockIO struct {
	conn net.Conn
	raw  syscall.RawConn

	reading, writing atomic.Bool // a Read, a Write, uses the fields below

	rbuf, wbuf []byte
	rn, wn     int
	rerr, werr error
	readFn     func(uintptr) bool // s.readRaw, bound once, so that Read does not allocate
	writeFn    func(uintptr) bool // s.writeRaw, likewise
}

// NewSockIO returns a SockIO for conn, whose RawConn is raw, or nil where
// there is no reason to use one: not on Linux, not a plain socket.
func NewSockIO(conn net.Conn, raw syscall.RawConn) *SockIO {
	if !useSockIO || raw == nil || !PlainSocket(conn) {
		return nil
	}
	s := &SockIO{conn: conn, raw: raw}
	s.readFn, s.writeFn = s.readRaw, s.writeRaw
	return s
}

// PlainSocket reports whether conn is the net package's own TCP or Unix
// socket, whose descriptor may be read and written directly. A connection
// of another type keeps its own Read and Write, even if it embeds a socket
// and so has a RawConn.
func PlainSocket(conn net.Conn) bool {
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// RawConnOfSocket returns conn's RawConn if conn is a plain socket, nil
// otherwise. It allocates: it is for a new connection.
func RawConnOfSocket(conn net.Conn) syscall.RawConn {
	if !PlainSocket(conn) {
		return nil
	}
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

func (s *SockIO) Read(b []byte) (int, error) {
	if len(b) == 0 || !s.reading.CompareAndSwap(false, true) {
		return s.conn.Read(b)
	}
	s.rbuf = b
	err := s.raw.Read(s.readFn)
	n, rerr := s.rn, s.rerr
	s.rbuf, s.rn, s.rerr = nil, 0, nil
	s.reading.Store(false)
	switch {
	case err != nil: // closed, or the deadline passed
		return 0, s.opError("read", err)
	case rerr != nil:
		return 0, s.opError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readRaw is Read's RawConn.Read callback: it reads once, and asks the
// poller to wait if there is nothing to read yet.
func (s *SockIO) readRaw(fd uintptr) bool {
	n, again, err := ReadOnce(fd, s.rbuf)
	s.rn, s.rerr = n, err
	return !again
}

func (s *SockIO) Write(b []byte) (int, error) {
	if len(b) == 0 || !s.writing.CompareAndSwap(false, true) {
		return s.conn.Write(b)
	}
	s.wbuf = b
	err := s.raw.Write(s.writeFn)
	n, werr := s.wn, s.werr
	s.wbuf, s.wn, s.werr = nil, 0, nil
	s.writing.Store(false)
	switch {
	case err != nil: // closed, or the deadline passed
		return n, s.opError("write", err)
	case werr != nil:
		return n, s.opError("write", werr)
	}
	return n, nil
}

// writeRaw is Write's RawConn.Write callback: it writes until all is
// written, and asks the poller to wait whenever the socket's buffer is
// full.
func (s *SockIO) writeRaw(fd uintptr) bool {
	for len(s.wbuf) > 0 {
		n, again, err := WriteOnce(fd, s.wbuf)
		switch {
		case again:
			return false
		case err != nil:
			s.werr = err
			return true
		case n <= 0 || n > len(s.wbuf):
			s.werr = io.ErrUnexpectedEOF // as poll.FD.Write
			return true
		}
		s.wn += n
		s.wbuf = s.wbuf[n:]
	}
	return true
}

// ReadOnce reads fd into p with rawRead, again if the call was
// interrupted. again reports that there was nothing to read yet (EAGAIN);
// err is any other failure, as an *os.SyscallError; n is 0 at the end of
// the stream. fd must be non-blocking: ReadOnce is for a RawConn.Read
// callback.
func ReadOnce(fd uintptr, p []byte) (n int, again bool, err error) {
	for {
		n, errno := rawRead(int(fd), p)
		if errno == syscall.EINTR {
			continue
		}
		again, err = errnoResult("read", errno)
		return n, again, err
	}
}

// WriteOnce is ReadOnce for writing, with rawWrite: again reports that the
// socket's buffer was full; n is what was written.
func WriteOnce(fd uintptr, p []byte) (n int, again bool, err error) {
	for {
		n, errno := rawWrite(int(fd), p)
		if errno == syscall.EINTR {
			continue
		}
		again, err = errnoResult("write", errno)
		return n, again, err
	}
}

// errnoResult is what ReadOnce and WriteOnce return for errno, other than
// EINTR: nothing for none, again for EAGAIN, else an *os.SyscallError.
func errnoResult(op string, errno syscall.Errno) (again bool, err error) {
	switch errno {
	case 0:
		return false, nil
	case syscall.EAGAIN:
		return true, nil
	}
	return false, os.NewSyscallError(op, errno)
}

// opError wraps err as the connection's own Read or Write would: a
// RawConn's errors (*net.OpError with Op "raw-read" or "raw-write") are
// unwrapped first.
func (s *SockIO) opError(op string, err error) error {
	if oe, ok := errors.AsType[*net.OpError](err); ok {
		err = oe.Err
	}
	la := s.conn.LocalAddr()
	return &net.OpError{Op: op, Net: la.Network(), Source: la, Addr: s.conn.RemoteAddr(), Err: err}
}
