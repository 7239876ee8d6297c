//go:build linux

package netconn

import (
	"net"
	"testing"
	"time"
)

// socketPair returns both ends of a loopback TCP connection.
func socketPair(t testing.TB) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func fdOf(t testing.TB, c *net.TCPConn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := SocketFD(raw)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// waitOne waits for one event, with a bound so that a lost wake-up fails
// the test instead of hanging it.
func waitOne(t *testing.T, p *Poller) PollEvent {
	t.Helper()
	evs := make([]PollEvent, 8)
	n, err := p.Wait(evs, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("Wait reported %d events, want 1: %+v", n, evs[:n])
	}
	return evs[0]
}

// TestPoller checks the Poller on real sockets: a socket's bytes are
// reported with its token, again while they stay unread (level-triggered),
// not after Remove; Wake ends a Wait without a deadline; a deadline ends a
// Wait with no event, and a passed one reports what is ready, whether it
// is new or the Wait before's.
func TestPoller(t *testing.T) {
	p, err := NewPoller(8)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b := socketPair(t)
	fd := fdOf(t, b)
	tok := Token{Index: 6, Gen: 9}
	if err := p.Add(fd, tok, WaitRead); err != nil {
		t.Fatal(err)
	}

	evs := make([]PollEvent, 8)
	due := time.Now().Add(20 * time.Millisecond)
	if n, err := p.Wait(evs, due); n != 0 || err != nil || time.Now().Before(due) {
		t.Fatalf("Wait with nothing ready = %d, %v; want 0, nil at its deadline", n, err)
	}

	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	for range 2 { // unread: reported again
		if ev := waitOne(t, p); ev.Token != tok || !ev.Readable || ev.Hangup || ev.Woken {
			t.Fatalf("event %+v, want readable with token %+v", ev, tok)
		}
	}
	for range 2 { // the same passed deadline: the file's, already passed
		if n, err := p.Wait(evs, due); n != 1 || err != nil || evs[0].Token != tok {
			t.Fatalf("Wait with a passed deadline and bytes ready = %d %+v, %v; want them", n, evs[:n], err)
		}
	}
	buf := make([]byte, 16)
	if n, err := ReadFD(fd, buf); n != 5 || err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("ReadFD = %d %q, %v", n, buf[:n], err)
	}
	if _, err := ReadFD(fd, buf); err != ErrWouldBlock {
		t.Fatalf("ReadFD of an empty socket: %v, want ErrWouldBlock", err)
	}

	// A Wait without a deadline, after one whose deadline has passed: only
	// Wake ends it.
	if n, err := p.Wait(evs, time.Now().Add(time.Nanosecond)); n != 0 || err != nil {
		t.Fatalf("Wait with nothing ready = %d, %v", n, err)
	}
	done := make(chan PollEvent, 1)
	go func() {
		n, err := p.Wait(evs, time.Time{})
		if err != nil || n != 1 {
			t.Errorf("Wait = %d, %v; want the wake-up", n, err)
		}
		done <- evs[0]
	}()
	select {
	case ev := <-done:
		t.Fatalf("Wait without a timeout returned %+v before Wake", ev)
	case <-time.After(50 * time.Millisecond):
	}
	p.Wake()
	if ev := <-done; !ev.Woken {
		t.Fatalf("after Wake: %+v, want Woken", ev)
	}

	p.Remove(fd)
	if _, err := a.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Wait(evs, time.Now().Add(20*time.Millisecond)); n != 0 || err != nil {
		t.Fatalf("Wait after Remove = %d %+v, %v; want nothing", n, evs[:n], err)
	}

	// The peer's close: readable and hung up.
	if err := p.Add(fd, tok, WaitHangup); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if ev := waitOne(t, p); !ev.Hangup || ev.Token != tok {
		t.Fatalf("after the peer's close: %+v, want Hangup", ev)
	}
}

// TestWriteFD checks that WriteFD reports how much a full socket took.
func TestWriteFD(t *testing.T) {
	a, _ := socketPair(t)
	fd := fdOf(t, a)
	chunk := make([]byte, 1<<20)
	var wrote int
	for range 64 {
		n, err := WriteFD(fd, chunk)
		wrote += n
		if err == ErrWouldBlock {
			if n > len(chunk) {
				t.Fatalf("WriteFD took %d of %d", n, len(chunk))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("wrote %d bytes to a peer that reads nothing without blocking", wrote)
}

// TestWaitAllocs: a Wait that finds events, with a deadline (the last
// Wait's, or a new one) or without, allocates nothing: a relay's loop
// calls it at every wake-up.
func TestWaitAllocs(t *testing.T) {
	p, err := NewPoller(8)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b := socketPair(t)
	if err := p.Add(fdOf(t, b), Token{Index: 1}, WaitRead); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); err != nil { // unread: ready at every Wait
		t.Fatal(err)
	}
	evs := make([]PollEvent, 8)
	kept := time.Now().Add(time.Minute)
	for _, c := range []struct {
		name string
		due  func() time.Time
	}{
		{"the last deadline", func() time.Time { return kept }},
		{"a new deadline", func() time.Time { return time.Now().Add(time.Minute) }},
		{"no deadline", func() time.Time { return time.Time{} }},
	} {
		allocs := testing.AllocsPerRun(100, func() {
			if n, err := p.Wait(evs, c.due()); n != 1 || err != nil {
				t.Fatalf("Wait with %s = %d, %v; want the socket", c.name, n, err)
			}
		})
		if allocs != 0 {
			t.Errorf("Wait with %s allocates %v times, want 0", c.name, allocs)
		}
	}
}

// BenchmarkWait is a Wait that finds a socket ready: the cost of a
// loop's wake-up in the Poller, with the deadline of the Wait before
// (kept, as a relay's loop waits between its sweeps) and with a new one
// at each Wait (a runtime timer's reset).
func BenchmarkWait(b *testing.B) {
	p, err := NewPoller(8)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	c, sock := socketPair(b)
	if err := p.Add(fdOf(b, sock), Token{Index: 1}, WaitRead); err != nil {
		b.Fatal(err)
	}
	c.Write([]byte("x"))
	evs := make([]PollEvent, 8)
	b.Run("due=kept", func(b *testing.B) {
		due := time.Now().Add(time.Hour)
		b.ReportAllocs()
		for b.Loop() {
			if n, err := p.Wait(evs, due); n != 1 || err != nil {
				b.Fatalf("Wait = %d, %v", n, err)
			}
		}
	})
	b.Run("due=new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n, err := p.Wait(evs, time.Now().Add(50*time.Millisecond)); n != 1 || err != nil {
				b.Fatalf("Wait = %d, %v", n, err)
			}
		}
	})
}
