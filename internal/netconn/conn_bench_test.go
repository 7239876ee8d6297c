package netconn

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkSetReadDeadline: a read deadline a minute ahead, moved a little
// later on every call, as fasthttp moves it on every request: on a
// *net.TCPConn (applied every time), through a CoarseDeadline (skipped but
// about once a second), and through a Conn, alone (recorded) and
// followed by the read it waits for (settled, and skipped, when the read
// begins), beside the same read on the *net.TCPConn. The reads are of zero
// bytes, which return at once after taking the connection's read lock.
func BenchmarkSetReadDeadline(b *testing.B) {
	_, tcp := tcpPair(b)
	wrapped := newConn(tcp)
	var cd CoarseDeadline
	var none []byte
	b.Run("time.Now", func(b *testing.B) { // the caller's part of every one below
		b.ReportAllocs()
		var d time.Time
		for b.Loop() {
			d = time.Now().Add(time.Minute)
		}
		_ = d
	})
	b.Run("tcp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tcp.SetReadDeadline(time.Now().Add(time.Minute))
		}
	})
	b.Run("CoarseDeadline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			cd.Set(time.Now().Add(time.Minute), tcp.SetReadDeadline)
		}
	})
	b.Run("Conn", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			wrapped.SetReadDeadline(time.Now().Add(time.Minute))
		}
	})
	b.Run("tcp+read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tcp.SetReadDeadline(time.Now().Add(time.Minute))
			tcp.Read(none)
		}
	})
	b.Run("Conn+read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			wrapped.SetReadDeadline(time.Now().Add(time.Minute))
			wrapped.Read(none)
		}
	})
}

// BenchmarkKeepAliveDeadlines: the deadlines of one keep-alive request as
// fasthttp sets them with the default timeouts: IdleTimeout's, the read
// that ends the idle wait, ReadTimeout's, WriteTimeout's; on a
// *net.TCPConn and on a Conn, which is also charged for what it
// adds to the response's write (its begin and end: the write itself is
// left out of both).
func BenchmarkKeepAliveDeadlines(b *testing.B) {
	_, tcp := tcpPair(b)
	var none []byte
	b.Run("tcp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tcp.SetReadDeadline(time.Now().Add(120 * time.Second))
			tcp.Read(none)
			tcp.SetReadDeadline(time.Now().Add(60 * time.Second))
			tcp.SetWriteDeadline(time.Now().Add(60 * time.Second))
		}
	})
	b.Run("Conn", func(b *testing.B) {
		c := newConn(tcp).(*readerFromConn)
		b.ReportAllocs()
		for b.Loop() {
			c.SetReadDeadline(time.Now().Add(120 * time.Second))
			c.Read(none)
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			c.SetWriteDeadline(time.Now().Add(60 * time.Second))
			if c.wr.begin() == nil {
				c.wr.end()
			}
		}
	})
}

// BenchmarkServeDeadlineConn: keep-alive GETs on one loopback connection
// to a fasthttp.Server with the gateway's default timeouts, served from a
// plain listener and from a wrappingListener: a small response, and one
// held whole but larger than fasthttp's 4 KiB write buffer, which fasthttp
// writes with one writev on a *net.TCPConn and in two writes through a
// Conn.
func BenchmarkServeDeadlineConn(b *testing.B) {
	for _, size := range []int{200, 16 << 10} {
		body := bytes.Repeat([]byte("x"), size)
		for _, wrap := range []bool{false, true} {
			name := fmt.Sprintf("%dB/tcp", size)
			if wrap {
				name = fmt.Sprintf("%dB/Conn", size)
			}
			b.Run(name, func(b *testing.B) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				srv := &fasthttp.Server{
					Handler:      func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) },
					ReadTimeout:  60 * time.Second,
					IdleTimeout:  120 * time.Second,
					WriteTimeout: 60 * time.Second,
				}
				served := ln
				if wrap {
					served = wrappingListener{ln}
				}
				go srv.Serve(served)
				defer srv.Shutdown()
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				br := bufio.NewReader(c)
				req := []byte("GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n")
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
					if _, err := readStatus(br); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
