package proxy

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/authgate/authgate/internal/netconn"
)

// clientWatch notices a client that goes away while its request is with
// the upstream, and then closes the upstream connection, so that the
// inference server sees the disconnect and frees the slot.
//
// fasthttp does not read a connection while its handler runs, nor while it
// writes a streamed response body, so a goroutine may wait for the client's
// socket to become readable meanwhile: readable with nothing to read is the
// client's FIN (or RST). Bytes instead mean the client pipelined its next
// request; the watch then stops, unable to tell any more.
//
// Under TLS the watch peeks at the TCP connection beneath the tls.Conn, so
// it sees TLS records, not requests. A client closing a TLS connection
// sends a close_notify alert before its FIN, so bytes do not mean a
// pipelined request there: on Linux the watch keeps waiting, and on each
// wake-up asks the kernel whether the peer has closed (the socket has left
// ESTABLISHED: FIN or RST received), which is then the client's leaving.
// Elsewhere it stops at the first bytes, as for plain HTTP, and a TLS
// client that closes cleanly is noticed only when the response is written.
//
// A watch is started by startWatch and must be ended by stop before the
// connection serves its next request. Watches are pooled. The proxy starts
// one only for an exchange that has lasted watchDelay (exchange.armWatch):
// a client that leaves sooner is noticed when its response is written.
type clientWatch struct {
	conn   net.Conn
	raw    syscall.RawConn
	tls    bool // conn is a *tls.Conn: raw is the TCP connection beneath it
	up     atomic.Pointer[upConn]
	gone   atomic.Bool
	done   chan struct{}
	waitFn func(fd uintptr) bool // w.wait, bound once
	runFn  func()                // w.run, bound once: go w.runFn() does not allocate
}

// watchesStarted counts the watches started, for tests (WatchesStarted).
var watchesStarted atomic.Uint64

// WatchesStarted is how many client watches have started in this process
// (they start only for exchanges that outlast WatchDelay); for tests.
func WatchesStarted() uint64 { return watchesStarted.Load() }

var watchPool = sync.Pool{New: func() any {
	w := &clientWatch{done: make(chan struct{}, 1)}
	w.waitFn = w.wait
	w.runFn = w.run
	return w
}}

// startWatch starts watching conn; it returns nil for connections that
// cannot be watched (not TCP, e.g. in-memory listeners in tests).
func startWatch(conn net.Conn, raw syscall.RawConn) *clientWatch {
	if raw == nil {
		return nil
	}
	watchesStarted.Add(1)
	w := watchPool.Get().(*clientWatch)
	w.conn, w.raw = conn, raw
	_, w.tls = conn.(*tls.Conn)
	w.gone.Store(false)
	w.up.Store(nil)
	// The deadline in force is the request's READ_TIMEOUT from its first
	// byte: it bounds reading the request, not the wait for the upstream
	// (UPSTREAM_TIMEOUT does), so the watch waits without one. stop wakes
	// it with a deadline in the past and clears it again.
	conn.SetReadDeadline(time.Time{})
	go w.runFn()
	return w
}

func (w *clientWatch) run() {
	w.raw.Read(w.waitFn) // returns when readable, or at the deadline stop sets
	if w.gone.Load() {
		if c := w.up.Load(); c != nil {
			c.Close()
		}
	}
	w.done <- struct{}{}
}

// wait is run by RawConn.Read whenever the socket may be readable;
// returning false waits for the next readiness.
func (w *clientWatch) wait(fd uintptr) bool {
	switch netconn.Peek(fd) {
	case netconn.Quiet:
		return false // still open and quiet
	case netconn.Closed:
		w.gone.Store(true) // reset, or end of stream
	case netconn.Data:
		if !w.tls {
			break
		}
		// A TLS record: a pipelined request, or the close_notify a
		// closing client sends before its FIN.
		closed, known := netconn.PeerClosed(fd)
		if !known {
			return true // cannot tell: stop watching, as for plain HTTP
		}
		if closed {
			w.gone.Store(true)
			return true
		}
		// Wait for the next readiness: the poller is edge-triggered, so
		// unread bytes do not wake it again, but more bytes, a FIN or an
		// RST do.
		return false
	}
	return true
}

// attach makes c the upstream connection to close if the client goes.
func (w *clientWatch) attach(c *upConn) {
	if w == nil {
		return
	}
	w.up.Store(c)
	if w.gone.Load() {
		c.Close()
	}
}

// clientGone reports whether the client has been seen to go away.
func (w *clientWatch) clientGone() bool { return w != nil && w.gone.Load() }

// aLongTimeAgo is a deadline in the past, to wake a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// stop ends the watch and waits for its goroutine, leaving the client
// connection as it found it, and reports whether the client went away.
// After stop, w must not be used.
func (w *clientWatch) stop() bool {
	if w == nil {
		return false
	}
	w.conn.SetReadDeadline(aLongTimeAgo)
	<-w.done
	w.conn.SetReadDeadline(time.Time{})
	gone := w.gone.Load()
	w.conn, w.raw = nil, nil
	w.up.Store(nil)
	watchPool.Put(w)
	return gone
}
