package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/authgate/authgate/internal/safelog"
)

// deadlineListener wraps every connection it accepts in a deadlineConn,
// after applying the connection limits, if it has them: a connection
// beyond one is answered and closed there (connLimits.refuse), and never
// returned. Gateway.Serve puts it beneath the TLS listener, so that a
// *tls.Conn's deadlines are the deadlineConn's.
type deadlineListener struct {
	net.Listener
	limits *connLimits // nil: no limits
	// plain is set when the connections carry HTTP itself, not TLS: their
	// first request's head is checked for bare LF line ends (bareLFHead).
	plain bool
}

func (l deadlineListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err // as it is: fasthttp tells timeouts and closes apart
		}
		var ip netip.Addr
		if l.limits != nil {
			ip = remoteIP(c)
			if over := l.limits.admit(ip); over != withinLimits {
				l.limits.refuse(c, ip, over)
				continue
			}
		}
		nc, dc := wrapDeadlines(c)
		dc.limits, dc.ip = l.limits, ip
		if l.plain {
			dc.head = sniffHead
		}
		return nc, nil
	}
}

// deadlineConn is a client connection whose deadlines cost nothing on most
// requests. fasthttp sets three per keep-alive request: the idle deadline
// before it waits for the request, ReadTimeout's at the request's first
// byte, and WriteTimeout's before the response. Each direction's deadlines
// are
//
//   - deferred: SetReadDeadline records the deadline, and it takes effect
//     when a read starts (Read, or SyscallConn's RawConn.Read), or at once
//     if a read is in progress, so that a deadline no read waits under is
//     never applied. A request whose bytes all come with the read that
//     ended the idle wait is parsed without another read: its ReadTimeout
//     deadline is never applied, and the idle deadline then follows the
//     idle deadline before it, whatever IdleTimeout and ReadTimeout are.
//     Likewise for writes (Write, ReadFrom, RawConn.Write);
//   - coarse: when it takes effect, it is applied through a coarseDeadline,
//     which leaves the one in force when the new one is only a little later
//     (less than min(T/8, 1 s) for a timeout T).
//
// So a read or write waits under the deadline last set before or during
// it, or under one earlier than that by at most the slack, as the
// Gateway's documentation says. The methods are safe for concurrent use
// as net.Conn's are: a deadline set while another goroutine reads (as
// clientWatch.stop does to wake its wait, or fasthttp's
// RequestCtx.SetReadDeadline) applies to that read.
//
// On a plain socket, Read and Write are made by a sockIO (rawio.go), which
// keeps the goroutine's P through the system call.
//
// Everything else is the wrapped connection's: addresses, Close (which
// also releases the connection's count in the listener's limits), CloseWrite
// (closeGently), SyscallConn (the client watch), and ReadFrom where it has
// one (deadlineReaderFromConn). fasthttp's writev of a response held whole
// and larger than its write buffer recognises *net.TCPConn only: through a
// deadlineConn such a response goes out in two writes.
type deadlineConn struct {
	net.Conn
	rd, wr deferredDeadline
	rw     io.ReadWriter // the Conn, or a sockIO over it (rawio.go)

	// raw is SyscallConn's answer for a plain socket, made once with the
	// connection (raw.raw is nil for any other).
	raw deadlineRawConn

	// limits counts the connection until its first Close (closeOnce).
	limits    *connLimits
	ip        netip.Addr
	closeOnce atomic.Bool

	head headCheck // of the first request; only Read uses it

	// expect is the admission of the connection's request that
	// expectContinue let send its body, until the handler or the error
	// handler takes it (see expected); only the connection's serving
	// goroutine uses it.
	expect *expected
}

// expected is a request that expectContinue admitted on its head: its
// admission, kept for the handler, and what the error handler logs if the
// body never comes (fasthttp then resets the request, user values
// included).
type expected struct {
	admission
	method, path []byte
}

// deadlineConnOf returns the deadlineConn beneath c (under TLS too), or
// nil if c is not one of Gateway.Serve's connections.
func deadlineConnOf(c net.Conn) *deadlineConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	switch dc := c.(type) {
	case *deadlineConn:
		return dc
	case *deadlineReaderFromConn:
		return &dc.deadlineConn
	}
	return nil
}

