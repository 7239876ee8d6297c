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

// Conn is a client connection as the gateway's listener hands it to
// fasthttp: the accepted connection itself, with what the server needs
// around it. Close calls Options.OnClose once (the connection limits); the
// first read is checked (Options.CheckFirstRead: the bare-LF head); Slot
// keeps a request's admission across fasthttp's reset of the request; and
// SyscallConn's RawConn, on which the proxy's client watch waits, is made
// once with the connection, so that a watch allocates none. With
// Options.Parker, the idle read deadline becomes the parking one, and the
// Close that follows an idle read's timeout parks the connection (Parker).
//
// Everything else is the wrapped connection's: Read, Write, the other
// deadlines, addresses, CloseWrite, and ReadFrom where it has one
// (readerFromConn).
// fasthttp's writev of a response held whole and larger than its write
// buffer recognises *net.TCPConn only: through a Conn such a response goes
// out in two writes.
type Conn struct {
	net.Conn

	// raw is SyscallConn's answer for a plain socket, made once with the
	// connection; nil for any other.
	raw syscall.RawConn

	onClose   func() // Options.OnClose, called by the first Close
	closeOnce atomic.Bool

	check    func([]byte) error // Options.CheckFirstRead, until the first read
	checkErr error              // its error, for the next Read

	// unread is what Unread gave back, read before the socket.
	unread []byte

	// Slot is the owner's state of the connection (the server keeps a
	// request's admission there across fasthttp's reset of the request):
	// only the goroutine serving the connection may use it.
	Slot any

	// Parking (Options.Parker, see Parker). outer is the connection as the
	// server knows it (c, or the readerFromConn around it), handed back to
	// the server when a parked connection wakes. idle is set between a
	// response and the next request's first byte (SetIdle), by the goroutine
	// serving the connection; the read then made is the one that may park.
	parker      *Parker
	outer       net.Conn
	idle        bool
	parkOnClose atomic.Bool // the idle read timed out: Close parks
	entering    atomic.Bool // handed back, not yet read (Parker.entering)
	parkState               // the Parker's, under its lock
}

// Options are Wrap's.
type Options struct {
	// OnClose, if set, is called by the connection's first Close.
	OnClose func()

	// CheckFirstRead, if set, is called with the bytes of the connection's
	// first read; if it returns an error, the next Read returns it instead
	// of reading (the server refuses a head it would otherwise wait on).
	CheckFirstRead func(b []byte) error

	// Parker, if set, parks the connection when it has been idle for the
	// Parker's time (see Parker). The server must then report its
	// connections' idle and active states with SetIdle.
	Parker *Parker
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
		dc.outer = dc
		return dc
	}
	dc := &Conn{}
	dc.init(c, o)
	dc.outer = dc
	return dc
}

// Close closes the wrapped connection and, the first time, calls
// Options.OnClose; or, if the connection's idle read has just ended its
// serving, parks it (Parker) and leaves it open, or, if epoll refuses its
// socket, has the Parker serve it again.
func (c *Conn) Close() error {
	if p := c.parker; p != nil {
		if c.parkOnClose.CompareAndSwap(true, false) {
			parked, refused := p.park(c)
			if parked || refused && p.serveAgain(c) {
				return nil
			}
		}
		p.forget(c)
		c.entered()
	}
	if c.onClose != nil && c.closeOnce.CompareAndSwap(false, true) {
		c.onClose()
	}
	return c.Conn.Close()
}

func (c *Conn) init(inner net.Conn, o Options) {
	c.Conn = inner
	c.onClose, c.check = o.OnClose, o.CheckFirstRead
	c.raw = rawConnOfSocket(inner)
	if c.raw != nil {
		c.parker = o.Parker
	}
}

// SetReadDeadline sets the wrapped connection's read deadline; the idle
// one, on a connection with a Parker, is the time it parks (Parker).
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.parker != nil {
		return c.setIdleDeadline(t)
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *Conn) Read(b []byte) (int, error) {
	if c.unread != nil {
		return c.readUnread(b)
	}
	if c.check != nil || c.checkErr != nil {
		return c.firstRead(b)
	}
	if c.parker != nil {
		return c.parkingRead(b)
	}
	return c.Conn.Read(b)
}

// Unread gives b back to the connection: the next reads return it (a
// copy) before what the socket holds. For bytes read beyond a request
// that its server let go of (a relayed stream's), to be served as the
// start of the next.
func (c *Conn) Unread(b []byte) {
	if len(b) > 0 {
		c.unread = append(c.unread, b...)
	}
}

// HasUnread reports whether Unread gave back bytes not yet read again.
func (c *Conn) HasUnread() bool { return len(c.unread) > 0 }

func (c *Conn) readUnread(b []byte) (int, error) {
	n := copy(b, c.unread)
	if c.unread = c.unread[n:]; len(c.unread) == 0 {
		c.unread = nil
	}
	return n, nil
}

// Socket returns the RawConn of the plain socket c wraps (see Wrap), on
// which the connection may be served outside the net package (the
// stream relay); nil if c wraps another kind of connection.
func (c *Conn) Socket() syscall.RawConn { return c.raw }

// firstRead is Read until the first read has been checked, and the read
// after it if the check failed.
func (c *Conn) firstRead(b []byte) (int, error) {
	if err := c.checkErr; err != nil {
		c.checkErr = nil
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if n > 0 || err != nil {
		if n > 0 {
			c.checkErr = c.check(b[:n])
		}
		c.check = nil
	}
	return n, err
}

func (c *readerFromConn) ReadFrom(r io.Reader) (int64, error) { return c.rf.ReadFrom(r) }

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

// SyscallConn returns the wrapped connection's RawConn: for a plain
// socket, the one made with c, so that a client watch allocates none.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if c.raw != nil {
		return c.raw, nil
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errNoSyscallConn
	}
	return sc.SyscallConn()
}

// plainSocket reports whether conn is the net package's own TCP or Unix
// socket. A connection of another type keeps its own SyscallConn, even if
// it embeds a socket.
func plainSocket(conn net.Conn) bool {
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// rawConnOfSocket returns conn's RawConn if conn is a plain socket, nil
// otherwise. It allocates: it is for a new connection.
func rawConnOfSocket(conn net.Conn) syscall.RawConn {
	if !plainSocket(conn) {
		return nil
	}
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// SetIdle records that the server has answered c's request and waits for
// the next (idle true), or has read the next request's first byte (false);
// the server's connection-state hook calls it, on the goroutine serving c.
// It does nothing for a connection without a Parker (under TLS, or not
// made by Wrap).
func SetIdle(c net.Conn, idle bool) {
	switch dc := c.(type) {
	case *readerFromConn:
		dc.idle = idle && dc.parker != nil
	case *Conn:
		dc.idle = idle && dc.parker != nil
	}
}
