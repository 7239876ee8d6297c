//go:build linux

package netconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestRawIO: a RawIO reads and writes a real socket as the net.Conn
// does: bytes, EOF, the connection's deadlines, a reset, a write larger
// than the socket takes at once, and a closed connection.
func TestRawIO(t *testing.T) {
	if NewRawIO(pipeConn()) != nil {
		t.Fatal("NewRawIO of a net.Pipe is not nil")
	}
	a, b := tcpPair(t)
	r := NewRawIO(b)
	if r == nil {
		t.Fatal("NewRawIO of a TCP connection is nil")
	}
	buf := make([]byte, 64)

	// Bytes, then a deadline with none, then EOF.
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(deadlineTestWait))
	if n, err := r.Read(buf); n != 5 || err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %d %q, %v; want hello", n, buf[:n], err)
	}
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := r.Read(buf)
	var ne net.Error
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read with nothing by the deadline = %d, %v; want a timeout", n, err)
	}
	b.SetReadDeadline(time.Time{})
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read of nothing = %d, %v", n, err)
	}

	// A write larger than the socket's buffers takes, read by a slow
	// peer: all of it, in order.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		p := make([]byte, 4096)
		for len(all) < len(big) {
			n, err := a.Read(p)
			all = append(all, p[:n]...)
			if err != nil {
				break
			}
		}
		got <- all
	}()
	if n, err := r.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write of 8 MiB = %d, %v", n, err)
	}
	if all := <-got; !bytes.Equal(all, big) {
		t.Fatalf("the peer got %d bytes, not what was written", len(all))
	}

	// A write to a peer that reads nothing ends at the write deadline,
	// with what the socket took.
	b.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err = r.Write(big)
	if n <= 0 || n >= len(big) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a peer that reads nothing = %d, %v; want part of it and a timeout", n, err)
	}
	b.SetWriteDeadline(time.Time{})

	// The peer's reset, then the peer's close on a fresh pair.
	a.SetLinger(0)
	a.Close()
	b.SetReadDeadline(time.Now().Add(deadlineTestWait))
	if n, err := r.Read(buf); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after the peer's reset = %d, %v; want ECONNRESET", n, err)
	}
	c, d := tcpPair(t)
	rd := NewRawIO(d)
	c.Close()
	d.SetReadDeadline(time.Now().Add(deadlineTestWait))
	if n, err := rd.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer's close = %d, %v; want io.EOF", n, err)
	}

	// Its own connection closed.
	d.Close()
	if _, err := rd.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read of a closed connection: %v; want net.ErrClosed", err)
	}
	if _, err := rd.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write to a closed connection: %v; want net.ErrClosed", err)
	}
}

// TestRawIOAllocs: a read that finds bytes and a write the socket takes
// allocate nothing.
func TestRawIOAllocs(t *testing.T) {
	a, b := tcpPair(t)
	r := NewRawIO(b)
	buf, x := make([]byte, 1), []byte("x")
	allocs := testing.AllocsPerRun(100, func() {
		if n, err := r.Write(x); n != 1 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if n, err := a.Read(buf); n != 1 || err != nil {
			t.Fatalf("the peer's Read = %d, %v", n, err)
		}
		if _, err := a.Write(buf); err != nil {
			t.Fatal(err)
		}
		if n, err := r.Read(buf); n != 1 || err != nil {
			t.Fatalf("Read = %d, %v", n, err)
		}
	})
	// The peer's net.Conn calls allocate nothing either.
	if allocs != 0 {
		t.Errorf("a Write and a Read allocate %v times, want 0", allocs)
	}
}

// pipeConn is a connection that is no socket.
func pipeConn() net.Conn {
	c, _ := net.Pipe()
	return c
}