// headCheck is where a connection is in checking its first request's head
// for bare LF line ends.
type headCheck uint8

const (
	headChecked headCheck = iota // nothing (more) to check
	sniffHead                    // the next read is the connection's first
	headBareLF                   // the first read held a head that fasthttp would wait on forever
)

// errBareLFHead fails the read after a first read whose request head ended
// in a blank line of bare LF (see bareLFHead): fasthttp takes a head to be
// complete only once its bytes hold a CRLFCRLF, and would wait for one
// until ReadTimeout; with the error it answers 400 at once.
var errBareLFHead = safelog.Fixed("request head lines end in a bare LF")

// bareLFHead reports whether b, the first bytes of a connection, holds a
// blank line that is not the end of a CRLFCRLF ("\n\n", or "\n\r\n" after
// a bare LF) and no CRLFCRLF: a request head fasthttp would wait on. RFC
// 9112 section 2.2 lets a server accept a bare LF as a line end; fasthttp
// accepts one only in a head that a CRLFCRLF ends.
func bareLFHead(b []byte) bool {
	if bytes.Contains(b, strCRLFCRLF) {
		return false
	}
	for i := bytes.IndexByte(b, '\n'); i >= 0 && i+1 < len(b); {
		switch {
		case b[i+1] == '\n':
			return true
		case b[i+1] == '\r' && i+2 < len(b) && b[i+2] == '\n' && (i == 0 || b[i-1] != '\r'):
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

var strCRLFCRLF = []byte("\r\n\r\n")

// deadlineReaderFromConn is a deadlineConn over a connection that has a
// ReadFrom (*net.TCPConn), kept for io.Copy and bufio.Writer.ReadFrom:
// fasthttp writes a streamed body of known length through it, each piece
// as it comes.
type deadlineReaderFromConn struct {
	deadlineConn
	rf io.ReaderFrom
}

// newDeadlineConn wraps c; c's deadlines must be set only through the
// wrapper from then on.
func newDeadlineConn(c net.Conn) net.Conn {
	nc, _ := wrapDeadlines(c)
	return nc
}

// wrapDeadlines is newDeadlineConn, also returning the deadlineConn at the
// wrapper's heart.
func wrapDeadlines(c net.Conn) (net.Conn, *deadlineConn) {
	if rf, ok := c.(io.ReaderFrom); ok {
		dc := &deadlineReaderFromConn{rf: rf}
		dc.init(c)
		return dc, &dc.deadlineConn
	}
	dc := &deadlineConn{}
	dc.init(c)
	return dc, dc
}

// Close closes the wrapped connection and, the first time, releases its
// count in the connection limits.
func (c *deadlineConn) Close() error {
	if c.limits != nil && c.closeOnce.CompareAndSwap(false, true) {
		c.limits.release(c.ip)
	}
	return c.Conn.Close()
}

func (c *deadlineConn) init(inner net.Conn) {
	c.Conn = inner
	c.rw = inner
	raw := rawConnOfSocket(inner)
	if raw != nil {
		c.raw = deadlineRawConn{raw: raw, c: c}
	}
	if s := newSockIO(inner, raw); s != nil {
		c.rw = s
	}
	c.rd.apply = inner.SetReadDeadline
	c.wr.apply = inner.SetWriteDeadline
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if c.head != headChecked {
		if c.head == headBareLF {
			c.head = headChecked
			return 0, errBareLFHead
		}
		if n, err := c.read(b); n > 0 || err != nil {
			c.head = headChecked
			if n > 0 && bareLFHead(b[:n]) {
				c.head = headBareLF
			}
			return n, err
		}
		return 0, nil
	}
	return c.read(b)
}

func (c *deadlineConn) read(b []byte) (int, error) {
	if err := c.rd.begin(); err != nil {
		return 0, err
	}
	n, err := c.rw.Read(b)
	c.rd.end()
	return n, err
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if err := c.wr.begin(); err != nil {
		return 0, err
	}
	n, err := c.rw.Write(b)
	c.wr.end()
	return n, err
}

func (c *deadlineReaderFromConn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.wr.begin(); err != nil {
		return 0, err
	}
	n, err := c.rf.ReadFrom(r)
	c.wr.end()
	return n, err
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error  { return c.rd.set(t) }
func (c *deadlineConn) SetWriteDeadline(t time.Time) error { return c.wr.set(t) }

func (c *deadlineConn) SetDeadline(t time.Time) error {
	return errors.Join(c.rd.set(t), c.wr.set(t))
}

var (
	errNoSyscallConn = fmt.Errorf("server: connection has no file descriptor: %w", errors.ErrUnsupported)
	errNoCloseWrite  = fmt.Errorf("server: connection cannot close its writing side alone: %w", errors.ErrUnsupported)
)

// CloseWrite shuts down the writing side of the wrapped connection, if it
// can (*net.TCPConn).
func (c *deadlineConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoCloseWrite
}

// SyscallConn returns the wrapped connection's RawConn, whose Read and
// Write apply the deadlines set through c as c's own Read and Write do.
// For a plain socket it is made once, with c, so that a client watch
// (cancel.go) allocates none; for anything else it allocates, as the
// wrapped connection's does.
func (c *deadlineConn) SyscallConn() (syscall.RawConn, error) {
	if c.raw.raw != nil {
		return &c.raw, nil
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errNoSyscallConn
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &deadlineRawConn{raw: raw, c: c}, nil
}

// deadlineRawConn is a deadlineConn's RawConn.
type deadlineRawConn struct {
	raw syscall.RawConn
	c   *deadlineConn
}

func (r *deadlineRawConn) Control(f func(fd uintptr)) error { return r.raw.Control(f) }

func (r *deadlineRawConn) Read(f func(fd uintptr) (done bool)) error {
	if err := r.c.rd.begin(); err != nil {
		return err
	}
	err := r.raw.Read(f)
	r.c.rd.end()
	return err
}

func (r *deadlineRawConn) Write(f func(fd uintptr) (done bool)) error {
	if err := r.c.wr.begin(); err != nil {
		return err
	}
	err := r.raw.Write(f)
	r.c.wr.end()
	return err
}

// deferredDeadline is one direction of a deadlineConn: the deadline last
// set (want), applied through the coarseDeadline when an operation begins
// or is in progress.
type deferredDeadline struct {
	coarseDeadline // its mu also guards want

	want    time.Time
	pending atomic.Bool  // want has not been settled with the coarseDeadline
	busy    atomic.Int32 // operations begun and not ended
	apply   func(time.Time) error
}

// set makes t the deadline: at once if an operation is in progress, else
// when the next one begins. A t the coarseDeadline would skip (the one in
// force is earlier by less than its slack) is settled here and then, so
// that the next operation begins without taking the lock: as fasthttp
// moves the idle and write deadlines a little later on every request.
func (dd *deferredDeadline) set(t time.Time) error {
	dd.mu.Lock()
	dd.want = t
	if dd.skips(t) {
		// Whatever was pending is superseded by t, which the deadline in
		// force already serves; an operation in progress or beginning
		// now waits under that one.
		dd.pending.Store(false)
		dd.mu.Unlock()
		return nil
	}
	// pending is stored before busy is loaded, and begin adds to busy
	// before it loads pending: one of them sees the other, so an
	// operation beginning now waits under t.
	dd.pending.Store(true)
	var err error
	if dd.busy.Load() > 0 {
		err = dd.flushLocked()
	}
	dd.mu.Unlock()
	return err
}

// begin starts an operation, applying the deadline set since the last one
// if it must (see coarseDeadline). Unless it returns an error, end must be
// called when the operation has returned.
func (dd *deferredDeadline) begin() error {
	dd.busy.Add(1)
	if dd.pending.Load() {
		dd.mu.Lock()
		err := dd.flushLocked()
		dd.mu.Unlock()
		if err != nil {
			dd.busy.Add(-1)
			return err
		}
	}
	return nil
}

func (dd *deferredDeadline) end() { dd.busy.Add(-1) }

// flushLocked settles want with the coarseDeadline; dd.mu is held. If
// applying fails, it stays pending: every operation fails until a deadline
// can be applied (the connection is closed, as a rule).
func (dd *deferredDeadline) flushLocked() error {
	if !dd.pending.Load() {
		return nil
	}
	if err := dd.setLocked(dd.want, time.Now, dd.apply); err != nil {
		return err
	}
	dd.pending.Store(false)
	return nil
}
