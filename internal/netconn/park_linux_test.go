//go:build linux

package netconn

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestParkRefusedServesAgain: a connection whose socket epoll refuses as
// it would park (its set full, at fs.epoll.max_user_watches; here the
// socket is in the set already, EEXIST) is handed back to serve, open,
// not closed: the client's next bytes reach the server.
func TestParkRefusedServesAgain(t *testing.T) {
	served := make(chan net.Conn, 1)
	p, err := NewParker(10*time.Millisecond, time.Minute, func(c net.Conn) { served <- c })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	client, s := socketPair(t)
	c := Wrap(s, Options{Parker: p})
	fd := fdOf(t, s)
	if err := p.poller.Add(fd, Token{Index: -2}, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.poller.Remove(fd) })

	// As fasthttp does between two requests: the connection is idle, and
	// its idle deadline set; the Parker's 10 ms takes its place.
	SetIdle(c, true)
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("the idle read: %d, %v; want 0, EOF", n, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var got net.Conn
	select {
	case got = <-served:
	case <-time.After(deadlineTestWait):
		t.Fatal("a connection epoll refused to park was not served again")
	}
	if got != c {
		t.Errorf("served %v, want the connection", got)
	}
	if _, err := client.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	got.SetReadDeadline(time.Now().Add(deadlineTestWait))
	b := make([]byte, 3)
	if _, err := io.ReadFull(got, b); err != nil || string(b) != "GET" {
		t.Fatalf("the served connection read %q, %v; want the client's GET", b, err)
	}
	if n := p.Parked(); n != 0 {
		t.Errorf("Parked() = %d; want 0", n)
	}
	got.Close()
}
