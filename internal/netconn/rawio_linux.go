//go:build linux

package netconn

import (
	"io"
	"net"
	"os"
	"syscall"
)

// RawIO reads and writes a plain socket as its net.Conn does (the same
// deadlines, EOF, and waits in the net package's poller, under the
// socket's own read and write locks), but each read and write is a raw
// system call. The net package's system calls enter the scheduler's
// syscall state, and the first one after the process was idle wakes the
// runtime's monitor thread (sysmon), which then polls every 20 µs: a
// gateway relaying thousands of streams is idle between short bursts,
// and each burst's request reads woke it
// (docs/development.md#raw-socket-reads-and-writes-again). A raw call
// does not block: the socket is non-blocking, and a read or write it
// cannot make now waits in the poller. Under the race detector the
// calls are syscall's own (sockRW).
//
// Read may run with Write; each may be called by one goroutine at a time.
type RawIO struct {
	raw             syscall.RawConn
	conn            net.Conn // for the addresses of errors
	readFn, writeFn func(uintptr) bool
	rb              []byte
	rn              int
	rerr            error
	wb              []byte
	wn              int
	werr            error
}

// NewRawIO returns c's RawIO if c is a plain socket (*net.TCPConn or
// *net.UnixConn), nil otherwise.
func NewRawIO(c net.Conn) *RawIO { return newRawIO(c, rawConnOfSocket(c)) }

// newRawIO returns the RawIO of c, whose RawConn is raw; nil if raw is.
func newRawIO(c net.Conn, raw syscall.RawConn) *RawIO {
	if raw == nil {
		return nil
	}
	r := &RawIO{raw: raw, conn: c}
	r.readFn, r.writeFn = r.readOnce, r.writeSome
	return r
}

// Read reads into b as c.Read would.
func (r *RawIO) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.rb = b
	err := r.raw.Read(r.readFn)
	n, rerr := r.rn, r.rerr
	r.rb, r.rn, r.rerr = nil, 0, nil
	switch {
	case err != nil:
		return 0, err // a *net.OpError: the deadline, or the socket closed
	case rerr != nil:
		return 0, r.opError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r *RawIO) readOnce(fd uintptr) bool {
	n, err := sockRW(syscall.SYS_READ, int(fd), r.rb)
	if err == ErrWouldBlock {
		return false
	}
	r.rn, r.rerr = n, err
	return true
}

// Write writes all of b as c.Write would: n < len(b) only with an error.
func (r *RawIO) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.wb = b
	err := r.raw.Write(r.writeFn)
	n, werr := r.wn, r.werr
	r.wb, r.wn, r.werr = nil, 0, nil
	switch {
	case err != nil:
		return n, err
	case werr != nil:
		return n, r.opError("write", werr)
	}
	return n, nil
}

// writeSome writes what the socket takes now: done once all of it is
// written, or on an error.
func (r *RawIO) writeSome(fd uintptr) bool {
	for r.wn < len(r.wb) {
		n, err := sockRW(syscall.SYS_WRITE, int(fd), r.wb[r.wn:])
		r.wn += n
		switch {
		case err == ErrWouldBlock:
			return false
		case err != nil:
			r.werr = err
			return true
		case n == 0: // not of a socket; never loop on it
			r.werr = io.ErrShortWrite
			return true
		}
	}
	return true
}

func (r *RawIO) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: r.conn.LocalAddr().Network(), Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(), Err: os.NewSyscallError(op, err)}
}
