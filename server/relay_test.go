//go:build linux

package server_test

// Relayed streams (docs/http.md#relayed-streams): a chunked stream to a
// plain-HTTP/1.1 client leaves fasthttp once its head is decided and is
// relayed on the gateway's event loop; its connection then serves the
// client's next request. The client sees the same response either way:
// each test runs with the relay on and off.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authgate/authgate/server"
)

// sseUpstream answers each request with a chunked event stream: its head
// and the first content event at once, then, once release yields, three
// more, a usage-only chunk, "[DONE]" and the body's end. left reports the
// upstream connections the gateway closed while their stream was held.
type sseUpstream struct {
	url     string
	release chan struct{}
	left    chan struct{}
	served  atomic.Int32
}

const (
	sseUsage = `{"id":"c","object":"chat.completion.chunk","model":"m1","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":4,"total_tokens":11}}`
	sseDone  = "data: [DONE]\n\n"
)

func sseContent(i int) string {
	return fmt.Sprintf(`{"id":"c","object":"chat.completion.chunk","model":"m1","choices":[{"index":0,"delta":{"content":"t%d"}}]}`, i)
}

func startSSEUpstream(t *testing.T) *sseUpstream {
	u := &sseUpstream{release: make(chan struct{}, 16), left: make(chan struct{}, 16)}
	u.url = startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			u.served.Add(1)
			chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }
			head := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
			if _, err := io.WriteString(c, head+chunk("data: "+sseContent(0)+"\n\n")); err != nil {
				return
			}
			// Hold the stream until released, noticing a close meanwhile
			// (the peek returns with the next request, or the close).
			peeked := make(chan error, 1)
			go func() {
				_, err := br.Peek(1)
				peeked <- err
			}()
			select {
			case <-u.release:
			case <-peeked:
				u.left <- struct{}{}
				return
			}
			var rest strings.Builder
			for i := 1; i <= 3; i++ {
				rest.WriteString(chunk("data: " + sseContent(i) + "\n\n"))
			}
			rest.WriteString(chunk("data: " + sseUsage + "\n\n"))
			rest.WriteString(chunk(sseDone))
			rest.WriteString("0\r\n\r\n")
			if _, err := io.WriteString(c, rest.String()); err != nil {
				return
			}
			if err := <-peeked; err != nil {
				return
			}
		}
	})
	return u
}

// streamBody is the body the client of sseUpstream gets: every event,
// the usage-only one included when the client asked for it.
func streamBody(usage bool) string {
	var b strings.Builder
	for i := range 4 {
		b.WriteString("data: " + sseContent(i) + "\n\n")
	}
	if usage {
		b.WriteString("data: " + sseUsage + "\n\n")
	}
	b.WriteString(sseDone)
	return b.String()
}

// forRelay runs test with the relay on and off.
func forRelay(t *testing.T, test func(t *testing.T, relay bool)) {
	for _, relay := range []bool{true, false} {
		t.Run(fmt.Sprintf("relay=%v", relay), func(t *testing.T) { test(t, relay) })
	}
}

func startRelayGateway(t *testing.T, upURL string, relay bool, keys string) *gateway {
	t.Helper()
	return startGateway(t, server.Config{
		KeysFile: keysFile(t, keys), Upstreams: []string{upURL}, HealthCheckInterval: noChecks,
		ParkIdleAfter: parkAfter, NoStreamRelay: !relay,
	})
}

const streamChat = `{"model":"m1","stream":true,"stream_options":{"include_usage":true}}`

