package netconn

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// outcome describes the result of a Read or Write as a test compares it:
// the count, the bytes read, and the error's kind and operation.
func outcome(n int, data []byte, err error) string {
	s := fmt.Sprintf("n=%d", n)
	if data != nil {
		s += fmt.Sprintf(" %q", data)
	}
	switch {
	case err == nil:
		return s + " ok"
	case err == io.EOF: // exactly, as net returns it
		return s + " EOF"
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		return s + fmt.Sprintf(" not an OpError: %T %v", err, err)
	}
	s += " op=" + oe.Op + " net=" + oe.Net
	if oe.Source == nil || oe.Addr == nil {
		s += " without addresses"
	}
	if strings.Count(err.Error(), " "+oe.Net+" ") != 1 { // one operation and address pair, as net's
		s += fmt.Sprintf(" (message %q)", err.Error())
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s += " timeout"
		} else {
			s += " deadline without Timeout()"
		}
	case errors.Is(err, net.ErrClosed):
		s += " closed"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		s += " reset"
	default:
		s += " " + err.Error()
	}
	return s
}

// rawioConns returns the two ways TestSockIO reads and writes a fresh
// loopback connection's client end: the connection itself and a sockIO
// over it, each with the connection and the server end.
func rawioConns(t *testing.T) map[string]func() (io.ReadWriter, *net.TCPConn, *net.TCPConn) {
	return map[string]func() (io.ReadWriter, *net.TCPConn, *net.TCPConn){
		"net.TCPConn": func() (io.ReadWriter, *net.TCPConn, *net.TCPConn) {
			c, s := tcpPair(t)
			return c, c, s
		},
		"sockIO": func() (io.ReadWriter, *net.TCPConn, *net.TCPConn) {
			c, s := tcpPair(t)
			sio := NewSockIO(c, RawConnOfSocket(c))
			if sio == nil {
				t.Skip("no sockIO here (Linux only)")
			}
			return sio, c, s
		},
	}
}

