package netconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// Conn is a client connection whose deadlines cost nothing on most
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
//   - coarse: when it takes effect, it is applied through a CoarseDeadline,
//     which leaves the one in force when the new one is only a little later
//     (less than min(T/8, 1 s) for a timeout T).
//
// So a read or write waits under the deadline last set before or during
// it, or under one earlier than that by at most the slack, as the
// gateway's documentation says. The methods are safe for concurrent use
// as net.Conn's are: a deadline set while another goroutine reads (as the
// proxy's client watch does to wake its wait, or fasthttp's
// RequestCtx.SetReadDeadline) applies to that read.
//
// On a plain socket, Read and Write are made by a SockIO, which keeps the
// goroutine's P through the system call.
//
// Everything else is the wrapped connection's: addresses, Close (which
// also calls Options.OnClose, once), CloseWrite, SyscallConn (the client
// watch), and ReadFrom where it has one (readerFromConn). fasthttp's writev of a response held whole
// and larger than its write buffer recognises *net.TCPConn only: through a
// Conn such a response goes out in two writes.
type Conn struct {
	net.Conn
	rd, wr deferredDeadline
	rw     io.ReadWriter // the wrapped connection, or a SockIO over it

	// raw is SyscallConn's answer for a plain socket, made once with the
	// connection (raw.raw is nil for any other).
	raw rawConn

	onClose   func() // Options.OnClose, called by the first Close
	closeOnce atomic.Bool

	check    func([]byte) error // Options.CheckFirstRead, until the first read
	checkErr error              // its error, for the next Read

	// Slot is the owner's state of the connection (the server keeps a
	// request's admission there across fasthttp's reset of the request):
	// only the goroutine serving the connection may use it.
	Slot any
}

// Options are Wrap's.
type Options struct {
	// OnClose, if set, is called by the connection's first Close.
	OnClose func()

	// CheckFirstRead, if set, is called with the bytes of the connection's
	// first read; if it returns an error, the next Read returns it instead
	// of reading (the server refuses a head it would otherwise wait on).
	CheckFirstRead func(b []byte) error
}

// Of returns the Conn beneath c (under TLS too), or nil if c is not one
// that Wrap made.
func Of(c net.Conn) *Conn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	switch dc := c.(type) {
	case *Conn:
		return dc
	case *readerFromConn:
		return &dc.Conn
	}
	return nil
}

// readerFromConn is a Conn over a connection that has a
// ReadFrom (*net.TCPConn), kept for io.Copy and bufio.Writer.ReadFrom:
// fasthttp writes a streamed body of known length through it, each piece
// as it comes.
type readerFromConn struct {
	Conn
	rf io.ReaderFrom
}

// Wrap wraps c in a Conn (a readerFromConn, which is one, when c has a
// ReadFrom); c's deadlines must be set only through the wrapper from then
// on.
func Wrap(c net.Conn, o Options) net.Conn {
	if rf, ok := c.(io.ReaderFrom); ok {
		dc := &readerFromConn{rf: rf}
		dc.init(c, o)
		return dc
	}
	dc := &Conn{}
	dc.init(c, o)
	return dc
}

// Close closes the wrapped connection and, the first time, calls
// Options.OnClose.
func (c *Conn) Close() error {
	if c.onClose != nil && c.closeOnce.CompareAndSwap(false, true) {
		c.onClose()
	}
	return c.Conn.Close()
}

func (c *Conn) init(inner net.Conn, o Options) {
	c.Conn = inner
	c.rw = inner
	c.onClose, c.check = o.OnClose, o.CheckFirstRead
	raw := RawConnOfSocket(inner)
	if raw != nil {
		c.raw = rawConn{raw: raw, c: c}
	}
	if s := NewSockIO(inner, raw); s != nil {
		c.rw = s
	}
	c.rd.apply = inner.SetReadDeadline
	c.wr.apply = inner.SetWriteDeadline
}

func (c *Conn) Read(b []byte) (int, error) {
	if c.check != nil || c.checkErr != nil {
		return c.firstRead(b)
	}
	return c.read(b)
}

// firstRead is Read until the first read has been checked, and the read
// after it if the check failed.
func (c *Conn) firstRead(b []byte) (int, error) {
	if err := c.checkErr; err != nil {
		c.checkErr = nil
		return 0, err
	}
	n, err := c.read(b)
	if n > 0 || err != nil {
		if n > 0 {
			c.checkErr = c.check(b[:n])
		}
		c.check = nil
	}
	return n, err
}

func (c *Conn) read(b []byte) (int, error) {
	if err := c.rd.begin(); err != nil {
		return 0, err
	}
	n, err := c.rw.Read(b)
	c.rd.end()
	return n, err
}

func (c *Conn) Write(b []byte) (int, error) {
	if err := c.wr.begin(); err != nil {
		return 0, err
	}
	n, err := c.rw.Write(b)
	c.wr.end()
	return n, err
}

func (c *readerFromConn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.wr.begin(); err != nil {
		return 0, err
	}
	n, err := c.rf.ReadFrom(r)
	c.wr.end()
	return n, err
}

func (c *Conn) SetReadDeadline(t time.Time) error  { return c.rd.set(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.wr.set(t) }

func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.rd.set(t), c.wr.set(t))
}

var (
	errNoSyscallConn = fmt.Errorf("netconn: connection has no file descriptor: %w", errors.ErrUnsupported)
	errNoCloseWrite  = fmt.Errorf("netconn: connection cannot close its writing side alone: %w", errors.ErrUnsupported)
)

// CloseWrite shuts down the writing side of the wrapped connection, if it
// can (*net.TCPConn).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoCloseWrite
}

// SyscallConn returns the wrapped connection's RawConn, whose Read and
// Write apply the deadlines set through c as c's own Read and Write do.
// For a plain socket it is made once, with c, so that a client watch
// (the proxy's client watch) allocates none; for anything else it allocates, as the
// wrapped connection's does.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
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
	return &rawConn{raw: raw, c: c}, nil
}

// rawConn is a Conn's RawConn.
type rawConn struct {
	raw syscall.RawConn
	c   *Conn
}

func (r *rawConn) Control(f func(fd uintptr)) error { return r.raw.Control(f) }

func (r *rawConn) Read(f func(fd uintptr) (done bool)) error {
	if err := r.c.rd.begin(); err != nil {
		return err
	}
	err := r.raw.Read(f)
	r.c.rd.end()
	return err
}

func (r *rawConn) Write(f func(fd uintptr) (done bool)) error {
	if err := r.c.wr.begin(); err != nil {
		return err
	}
	err := r.raw.Write(f)
	r.c.wr.end()
	return err
}

// deferredDeadline is one direction of a Conn: the deadline last
// set (want), applied through the CoarseDeadline when an operation begins
// or is in progress.
type deferredDeadline struct {
	CoarseDeadline // its mu also guards want

	want    time.Time
	pending atomic.Bool  // want has not been settled with the CoarseDeadline
	busy    atomic.Int32 // operations begun and not ended
	apply   func(time.Time) error
}

// set makes t the deadline: at once if an operation is in progress, else
// when the next one begins. A t the CoarseDeadline would skip (the one in
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
// if it must (see CoarseDeadline). Unless it returns an error, end must be
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

// flushLocked settles want with the CoarseDeadline; dd.mu is held. If
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
