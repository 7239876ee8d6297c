package netconn

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// deadlineTestWait bounds every wait in these tests; none asserts a
// duration.
const deadlineTestWait = 5 * time.Second

// TestCoarseDeadline steps a CoarseDeadline through fixed instants: a
// deadline later by less than the slack (min(T/8, 1 s), T measured when the
// applied one was applied) is skipped; later by the slack or more,
// earlier, zero, or after a failed apply, it is applied; time is read only
// to apply.
func TestCoarseDeadline(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var (
		cd       CoarseDeadline
		now      = t0
		nowCalls int
		inForce  time.Time // what the connection has
		applies  int
		failNext bool
	)
	clock := func() time.Time { nowCalls++; return now }
	apply := func(d time.Time) error {
		if failNext {
			failNext = false
			return errors.New("closed")
		}
		inForce = d
		applies++
		return nil
	}
	f := func(at, d time.Time, wantApplied bool, wantInForce time.Time) {
		t.Helper()
		now = at
		beforeApplies, beforeCalls := applies, nowCalls
		if err := cd.SetAt(d, clock, apply); err != nil {
			t.Fatalf("set %v: %v", d, err)
		}
		if applied := applies > beforeApplies; applied != wantApplied {
			t.Fatalf("set %v at %v: applied %v, want %v", d.Sub(t0), at.Sub(t0), applied, wantApplied)
		}
		if !inForce.Equal(wantInForce) {
			t.Fatalf("set %v at %v: %v in force, want %v", d.Sub(t0), at.Sub(t0), inForce.Sub(t0), wantInForce.Sub(t0))
		}
		if calls := nowCalls - beforeCalls; (calls > 0) != (wantApplied && !d.IsZero()) || calls > 1 {
			t.Fatalf("set %v at %v: %d time reads (applied %v)", d.Sub(t0), at.Sub(t0), calls, wantApplied)
		}
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ms := time.Millisecond

	// None applied: applied whatever it is. T = 60 s: slack 1 s.
	f(at(0), at(60*time.Second), true, at(60*time.Second))
	f(at(0), at(60*time.Second), false, at(60*time.Second))             // the same
	f(at(500*ms), at(60*time.Second+500*ms), false, at(60*time.Second)) // later by less than 1 s
	f(at(999*ms), at(60*time.Second+999*ms), false, at(60*time.Second))
	f(at(time.Second), at(61*time.Second), true, at(61*time.Second))                 // by the slack
	f(at(2*time.Second), at(30*time.Second), true, at(30*time.Second))               // tightens
	f(at(2*time.Second), at(29*time.Second+999*ms), true, at(29*time.Second+999*ms)) // by any amount
	f(at(2*time.Second), time.Time{}, true, time.Time{})                             // clears
	f(at(2*time.Second), time.Time{}, true, time.Time{})                             // clears again
	f(at(3*time.Second), at(3*time.Second+time.Millisecond), true, at(3*time.Second+time.Millisecond))

	// T = 800 ms: slack 100 ms, measured when applied, not when skipped.
	f(at(10*time.Second), at(10*time.Second+800*ms), true, at(10*time.Second+800*ms))
	f(at(10*time.Second+99*ms), at(10*time.Second+899*ms), false, at(10*time.Second+800*ms))
	f(at(10*time.Second+100*ms), at(10*time.Second+900*ms), true, at(10*time.Second+900*ms))

	// A deadline already due (clientWatch.stop's) has no slack: anything
	// later is applied.
	f(at(20*time.Second), aLongTimeAgo, true, aLongTimeAgo)
	f(at(20*time.Second), aLongTimeAgo, false, aLongTimeAgo)
	f(at(20*time.Second), aLongTimeAgo.Add(time.Nanosecond), true, aLongTimeAgo.Add(time.Nanosecond))
	f(at(20*time.Second), at(140*time.Second), true, at(140*time.Second))

	// A clock read far behind the deadline (it went backwards) makes T
	// longer, never the slack over 1 s.
	f(at(-time.Hour), at(150*time.Second), true, at(150*time.Second))
	f(at(-time.Hour), at(150*time.Second+999*ms), false, at(150*time.Second))
	f(at(-time.Hour), at(151*time.Second), true, at(151*time.Second))

	// A failed apply leaves nothing known: the same deadline is applied next.
	failNext = true
	if err := cd.SetAt(at(400*time.Second), clock, apply); err == nil {
		t.Fatal("the failed apply's error was not returned")
	}
	f(at(200*time.Second), at(151*time.Second+time.Millisecond), true, at(151*time.Second+time.Millisecond))
}

func TestDeadlineSlack(t *testing.T) {
	f := func(timeout, want time.Duration) {
		t.Helper()
		if got := deadlineSlack(timeout); got != want {
			t.Fatalf("deadlineSlack(%v) = %v, want %v", timeout, got, want)
		}
	}
	f(-time.Second, 0)
	f(0, 0)
	f(7, 0)
	f(800*time.Millisecond, 100*time.Millisecond)
	f(8*time.Second, time.Second)
	f(120*time.Second, time.Second)
}

// TestCoarseDeadlineConcurrent: goroutines setting deadlines at once, a
// minute ahead, and now and then one already due or zero, get apply called
// one at a time (the race detector checks that inForce is not written
// concurrently) and leave in force what the CoarseDeadline recorded; once
// they are done, a deadline set is in force to within its slack. (How many
// are applied depends on the scheduling: a deadline that reaches the lock
// after a later one tightens, and is applied.)
func TestCoarseDeadlineConcurrent(t *testing.T) {
	const (
		goroutines = 8
		sets       = 2000
	)
	var (
		cd      CoarseDeadline
		inForce time.Time // written by apply only: under cd's lock
		applies atomic.Int64
	)
	apply := func(d time.Time) error {
		inForce = d
		applies.Add(1)
		return nil
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range sets {
				d := time.Now().Add(time.Minute)
				if g == 0 && i%500 == 0 { // the occasional wake-up and clear
					d = aLongTimeAgo
					if i%1000 == 0 {
						d = time.Time{}
					}
				}
				if err := cd.Set(d, apply); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	cd.mu.Lock()
	recorded, force := cd.applied, inForce
	cd.mu.Unlock()
	if !recorded.Equal(force) {
		t.Fatalf("recorded %v, in force %v", recorded, force)
	}
	last := time.Now().Add(time.Minute)
	if err := cd.Set(last, apply); err != nil {
		t.Fatal(err)
	}
	cd.mu.Lock()
	force = inForce
	cd.mu.Unlock()
	if force.After(last) || last.Sub(force) >= maxDeadlineSlack {
		t.Fatalf("in force %v before the last deadline set, want less than %v and not after", last.Sub(force), maxDeadlineSlack)
	}
	t.Logf("%d of %d deadlines applied", applies.Load(), goroutines*sets+1)
}

// countingConn counts the deadlines its connection is given.
type countingConn struct {
	net.Conn
	reads, writes atomic.Int64
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.reads.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.writes.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

func (c *countingConn) SetDeadline(t time.Time) error {
	c.reads.Add(1)
	c.writes.Add(1)
	return c.Conn.SetDeadline(t)
}

// newConn wraps c with no options.
func newConn(c net.Conn) net.Conn { return Wrap(c, Options{}) }

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestDeadlineConnKeepAlive plays fasthttp's keep-alive loop (idle
// deadline, read, ReadTimeout's deadline, write deadline, write) over a
// Conn, with IdleTimeout twice ReadTimeout as by default: requests
// that arrive whole cost no deadline update after the first ones; a
// request whose head needs a second read gets ReadTimeout's deadline.
func TestDeadlineConnKeepAlive(t *testing.T) {
	const (
		idle     = 120 * time.Second
		read     = 60 * time.Second
		requests = 200
	)
	client, srv := tcpPair(t)
	inner := &countingConn{Conn: srv}
	c := newConn(inner)
	go io.Copy(io.Discard, client)

	buf := make([]byte, 64)
	var readDeadline time.Time // the last ReadTimeout deadline set
	serve := func(segments int) {
		t.Helper()
		if err := c.SetReadDeadline(time.Now().Add(idle)); err != nil {
			t.Fatal(err)
		}
		for i := range segments {
			if _, err := client.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf[:1]); err != nil {
				t.Fatal(err)
			}
			if i == 0 { // the first byte
				readDeadline = time.Now().Add(read)
				if err := c.SetReadDeadline(readDeadline); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.SetWriteDeadline(time.Now().Add(read)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("ok")); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for range requests {
		serve(1)
	}
	elapsed := time.Since(start)
	// The first idle deadline (there was none), then one a second.
	bound := int64(1 + elapsed/time.Second)
	if n := inner.reads.Load(); n > bound {
		t.Fatalf("%d read deadlines applied for %d requests in %v, want at most %d", n, requests, elapsed, bound)
	}
	if n := inner.writes.Load(); n > bound {
		t.Fatalf("%d write deadlines applied for %d requests in %v, want at most %d", n, requests, elapsed, bound)
	}

	// A request in two pieces: its second read waits under ReadTimeout's
	// deadline, which is applied (it tightens), and the idle one after it
	// too (it is later by a minute).
	serve(2)
	rd := &c.(*Conn).rd // countingConn has no ReadFrom
	rd.mu.Lock()
	applied := rd.applied
	rd.mu.Unlock()
	if !applied.Equal(readDeadline) {
		t.Fatalf("the second read of a request waited under %v, want ReadTimeout's %v", applied, readDeadline)
	}
	before := inner.reads.Load()
	serve(1)
	if n := inner.reads.Load() - before; n != 1 {
		t.Fatalf("%d read deadlines applied for the request after it, want 1 (the idle one)", n)
	}
}

// TestDeadlineSettledAtSet: a deadline the CoarseDeadline would skip is
// settled when it is set, so that the next read begins without the lock;
// it supersedes a tighter one still pending, and the read waits under the
// one in force. A deadline it would not skip stays pending until a read.
func TestDeadlineSettledAtSet(t *testing.T) {
	client, srv := tcpPair(t)
	inner := &countingConn{Conn: srv}
	c := newConn(inner)
	rd := &c.(*Conn).rd
	state := func() (pending bool, applied time.Time) {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		return rd.pending.Load(), rd.applied
	}
	read := func() {
		t.Helper()
		if _, err := client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}

	first := time.Now().Add(time.Minute)
	if err := c.SetReadDeadline(first); err != nil {
		t.Fatal(err)
	}
	if pending, _ := state(); !pending {
		t.Fatal("the first deadline, with none in force, is not pending")
	}
	read()
	if pending, applied := state(); pending || !applied.Equal(first) {
		t.Fatalf("after a read: pending %v, applied %v, want false, %v", pending, applied, first)
	}

	// Later by less than the slack (1 s here): settled at once.
	if err := c.SetReadDeadline(first.Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if pending, _ := state(); pending {
		t.Fatal("a deadline within the slack of the one in force is left pending")
	}

	// A tighter one is pending; one within the slack supersedes it.
	if err := c.SetReadDeadline(first.Add(-10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if pending, _ := state(); !pending {
		t.Fatal("a tighter deadline is not pending")
	}
	if err := c.SetReadDeadline(first.Add(2 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	before := inner.reads.Load()
	read()
	if pending, applied := state(); pending || !applied.Equal(first) {
		t.Fatalf("after the superseding deadline and a read: pending %v, applied %v, want false, %v", pending, applied, first)
	}
	if n := inner.reads.Load() - before; n != 0 {
		t.Fatalf("%d read deadlines applied, want none", n)
	}
}

// TestDeadlineConnTimesOut: a deadline set before a read, however it
// moved, is the one the read waits under; one set during a read applies to
// it; a cleared one lets the read wait. The same for RawConn.Read, on
// which the client watch waits.
func TestDeadlineConnTimesOut(t *testing.T) {
	client, srv := tcpPair(t)
	c := newConn(srv)
	guard := time.AfterFunc(deadlineTestWait, func() { srv.Close() }) // a test that fails does not hang
	defer guard.Stop()
	buf := make([]byte, 1)

	wantTimeout := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: %v, want a timeout", what, err)
		}
	}
	// Tightened before the read, deferred: the read still gets it.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(buf)
	wantTimeout("tightened deadline", err)

	// Set during a read (or, on odd rounds, perhaps just before it: either
	// way it applies).
	rd := &c.(*readerFromConn).rd
	begun := func(i int) {
		for i%2 == 0 && rd.busy.Load() == 0 {
			runtime.Gosched()
		}
	}
	c.SetReadDeadline(time.Time{})
	for i := range 100 {
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(buf)
			done <- err
		}()
		begun(i)
		c.SetReadDeadline(aLongTimeAgo)
		wantTimeout("deadline set during a read", <-done)
		c.SetReadDeadline(time.Time{})
	}

	// Cleared: the read waits for the bytes.
	c.SetReadDeadline(aLongTimeAgo)
	c.SetReadDeadline(time.Time{})
	go client.Write([]byte("x"))
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("read after the deadline cleared: %v", err)
	}

	// RawConn.Read, as clientWatch waits: a deadline set before it (not
	// applied yet) and one set while it waits both end it.
	raw := RawConnOf(c)
	if raw == nil {
		t.Fatal("no RawConn for the wrapped TCP connection")
	}
	never := func(uintptr) bool { return false }
	c.SetReadDeadline(aLongTimeAgo)
	wantTimeout("RawConn.Read after a deadline set", raw.Read(never))
	c.SetReadDeadline(time.Time{})
	for i := range 100 {
		done := make(chan error, 1)
		go func() { done <- raw.Read(never) }()
		begun(i)
		c.SetReadDeadline(aLongTimeAgo)
		wantTimeout("RawConn.Read woken", <-done)
		c.SetReadDeadline(time.Time{})
	}

	// Writes: a deadline tightened before a write that must wait.
	c.SetWriteDeadline(time.Now().Add(time.Minute))
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	big := make([]byte, 1<<20)
	for {
		if _, err = c.Write(big); err != nil {
			break // the client does not read: the buffers fill
		}
	}
	wantTimeout("tightened write deadline", err)
}

// TestDeadlineConnLooksThrough: what the gateway and fasthttp ask of a
// client connection is still answered through the wrapper: addresses,
// CloseWrite, ReadFrom, SyscallConn (also beneath a *tls.Conn); a
// connection without them says so.
func TestDeadlineConnLooksThrough(t *testing.T) {
	client, srv := tcpPair(t)
	c := newConn(srv)
	if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok {
		t.Fatalf("RemoteAddr is a %T", c.RemoteAddr())
	}
	if c.LocalAddr().String() != srv.LocalAddr().String() {
		t.Fatalf("LocalAddr %v, want %v", c.LocalAddr(), srv.LocalAddr())
	}
	if _, ok := c.(io.ReaderFrom); !ok {
		t.Fatal("a wrapped *net.TCPConn has no ReadFrom")
	}
	if RawConnOf(c) == nil {
		t.Fatal("no RawConn through the wrapper")
	}
	if _, ok := c.(*readerFromConn).rw.(*SockIO); useSockIO && !ok {
		t.Fatal("a wrapped *net.TCPConn is not read and written by a sockIO")
	}
	if RawConnOf(tls.Server(c, &tls.Config{})) == nil {
		t.Fatal("no RawConn through a *tls.Conn over the wrapper")
	}
	n, err := c.(io.ReaderFrom).ReadFrom(strings.NewReader("hello"))
	if err != nil || n != 5 {
		t.Fatalf("ReadFrom: %d, %v", n, err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	client.SetReadDeadline(time.Now().Add(deadlineTestWait))
	if b, err := io.ReadAll(client); err != nil || string(b) != "hello" {
		t.Fatalf("client read %q, %v; want hello and the end", b, err)
	}

	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	pc := newConn(p1)
	if _, ok := pc.(io.ReaderFrom); ok {
		t.Fatal("a wrapped pipe has a ReadFrom")
	}
	if RawConnOf(pc) != nil {
		t.Fatal("a RawConn for a pipe")
	}
	if _, ok := pc.(*Conn).rw.(*SockIO); ok {
		t.Fatal("a sockIO for a pipe")
	}
	if err := pc.(interface{ CloseWrite() error }).CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CloseWrite on a pipe: %v", err)
	}
}

// countingListener counts the deadlines of the connections it accepts.
type countingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*countingConn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, cc)
	l.mu.Unlock()
	return cc, nil
}

// wrappingListener wraps the connections it accepts, as the gateway's
// listener does.
type wrappingListener struct{ net.Listener }

func (l wrappingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c, Options{}), nil
}

// TestServeCoarseDeadlines: a fasthttp server with the gateway's timeouts
// (IdleTimeout 120 s, ReadTimeout 60 s, WriteTimeout 60 s) on wrapped
// connections applies no deadline after the first ones of a keep-alive
// connection, where fasthttp asks for three a request.
func TestServeCoarseDeadlines(t *testing.T) {
	const requests = 100
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: tcp}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
			ctx.SetBodyString(`{"error":{}}`)
		},
		ReadTimeout:  60 * time.Second,
		WriteTimeout: 60 * time.Second,
		IdleTimeout:  120 * time.Second,
	}
	go srv.Serve(wrappingListener{ln})
	t.Cleanup(func() { srv.Shutdown() })

	c, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadlineTestWait))
	br := bufio.NewReader(c)
	req := "GET /v1/models HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer sk-unknown-0123456789abcdef\r\n\r\n"
	start := time.Now()
	for i := range requests {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := readStatus(br)
		if err != nil || resp != "HTTP/1.1 401 Unauthorized" {
			t.Fatalf("request %d: %q, %v", i, resp, err)
		}
	}
	elapsed := time.Since(start)
	ln.mu.Lock()
	conns := ln.conns
	ln.mu.Unlock()
	if len(conns) != 1 {
		t.Fatalf("%d connections accepted, want 1", len(conns))
	}
	// The first request's (there was none), the first idle one (later by
	// 60 s), then at most one a second each.
	bound := int64(2 + elapsed/time.Second)
	if n := conns[0].reads.Load(); n > bound {
		t.Fatalf("%d read deadlines applied for %d requests in %v, want at most %d", n, requests, elapsed, bound)
	}
	if n := conns[0].writes.Load(); n > bound {
		t.Fatalf("%d write deadlines applied for %d requests in %v, want at most %d", n, requests, elapsed, bound)
	}
	t.Logf("%d requests in %v: %d read and %d write deadlines applied", requests, elapsed, conns[0].reads.Load(), conns[0].writes.Load())
}

// readStatus reads a response with a Content-Length body from br and
// returns its status line.
func readStatus(br *bufio.Reader) (string, error) {
	status, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	length := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			for _, ch := range strings.TrimSpace(v) {
				length = length*10 + int(ch-'0')
			}
		}
	}
	if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
		return "", err
	}
	return strings.TrimSuffix(status, "\r\n"), nil
}

// aLongTimeAgo is a deadline in the past, to wake a blocked read.
var aLongTimeAgo = time.Unix(1, 0)