// TestRelayedStream: a stream reaches the client whole, with the
// gateway's headers, and is metered and logged; the connection then
// serves the next request, and waits parked meanwhile. With the relay on,
// the stream is the relay's while it lasts.
func TestRelayedStream(t *testing.T) {
	forRelay(t, func(t *testing.T, relay bool) {
		up := startSSEUpstream(t)
		g := startRelayGateway(t, up.url, relay, "alice:"+keyAlice+"\n")
		pc := dialPark(t, strings.TrimPrefix(g.url, "http://"))
		for i := range 2 {
			io.WriteString(pc.c, chatRequest(streamChat))
			pc.c.SetReadDeadline(time.Now().Add(waitLimit))
			resp, err := http.ReadResponse(pc.br, nil)
			if err != nil {
				t.Fatalf("stream %d: %v", i+1, err)
			}
			if resp.StatusCode != 200 || resp.TransferEncoding == nil || resp.TransferEncoding[0] != "chunked" ||
				resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("Date") == "" ||
				resp.Header.Get("X-Accel-Buffering") != "no" || resp.Header.Get("X-Ratelimit-Limit-Requests") == "" {
				t.Fatalf("stream %d: head %d %v %v", i+1, resp.StatusCode, resp.TransferEncoding, resp.Header)
			}
			first := make([]byte, len("data: "+sseContent(0)+"\n\n"))
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatalf("stream %d: first event: %v", i+1, err)
			}
			// The stream is held upstream: it is the relay's, if on.
			want := 0
			if relay {
				want = 1
			}
			if n := server.RelayedStreams(g.Gateway); n != want {
				t.Fatalf("stream %d: %d streams relayed, want %d", i+1, n, want)
			}
			up.release <- struct{}{}
			rest, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("stream %d: %v", i+1, err)
			}
			if got := string(first) + string(rest); got != streamBody(true) {
				t.Fatalf("stream %d: body\n%q\nwant\n%q", i+1, got, streamBody(true))
			}
			waitFor(t, "parked", func() bool { return server.ParkedConns(g.Gateway) == 1 })
			if n := server.RelayedStreams(g.Gateway); n != 0 {
				t.Fatalf("after stream %d: %d streams relayed", i+1, n)
			}
		}
		if n := up.served.Load(); n != 2 {
			t.Fatalf("upstream served %d requests, want 2", n)
		}
		var m strings.Builder
		g.WriteMetrics(&m)
		if !strings.Contains(m.String(), `authgate_tokens_total{key_id="alice",model="",type="completion"} 8`) {
			t.Fatalf("streams not metered:\n%s", m.String())
		}
		lines := g.logLines(t)
		if len(lines) != 2 || !strings.HasSuffix(lines[0], "| 200") || !strings.Contains(lines[1], "| alice |") {
			t.Fatalf("access log: %q", lines)
		}
	})
}

// TestRelayedStreamPipelined: a request the client sent right behind a
// stream's, which the server had read with it, is served after the
// stream, on the same connection.
func TestRelayedStreamPipelined(t *testing.T) {
	forRelay(t, func(t *testing.T, relay bool) {
		up := startSSEUpstream(t)
		g := startRelayGateway(t, up.url, relay, "alice:"+keyAlice+"\n")
		pc := dialPark(t, strings.TrimPrefix(g.url, "http://"))
		io.WriteString(pc.c, chatRequest(streamChat)+chatRequest(streamChat))
		up.release <- struct{}{}
		up.release <- struct{}{}
		for i, want := range []string{streamBody(true), streamBody(true)} {
			if s, b := pc.response(t); s != 200 || b != want {
				t.Fatalf("response %d: %d %q", i+1, s, b)
			}
		}
	})
}

// TestRelayedStreamClientLeaves: a client that closes its connection
// mid-stream has its upstream connection closed at once, and its
// concurrency slot released.
func TestRelayedStreamClientLeaves(t *testing.T) {
	forRelay(t, func(t *testing.T, relay bool) {
		up := startSSEUpstream(t)
		g := startRelayGateway(t, up.url, relay, "alice:"+keyAlice+"  concurrency=1\n")
		pc := dialPark(t, strings.TrimPrefix(g.url, "http://"))
		io.WriteString(pc.c, chatRequest(streamChat))
		pc.c.SetReadDeadline(time.Now().Add(waitLimit))
		if _, err := http.ReadResponse(pc.br, nil); err != nil {
			t.Fatal(err)
		}
		pc.c.Close()
		select {
		case <-up.left:
		case <-time.After(waitLimit):
			t.Fatal("the upstream connection was not closed after the client left")
		}
		waitFor(t, "the slot released", func() bool {
			if server.RelayedStreams(g.Gateway) != 0 {
				return false
			}
			up.release <- struct{}{}
			s, _ := dialPark(t, strings.TrimPrefix(g.url, "http://")).request(t, chatRequest(streamChat))
			return s == 200
		})
	})
}

// TestRelayedStreamShutdown: Shutdown waits for a stream in flight, which
// ends whole; its connection is then closed.
func TestRelayedStreamShutdown(t *testing.T) {
	forRelay(t, func(t *testing.T, relay bool) {
		up := startSSEUpstream(t)
		g := startRelayGateway(t, up.url, relay, "alice:"+keyAlice+"\n")
		pc := dialPark(t, strings.TrimPrefix(g.url, "http://"))
		io.WriteString(pc.c, chatRequest(streamChat))
		pc.c.SetReadDeadline(time.Now().Add(waitLimit))
		resp, err := http.ReadResponse(pc.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		stopped := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			stopped <- g.Shutdown(ctx)
		}()
		select {
		case err := <-stopped:
			t.Fatalf("Shutdown returned %v with a stream in flight", err)
		case <-time.After(100 * time.Millisecond):
		}
		up.release <- struct{}{}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != streamBody(true) {
			t.Fatalf("stream: %v %q", err, b)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		pc.closedByGateway(t)
	})
}
