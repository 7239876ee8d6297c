package netconn

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// deadlineTestWait bounds every wait in these tests; none asserts a
// duration.
const deadlineTestWait = 5 * time.Second

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

// TestConnDeadlines: the wrapper leaves deadlines to the connection: one
// set before a read or during it ends the read, a cleared one lets it
// wait. The same for RawConn.Read, on which the client watch waits.
func TestConnDeadlines(t *testing.T) {
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

	c.SetReadDeadline(aLongTimeAgo)
	_, err := c.Read(buf)
	wantTimeout("deadline set before the read", err)

	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		done <- err
	}()
	c.SetReadDeadline(aLongTimeAgo)
	wantTimeout("deadline set during a read", <-done)

	c.SetReadDeadline(time.Time{})
	go client.Write([]byte("x"))
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("read after the deadline cleared: %v", err)
	}

	raw := RawConnOf(c)
	if raw == nil {
		t.Fatal("no RawConn for the wrapped TCP connection")
	}
	never := func(uintptr) bool { return false }
	c.SetReadDeadline(aLongTimeAgo)
	wantTimeout("RawConn.Read after a deadline set", raw.Read(never))
	c.SetReadDeadline(time.Time{})
	go func() { done <- raw.Read(never) }()
	c.SetReadDeadline(aLongTimeAgo)
	wantTimeout("RawConn.Read woken", <-done)
}

// TestConnLooksThrough: what the gateway and fasthttp ask of a
// client connection is still answered through the wrapper: addresses,
// CloseWrite, ReadFrom, SyscallConn (also beneath a *tls.Conn); a
// connection without them says so.
func TestConnLooksThrough(t *testing.T) {
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
	if err := pc.(interface{ CloseWrite() error }).CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CloseWrite on a pipe: %v", err)
	}
}

// aLongTimeAgo is a deadline in the past, to wake a blocked read.
var aLongTimeAgo = time.Unix(1, 0)
