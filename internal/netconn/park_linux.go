//go:build linux

package netconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Parker holds idle keep-alive connections without a goroutine or a
// buffer each. fasthttp serves a connection on a goroutine that, between
// requests, waits in a read with the connection's read buffer and its
// request context in hand: 16 KiB or more a connection that may stay idle
// for minutes. A Conn wrapped with a Parker that has been idle for the
// Parker's after instead ends fasthttp's serving of it (its read reports
// the end of the connection, and fasthttp closes it), and its Close hands
// the socket to the Parker, which waits for it to become readable on one
// epoll set of its own. When the client sends its next request (or closes,
// or the idle timeout passes, at which the Parker closes it), the Parker
// gives the connection back to fasthttp (serve: Server.ServeConn) on a new
// goroutine, which reads the request as the first of a new connection.
//
// Only plain sockets park. A TLS connection keeps its goroutine: its
// *tls.Conn would keep the end of the read as its own error.
type Parker struct {
	after, idleTimeout time.Duration
	serve              func(net.Conn)

	poller *Poller // its Wake ends the loop once closed is set
	done   chan struct{}

	// entering counts the connections handed to serve that have not yet
	// been read from: serve has not yet registered them (fasthttp counts a
	// connection open on entering ServeConn, before its first read), so
	// Close waits for them.
	entering sync.WaitGroup

	mu      sync.Mutex
	started bool // loop runs: it starts with the first park
	closed  bool
	gen     uint32
	byFD    map[int32]*Conn
	// head and tail are the parked connections in the order they parked,
	// hence of their idle deadlines (each is its idle start plus
	// idleTimeout; each parked at its idle start plus after).
	head, tail *Conn
}

// parkEvents are what a parked connection waits for: bytes, or the
// client's FIN or RST. Once, so that one wake-up hands the connection
// over once; level-triggered, so that bytes that arrived before the
// connection was added wake it at once.
const parkEvents = WaitRead | WaitOnce

// maxReapWait bounds the loop's wait for the first idle deadline. A
// connection parked during the wait has a later deadline than the first
// (they park in the order of their deadlines), or wakes the loop (it is
// the first): the bound is a safety net.
const maxReapWait = time.Second

// NewParker returns a Parker that parks a connection idle for after and
// closes a parked one idleTimeout after its idle start; serve is called,
// on a goroutine of its own, with each parked connection that becomes
// readable. after must be positive and below idleTimeout.
func NewParker(after, idleTimeout time.Duration, serve func(net.Conn)) (*Parker, error) {
	if after <= 0 || after >= idleTimeout {
		return nil, fmt.Errorf("netconn: a connection must park after a time between zero and its idle timeout %v, not %v", idleTimeout, after)
	}
	poller, err := NewPoller(256)
	if err != nil {
		return nil, fmt.Errorf("netconn: the parked connections': %w", err)
	}
	p := &Parker{
		after: after, idleTimeout: idleTimeout, serve: serve,
		poller: poller, done: make(chan struct{}),
		byFD: make(map[int32]*Conn),
	}
	return p, nil
}

// Parked returns how many connections are parked.
func (p *Parker) Parked() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byFD)
}

// Close closes every parked connection and parks no more: a connection
// that would park is closed instead. It then waits for the connections
// it handed to serve to be registered there (read from), so that a server
// shut down after Close knows of every connection that was parked.
func (p *Parker) Close() {
	if p == nil {
		return
	}
	if started, first := p.closeParked(); !first {
		return
	} else if !started {
		p.closeFDs()
		return
	}
	p.wake()
	<-p.done
	p.entering.Wait()
}

// closeParked closes every parked connection and parks no more; first is
// false if that was done already, started whether the loop runs.
func (p *Parker) closeParked() (started, first bool) {
	p.mu.Lock()
	started = p.started
	if p.closed {
		p.mu.Unlock()
		return started, false
	}
	p.closed = true
	var all []*Conn
	for c := p.head; c != nil; c = p.head {
		p.unlinkLocked(c)
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
	return started, true
}

// park adds c to the parked connections. It reports parked false if it
// cannot: the Parker is closed, or c has no descriptor, and c is then to
// be closed; or epoll refused the socket (refused: its set is full, at
// fs.epoll.max_user_watches), and c is then to be served again.
func (p *Parker) park(c *Conn) (parked, refused bool) {
	fd, ok := c.fd()
	if !ok {
		return false, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, false
	}
	if !p.started {
		// Not before: a Parker of a Gateway that never serves starts no
		// goroutine (nor one that a synctest bubble would wait on).
		p.started = true
		go p.loop()
	}
	p.gen++
	c.parkGen, c.parkFD, c.parked = p.gen, int32(fd), true
	if err := p.poller.Add(fd, Token{Index: int32(fd), Gen: p.gen}, parkEvents); err != nil {
		c.parked = false
		return false, true
	}
	p.byFD[c.parkFD] = c
	c.prevParked, c.nextParked = p.tail, nil
	if p.tail != nil {
		p.tail.nextParked = c
	} else {
		// The loop waits without a deadline while none is parked: give it
		// this one's.
		p.head = c
		p.wake()
	}
	p.tail = c
	return true, false
}

// serveAgain hands c, which was to park but could not, back to serve, as
// the loop does a connection that woke: closing it would drop a client
// that did nothing wrong, and race its next request. It reports false,
// doing nothing, if p is closed.
func (p *Parker) serveAgain(c *Conn) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.entering.Add(1)
	p.mu.Unlock()
	c.entering.Store(true)
	go p.serve(c.outer)
	return true
}