// TestSockIO checks that a sockIO reads and writes as the connection
// itself does, with the same results and errors: data, the end of the
// stream, deadlines, a closed connection, a reset, writes that must wait
// for the peer, and empty reads.
func TestSockIO(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB: many waits for room
	bigSum := sha256.Sum256(big)
	cases := []struct {
		name string
		want string
		run  func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string
	}{
		{"read", `n=5 "hello" ok`, func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			go s.Write([]byte("hello"))
			buf := make([]byte, 64)
			n, err := rw.Read(buf)
			return outcome(n, buf[:n], err)
		}},
		{"empty read", "n=0 ok", func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			n, err := rw.Read(nil)
			return outcome(n, nil, err)
		}},
		{"end of stream", `n=0 "" EOF`, func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			s.Close()
			buf := make([]byte, 64)
			n, err := rw.Read(buf)
			return outcome(n, buf[:n], err)
		}},
		{"read deadline", `n=0 "" op=read net=tcp timeout`, func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			buf := make([]byte, 64)
			n, err := rw.Read(buf)
			return outcome(n, buf[:n], err)
		}},
		{"read deadline passed", `n=0 "" op=read net=tcp timeout`, func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			go s.Write([]byte("hello")) // readable or not, a passed deadline fails the read
			c.SetReadDeadline(time.Now().Add(-time.Second))
			buf := make([]byte, 64)
			n, err := rw.Read(buf)
			return outcome(n, buf[:n], err)
		}},
		{"read closed", `n=0 "" op=read net=tcp closed`, func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			c.Close()
			buf := make([]byte, 64)
			n, err := rw.Read(buf)
			return outcome(n, buf[:n], err)
		}},
		{"read closed while waiting", `n=0 "" op=read net=tcp closed`, func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			time.AfterFunc(20*time.Millisecond, func() { c.Close() })
			buf := make([]byte, 64)
			n, err := rw.Read(buf)
			return outcome(n, buf[:n], err)
		}},
		{"read reset", `n=0 "" op=read net=tcp reset`, func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			s.SetLinger(0)
			s.Close()
			buf := make([]byte, 64)
			n, err := rw.Read(buf)
			return outcome(n, buf[:n], err)
		}},
		{"write", "n=8388608 ok; the peer got it all", func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			got := make(chan [32]byte, 1)
			go func() {
				time.Sleep(20 * time.Millisecond) // the socket's buffer fills first
				h := sha256.New()
				io.CopyN(h, s, int64(len(big)))
				var sum [32]byte
				h.Sum(sum[:0])
				got <- sum
			}()
			n, err := rw.Write(big)
			res := outcome(n, nil, err)
			select {
			case sum := <-got:
				if sum == bigSum {
					return res + "; the peer got it all"
				}
				return res + "; the peer got other bytes"
			case <-time.After(deadlineTestWait):
				return res + "; the peer got less"
			}
		}},
		{"write deadline", "n<all op=write net=tcp timeout", func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			huge := make([]byte, 64<<20) // more than the socket buffers hold: the peer reads nothing
			n, err := rw.Write(huge)
			res := outcome(n, nil, err)
			if n < len(huge) {
				// What was written by then depends on the machine's load
				// (nothing, if the write started late).
				res = "n<all" + res[len(fmt.Sprint("n=", n)):]
			}
			return res
		}},
		{"write closed", "n=0 op=write net=tcp closed", func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			c.Close()
			n, err := rw.Write([]byte("hello"))
			return outcome(n, nil, err)
		}},
		{"write reset", "op=write net=tcp reset", func(t *testing.T, rw io.ReadWriter, c, s *net.TCPConn) string {
			s.SetLinger(0)
			s.Close()
			// The first writes after the reset may be taken: write until one
			// is refused.
			for range 100 {
				n, err := rw.Write([]byte("hello"))
				if err != nil {
					res := outcome(n, nil, err)
					return res[len(fmt.Sprint("n=", n))+1:]
				}
				time.Sleep(time.Millisecond)
			}
			return "every write taken"
		}},
	}
	for name, conns := range rawioConns(t) {
		t.Run(name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					rw, c, s := conns()
					if got := tc.run(t, rw, c, s); got != tc.want {
						t.Errorf("got  %s\nwant %s", got, tc.want)
					}
				})
			}
		})
	}
}

// TestSockIOConcurrent reads and writes a sockIO from several goroutines at
// once, as net.Conn allows: a Read or Write that finds another under way
// uses the connection's own, and none is lost or mixed up.
func TestSockIOConcurrent(t *testing.T) {
	c, s := tcpPair(t)
	sio := NewSockIO(c, RawConnOfSocket(c))
	if sio == nil {
		t.Skip("no sockIO here (Linux only)")
	}
	const n, size = 8, 64 << 10
	done := make(chan error, 2*n)
	for i := range n {
		go func() {
			_, err := sio.Write(bytes.Repeat([]byte{byte('a' + i)}, size))
			done <- err
		}()
	}
	// Writes are whole: each one's bytes arrive together.
	got := make([]byte, n*size)
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	seen := map[byte]bool{}
	for off := 0; off < len(got); off += size {
		b := got[off]
		if seen[b] || !bytes.Equal(got[off:off+size], bytes.Repeat([]byte{b}, size)) {
			t.Fatalf("write at %d interleaved or repeated", off)
		}
		seen[b] = true
	}
	// Reads: each of n readers gets one of the n bytes sent.
	bytesRead := make(chan byte, n)
	for range n {
		go func() {
			var b [1]byte
			_, err := sio.Read(b[:])
			bytesRead <- b[0]
			done <- err
		}()
	}
	for i := range n {
		time.Sleep(time.Millisecond)
		s.Write([]byte{byte('A' + i)})
	}
	for range 2 * n {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(deadlineTestWait):
			t.Fatal("a read or write did not return")
		}
	}
	close(bytesRead)
	readSeen := map[byte]bool{}
	for b := range bytesRead {
		readSeen[b] = true
	}
	if len(readSeen) != n {
		t.Errorf("readers got %d distinct bytes of %d", len(readSeen), n)
	}
}
