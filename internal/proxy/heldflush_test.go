package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/internal/safelog"
	"github.com/valyala/fasthttp"
)

// sendReadPair dials a real loopback connection through a connPool and
// hands the accepted end to serve, in its own goroutine.
func sendReadPair(t *testing.T, serve func(net.Conn)) *upConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	p := &connPool{addr: ln.Addr().String(), dialTimeout: time.Second}
	pc, err := p.dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if pc.sendReadFn == nil {
		t.Fatal("a plain TCP upstream connection does not hold its flush")
	}
	if _, ok := pc.rw.(*netconn.SockIO); !ok && netconn.NewSockIO(pc.Conn, pc.raw) != nil {
		t.Fatal("a plain TCP upstream connection is not read and written by a netconn.SockIO")
	}
	return pc
}

// send writes a POST of body on pc as roundTrip does (the flush held), then
// reads the response head and body.
func send(t *testing.T, pc *upConn, body []byte) (*fasthttp.Response, error) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://upstream/v1/chat/completions")
	req.SetBody(body)
	if err := req.Write(pc.bw); err != nil {
		t.Fatal(err)
	}
	if err := pc.sendLater(); err != nil {
		t.Fatal(err)
	}
	switch {
	case len(body)+512 < pc.bw.Size() && pc.held == nil:
		t.Fatal("a request that fits the buffer was flushed, not held for the read")
	case len(body) > pc.bw.Size() && pc.held != nil:
		t.Fatal("the end of a request part of which was sent already was held: an early answer would go unseen")
	}
	resp := &fasthttp.Response{}
	pc.setReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := readResponseHead(resp, pc, false); err != nil {
		return nil, err
	}
	return resp, nil
}

// answer reads one request from c and echoes its body's length.
func answer(c net.Conn, delay time.Duration) error {
	time.Sleep(delay)
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	if err := req.Read(bufio.NewReader(c)); err != nil {
		return err
	}
	n := strconv.Itoa(len(req.Body()))
	_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(n))+"\r\n\r\n"+n)
	return err
}

func TestSendThenRead(t *testing.T) {
	t.Run("keep-alive", func(t *testing.T) {
		pc := sendReadPair(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for range 5 {
				req := fasthttp.AcquireRequest()
				if err := req.Read(br); err != nil {
					return
				}
				n := strconv.Itoa(len(req.Body()))
				fasthttp.ReleaseRequest(req)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(n))+"\r\n\r\n"+n)
			}
		})
		for i, size := range []int{0, 100, 5000, upBufferSize + 4000, 10} {
			resp, err := send(t, pc, bytes.Repeat([]byte("x"), size))
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if got, want := string(resp.Body()), strconv.Itoa(size); got != want || resp.StatusCode() != 200 {
				t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode(), got, want)
			}
			if pc.held != nil || pc.rbuf != nil {
				t.Fatalf("request %d left state behind: held %d bytes, rbuf %v", i, len(pc.held), pc.rbuf != nil)
			}
		}
	})

	// The socket's buffers take less than the held flush and the upstream
	// reads late: the first write is partial (or refused), and the rest
	// goes through the connection.
	t.Run("partial write", func(t *testing.T) {
		got := make(chan error, 1)
		pc := sendReadPair(t, func(c net.Conn) { got <- answer(c, 100*time.Millisecond) })
		if err := pc.raw.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
		}); err != nil {
			t.Fatal(err)
		}
		// The whole request in one flush is more than the send buffer and
		// the peer's receive window (which starts at 64 KiB on Linux) take.
		pc.bw = bufio.NewWriterSize(upIO{pc}, 1<<20)
		const size = 800 << 10
		resp, err := send(t, pc, bytes.Repeat([]byte("y"), size))
		if err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("upstream: %v", err)
		}
		if got, want := string(resp.Body()), strconv.Itoa(size); got != want {
			t.Fatalf("upstream received %s bytes of body, want %s", got, want)
		}
	})

	// An upstream that closed the connection while it was idle: the write
	// draws a reset, which must wake the read at once, not at its deadline.
	t.Run("closed while idle", func(t *testing.T) {
		closed := make(chan struct{})
		pc := sendReadPair(t, func(c net.Conn) { c.Close(); close(closed) })
		<-closed
		time.Sleep(20 * time.Millisecond) // the FIN arrives, and is seen as readiness
		start := time.Now()
		_, err := send(t, pc, []byte("{}"))
		if err == nil {
			t.Fatal("a request on a connection the upstream closed got a response")
		}
		if safelog.IsTimeout(err) || time.Since(start) > time.Second {
			t.Fatalf("after %v: %v; want the reset or end of stream at once", time.Since(start), err)
		}
		if upstreamErrorStatus(err) != fasthttp.StatusBadGateway {
			t.Fatalf("%v maps to %d, want 502", err, upstreamErrorStatus(err))
		}
	})

	t.Run("read deadline", func(t *testing.T) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		pc := sendReadPair(t, func(net.Conn) { <-release }) // reads nothing, answers nothing
		if err := req(pc); !safelog.IsTimeout(err) || upstreamErrorStatus(err) != fasthttp.StatusGatewayTimeout {
			t.Fatalf("%v; want a timeout (504)", err)
		}
	})

	t.Run("closed by the watch", func(t *testing.T) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		pc := sendReadPair(t, func(net.Conn) { <-release })
		time.AfterFunc(50*time.Millisecond, func() { pc.Close() })
		start := time.Now()
		if err := req(pc); err == nil || safelog.IsTimeout(err) || time.Since(start) > time.Second {
			t.Fatalf("after %v: %v; want an error at once", time.Since(start), err)
		}
	})
}

// wrappedTCPConn is a connection a Config.UpstreamDial might return: a TCP
// socket with Read and Write of its own. It has a RawConn (embedded), which
// the held flush must not use, or those would be bypassed.
type wrappedTCPConn struct {
	*net.TCPConn
	read, written atomic.Int64
}

func (c *wrappedTCPConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *wrappedTCPConn) Write(p []byte) (int, error) {
	n, err := c.TCPConn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// TestSendThenReadWrappedConn: a connection from UpstreamDial that is not
// the net package's own keeps its Read and Write for every byte.
func TestSendThenReadWrappedConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		answer(c, 0)
	}()
	var cc *wrappedTCPConn
	p := &connPool{addr: ln.Addr().String(), dialTimeout: time.Second,
		dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cc = &wrappedTCPConn{TCPConn: c.(*net.TCPConn)}
			return cc, nil
		}}
	pc, err := p.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if pc.raw == nil || pc.sendReadFn != nil {
		t.Fatalf("RawConn %v, held flush %v; want a RawConn (for the liveness peek) and no held flush", pc.raw != nil, pc.sendReadFn != nil)
	}
	if err := req(pc); err != nil {
		t.Fatal(err)
	}
	if w, r := cc.written.Load(), cc.read.Load(); w != int64(len(smallRequest)) || r == 0 {
		t.Fatalf("the wrapper wrote %d bytes (want %d) and read %d (want the response)", w, len(smallRequest), r)
	}
}

// smallRequest is req's request.
const smallRequest = "GET / HTTP/1.1\r\nHost: upstream\r\n\r\n"

// req sends a small request on pc, with a read deadline of 200 ms.
func req(pc *upConn) error {
	if _, err := io.WriteString(pc.bw, smallRequest); err != nil {
		return err
	}
	if err := pc.sendLater(); err != nil {
		return err
	}
	pc.setReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err := readResponseHead(&fasthttp.Response{}, pc, false)
	return err
}