// Park parks c, a connection its server let go of between two requests
// (a relayed stream's, whose response has ended), until its client sends
// its next request, as if it had been idle for the Parker's after: its
// idle timeout ends that much sooner, which keeps the parked in the order
// of their deadlines. It reports false, doing nothing, if c cannot park:
// c is not a plain connection Wrap made with p, it holds bytes given back
// with Unread, or p is closed. The caller then serves c itself.
func (p *Parker) Park(c net.Conn) bool {
	dc := Of(c)
	if p == nil || dc == nil || dc.parker != p || dc.unread != nil {
		return false
	}
	if _, ok := c.(*tls.Conn); ok {
		return false
	}
	dc.idle = false
	dc.parkUntil = time.Now().Add(p.idleTimeout - p.after)
	parked, _ := p.park(dc)
	return parked
}

// wake makes the loop's wait return.
func (p *Parker) wake() { p.poller.Wake() }

// forget removes c from the parked connections if it is one: it is being
// closed.
func (p *Parker) forget(c *Conn) {
	p.mu.Lock()
	if c.parked {
		p.unlinkLocked(c)
	}
	p.mu.Unlock()
}

// unlinkLocked removes a parked c from the epoll set, the index and the
// list. p.mu is held, so no fd of c's is closed (and reused) meanwhile.
func (p *Parker) unlinkLocked(c *Conn) {
	p.poller.Remove(int(c.parkFD))
	delete(p.byFD, c.parkFD)
	if c.prevParked != nil {
		c.prevParked.nextParked = c.nextParked
	} else {
		p.head = c.nextParked
	}
	if c.nextParked != nil {
		c.nextParked.prevParked = c.prevParked
	} else {
		p.tail = c.prevParked
	}
	c.prevParked, c.nextParked, c.parked = nil, nil, false
}

// loop waits for parked connections to become readable and hands them to
// serve, and closes those whose idle deadline has passed.
func (p *Parker) loop() {
	defer close(p.done)
	events := make([]PollEvent, 256)
	var ready, expired []*Conn
	var due time.Time
	for {
		n, err := p.poller.Wait(events, due)
		if err != nil {
			// Not expected of a valid epoll set: close what is parked
			// rather than leave it unwatched, and park no more.
			p.closeParked()
			break
		}
		ready, expired = ready[:0], expired[:0]
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			break
		}
		for _, ev := range events[:n] {
			if ev.Woken {
				continue
			}
			c := p.byFD[ev.Token.Index]
			if c == nil || c.parkGen != ev.Token.Gen {
				continue // a connection closed since
			}
			p.unlinkLocked(c)
			p.entering.Add(1)
			ready = append(ready, c)
		}
		now := time.Now()
		for c := p.head; c != nil && !now.Before(c.parkUntil); c = p.head {
			p.unlinkLocked(c)
			expired = append(expired, c)
		}
		due = time.Time{}
		if p.head != nil {
			due = p.head.parkUntil.Add(time.Millisecond)
			if due.Sub(now) > maxReapWait {
				due = now.Add(maxReapWait)
			}
		}
		p.mu.Unlock()
		for _, c := range ready {
			c.entering.Store(true)
			go p.serve(c.outer)
		}
		for _, c := range expired {
			c.Close()
		}
		clear(ready)
		clear(expired)
	}
	p.closeFDs()
}

// closeFDs closes the epoll set and the wake-up pipe.
func (p *Parker) closeFDs() { p.poller.Close() }

// fd returns c's socket's descriptor.
func (c *Conn) fd() (int, bool) {
	if c.raw == nil {
		return 0, false
	}
	fd := -1
	if err := c.raw.Control(func(s uintptr) { fd = int(s) }); err != nil || fd < 0 {
		return 0, false
	}
	return fd, true
}

// parkState is a Conn's place among the parked connections, under the
// Parker's lock; parkUntil is set by setIdleDeadline before it parks.
type parkState struct {
	parked                 bool
	parkFD                 int32
	parkGen                uint32
	parkUntil              time.Time // the idle deadline
	prevParked, nextParked *Conn
}

// parkingRead is Read of a connection with a Parker. The first read after
// the connection went idle has the deadline setIdleDeadline made of the
// idle one: if nothing came by then, it reports the end of the
// connection, and the server's Close of it parks it. If bytes came,
// fasthttp sets the request's own deadline on the first byte.
func (c *Conn) parkingRead(b []byte) (int, error) {
	c.entered()
	if !c.idle {
		return c.Conn.Read(b)
	}
	c.idle = false
	n, err := c.Conn.Read(b)
	if n == 0 && !c.parkUntil.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
		c.parkOnClose.Store(true)
		return 0, io.EOF
	}
	c.parkUntil = time.Time{}
	return n, err
}

// setIdleDeadline is SetReadDeadline of a connection with a Parker.
// fasthttp sets the idle deadline (IdleTimeout from now) between the
// response and the read that waits for the next request: the Parker's
// after from now is put in its place, one deadline for the other, and the
// idle one kept for the parked connection.
func (c *Conn) setIdleDeadline(t time.Time) error {
	if c.idle && !t.IsZero() {
		c.parkUntil = t
		t = t.Add(c.parker.after - c.parker.idleTimeout)
	}
	return c.Conn.SetReadDeadline(t)
}

// entered tells the Parker that the connection it handed back has been
// read from (or closed): the server has it.
func (c *Conn) entered() {
	if c.entering.Load() && c.entering.CompareAndSwap(true, false) {
		c.parker.entering.Done()
	}
}
