package proxy

import (
	"io"

	"github.com/authgate/authgate/internal/netconn"
)

// Sending a request and reading its response the usual way costs a read
// that fails: the poller tries the socket before it waits, and an upstream
// has never answered yet. On a plain TCP (or Unix) upstream connection, the
// request's last flush is instead held back and written by the first read
// of the response, from inside RawConn.Read's callback, which then waits
// for the socket to become readable without trying it first (one system
// call less per request).
//
// Writing inside the callback, not before it, is what makes this safe: the
// poller forgets any readiness it saw before the callback's first call, so
// the response, or the reset of a connection the upstream had closed, must
// arrive after it to wake the wait. So the flush is held only when it is
// the whole request: once part of a request is sent (a body larger than
// the buffer), the upstream may answer before the rest, and that answer's
// readiness would be forgotten. A connection in the pool holds no unread
// bytes (put and alive see to that), so nothing can be waiting unnoticed
// from before the request.

// upIO is the reader and writer under a plain socket upConn's buffers: it
// passes reads and writes to the connection, except for a flush held back
// by sendLater and the read that sends it.
type upIO struct{ c *upConn }

func (u upIO) Write(p []byte) (int, error) {
	c := u.c
	if c.holding && c.held == nil {
		// The bufio.Writer's own buffer, left alone until the next write to
		// it, which comes after the response has been read.
		c.held = p
		return len(p), nil
	}
	c.sentPart = true
	return c.rw.Write(p)
}

func (u upIO) Read(p []byte) (int, error) {
	c := u.c
	if c.held == nil {
		return c.rw.Read(p)
	}
	return c.sendThenRead(p)
}

// sendLater ends a request written to c.bw: it flushes c.bw, holding back
// what it would write until the next read of c.br, which writes it and
// then waits for the response. It is a plain flush on any connection but a
// plain socket, and for a request part of which c.bw has written already.
func (c *upConn) sendLater() error {
	if c.sendReadFn == nil || c.sentPart {
		err := c.bw.Flush()
		c.sentPart = false
		return err
	}
	c.holding = true
	err := c.bw.Flush()
	c.holding = false
	return err
}

// sendThenRead writes the held flush and reads the response's first bytes
// into p: within one RawConn.Read when the write is whole, otherwise the
// rest is written and read through the connection.
func (c *upConn) sendThenRead(p []byte) (int, error) {
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.raw.Read(c.sendReadFn)
	n, rerr, rest := c.rn, c.rerr, c.held
	c.rbuf, c.rerr, c.held = nil, nil, nil
	switch {
	case err != nil: // closed, or past the read deadline
		return 0, err
	case rerr != nil:
		return n, rerr
	case rest != nil: // the socket took only part of it
		if _, err := c.rw.Write(rest); err != nil {
			return 0, err
		}
		return c.rw.Read(p)
	}
	return n, nil
}

// sendRead is sendThenRead's RawConn.Read callback (bound once as
// sendReadFn, so that no call allocates). Its first call writes the held
// bytes and returns false, which makes the poller wait for the response;
// each later call reads. A partial write, or an error, ends the Read with
// c.held left to write, or c.rerr set.
func (c *upConn) sendRead(fd uintptr) bool {
	if c.held != nil {
		n, again, err := netconn.WriteOnce(fd, c.held)
		switch {
		case again:
			return true
		case err != nil:
			c.rerr = err
			return true
		case n < len(c.held):
			c.held = c.held[n:]
			return true
		}
		c.held = nil
		return false
	}
	n, again, err := netconn.ReadOnce(fd, c.rbuf)
	switch {
	case again:
		return false
	case err != nil:
		c.rerr = err
	case n == 0 && len(c.rbuf) > 0:
		c.rerr = io.EOF
	default:
		c.rn = n
	}
	return true
}
