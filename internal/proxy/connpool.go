package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/internal/safelog"
)

// upConn is one keep-alive connection to an upstream, with its buffers.
// It is owned by one request at a time, or idle in its pool.
type upConn struct {
	net.Conn
	br        *bufio.Reader   // held for the connection's life: the response's header must fit
	raw       syscall.RawConn // of the TCP connection; nil if it has none
	idleSince time.Time

	peekFn    func(fd uintptr) bool // c.peek, bound once so that alive does not allocate
	peekAlive bool
}

// errDial marks a failure to connect: nothing of the request was sent, so
// another upstream may be tried.
type errDial struct{ err error }

func (e *errDial) Error() string    { return "cannot connect to upstream: " + e.err.Error() }
func (e *errDial) ErrClass() string { return "cannot connect: " + safelog.Class(e.err, "dial failed") }
func (e *errDial) Unwrap() error    { return e.err }

// connPool keeps idle keep-alive connections to one upstream address.
//
// fasthttp's HostClient pools connections too, but gives no way to abort a
// request in flight when its client goes away; owning the connection lets
// the proxy close exactly the one its request uses (see clientWatch).
// Requests are written and responses read with fasthttp's own
// Request.Write and Response.Read.
type connPool struct {
	addr        string
	tlsConfig   *tls.Config // nil for http
	dialTimeout time.Duration
	idleTimeout time.Duration
	maxIdle     int
	dialer      func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex
	idle   []*upConn // most recently used last
	closed bool
}

// Pool defaults.
const (
	defaultDialTimeout = 5 * time.Second
	// defaultIdleTimeout is below the keep-alive timeouts of common
	// inference servers (uvicorn, as used by vLLM: 5 s), so that an idle
	// connection is dropped here before the upstream drops it.
	defaultIdleTimeout = 4 * time.Second
	defaultMaxIdle     = 1024
	// upReadBufferSize is each upstream connection's read buffer: the
	// most a response's header may take, as nginx's proxy_buffer_size
	// (8 KiB on 64-bit systems). Bodies larger than it are read past it.
	upReadBufferSize = 8 << 10
	// upWriteBufferSize is the write buffer a request is written through,
	// from writers, a pool: held while the request is written, not while
	// its response streams.
	upWriteBufferSize = 16 << 10
)

// writers is the pool of request write buffers (see upWriteBufferSize).
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, upWriteBufferSize) }}

// writeRequest writes req to c through a pooled write buffer and flushes
// it.
func (c *upConn) writeRequest(req interface{ Write(*bufio.Writer) error }) error {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c.Conn)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	return err
}

// peekAfter is how long a connection must have been idle for get to check
// that it is still open. Upstreams close idle connections after their
// keep-alive timeout, seconds; one used moments ago is open, and a busy
// pool does not pay a syscall per request for the check.
const peekAfter = 100 * time.Millisecond

// get returns an idle connection that is still open, or dials a new one.
// A dial failure is returned as *errDial.
func (p *connPool) get() (*upConn, error) {
	now := time.Now()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := now.Sub(c.idleSince)
		if idle < p.idleTimeout && (idle < peekAfter || c.alive()) {
			return c, nil
		}
		c.Close()
	}
	return p.dial()
}

func (p *connPool) dial() (*upConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.dialTimeout)
	defer cancel()
	dial := p.dialer
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	conn, err := dial(ctx, "tcp", p.addr)
	if err != nil {
		return nil, &errDial{err}
	}
	c := &upConn{Conn: conn}
	if p.tlsConfig == nil {
		// Peeking under TLS would see TLS records (session tickets) as
		// unexpected bytes; TLS connections skip the liveness check.
		c.raw = netconn.RawConnOf(conn)
		c.peekFn = c.peek
	}
	if p.tlsConfig != nil {
		tc := tls.Client(conn, p.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &errDial{err}
		}
		c.Conn = tc
	}
	c.reader()
	return c, nil
}

// readers are the upstream connections' read buffers that a relayed
// stream's connection gave back while the relay reads its socket.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, upReadBufferSize) }}

// reader gives c a read buffer, if it gave its own back (dropReader).
func (c *upConn) reader() {
	if c.br == nil {
		c.br = readers.Get().(*bufio.Reader)
		c.br.Reset(c.Conn)
	}
}

// dropReader gives c's read buffer back, keeping none of its bytes: the
// relay reads c's socket itself.
func (c *upConn) dropReader() {
	c.br.Reset(nil)
	readers.Put(c.br)
	c.br = nil
}

// put returns c to the pool for reuse. The caller must have read the whole
// response and must not use c afterwards.
func (p *connPool) put(c *upConn) {
	if c.br != nil && c.br.Buffered() > 0 {
		c.Close() // bytes after the response: not safe to reuse
		return
	}
	c.idleSince = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// closeIdle closes the idle connections older than the idle timeout, or all
// of them if all is set.
func (p *connPool) closeIdle(now time.Time, all bool) {
	p.mu.Lock()
	keep := p.idle[:0]
	var stale []*upConn
	for _, c := range p.idle {
		if all || now.Sub(c.idleSince) >= p.idleTimeout {
			stale = append(stale, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
}

// close closes every idle connection and makes put close connections from
// now on.
func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.closeIdle(time.Time{}, true)
}

// alive reports whether an idle connection is still open: the upstream may
// have closed it (its keep-alive timeout) or sent something unexpected. It
// peeks without blocking; a connection without a RawConn is assumed alive.
func (c *upConn) alive() bool {
	if c.raw == nil {
		return true
	}
	c.peekAlive = false
	return c.raw.Read(c.peekFn) == nil && c.peekAlive
}

// peek is alive's non-blocking look at the socket: open and quiet means
// recv would block (EAGAIN); end of stream, an error or unexpected bytes
// mean the connection must not be reused.
func (c *upConn) peek(fd uintptr) bool {
	c.peekAlive = netconn.Peek(fd) == netconn.Quiet
	return true
}

// sweepInterval is how often a sweeper looks for idle connections past
// their idle timeout.
const sweepInterval = defaultIdleTimeout / 4

// sweeper closes the idle connections of its pools once they pass their
// idle timeout. The health checker does the same after each round; without
// health checks nothing else would, and the connections left at the bottom
// of a pool after a burst (it hands out the most recently used first)
// would stay open for good, in CLOSE_WAIT once the upstream dropped them.
// A sweeper runs from start until stop.
type sweeper struct {
	pools    []*connPool
	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
}

// startSweeper starts a sweeper of pools.
func startSweeper(pools []*connPool) *sweeper {
	s := &sweeper{pools: pools, stopCh: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *sweeper) run() {
	defer close(s.done)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopCh:
			return
		case now := <-t.C:
			for _, p := range s.pools {
				p.closeIdle(now, false)
			}
		}
	}
}

// stop ends the sweeper and waits for it. It may be called more than once,
// and on a nil sweeper.
func (s *sweeper) stop() {
	if s == nil {
		return
	}
	s.stopOnce.Do(func() { close(s.stopCh) })
	<-s.done
}
