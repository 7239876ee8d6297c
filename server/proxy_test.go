package server_test

// Proxy behaviour (docs/http.md#proxy) against real upstreams on
// loopback: fasthttp servers where fasthttp suffices, raw listeners speaking
// HTTP/1.1 by hand where a test must control the bytes or see a connection
// close. Every wait is bounded by waitLimit and fails the test when reached.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/server"
)

// waitLimit bounds every wait in these tests; reaching it fails the test.
// It is generous, for a loaded machine running the race detector: no test
// passes or fails by how long something took within it.
const waitLimit = 10 * time.Second

// noChecks as Config.HealthCheckInterval turns active health checks off, for
// raw upstreams that answer only the requests a test sends.
const noChecks = -1

// streamClient reads streamed bodies; its timeout bounds a body that the
// gateway would hold back.
var streamClient = &http.Client{Timeout: waitLimit}

// recv returns the next value from ch, failing the test after waitLimit.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("no %s within %v", what, waitLimit)
	}
	var zero T
	return zero
}

// eventually polls cond until it holds, failing the test after waitLimit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !within(cond) {
		t.Fatalf("%s: not within %v", what, waitLimit)
	}
}

// within polls cond every few milliseconds until it holds, and reports
// whether it did within waitLimit; for goroutines other than the test's,
// which must not call t.Fatal.
func within(cond func() bool) bool {
	deadline := time.After(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			return false
		case <-tick.C:
		}
	}
	return true
}

// startServer is startUpstream for a server that needs its own settings.
func startServer(t *testing.T, srv *fasthttp.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.CloseOnShutdown = true
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// startRawUpstream accepts connections on a loopback port and runs serve on
// each in its own goroutine, closing the connection when serve returns. It
// returns the base URL. At the end of the test the listener and every
// connection are closed and the goroutines waited for.
func startRawUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns = append(conns, c)
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Errorf("raw upstream goroutines still running %v after the test", waitLimit)
		}
	})
	return "http://" + ln.Addr().String()
}

// readRequest reads one request and its body from br.
func readRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

// writeChunk writes s as one chunk of a chunked body.
func writeChunk(w io.Writer, s string) error {
	_, err := fmt.Fprintf(w, "%x\r\n%s\r\n", len(s), s)
	return err
}

// sseHead is the head of a chunked server-sent-events response.
const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

// hangingUpstream reads each request, reports it on got, then blocks reading
// its connection, and reports on closed what ended that read: an error when
// the gateway closed the connection, nil if it sent more bytes instead.
func hangingUpstream(t *testing.T) (url string, got <-chan struct{}, closed <-chan error) {
	t.Helper()
	gotc, closedc := make(chan struct{}, 8), make(chan error, 8)
	url = startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err != nil {
			return
		}
		gotc <- struct{}{}
		_, err := br.ReadByte()
		closedc <- err
	})
	return url, gotc, closedc
}

// deadURL returns the base URL of a loopback port with nothing listening.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// dialGateway opens a raw client connection to g, closed at the end of the
// test; waitLimit bounds every read and write on it.
func dialGateway(t *testing.T, g *gateway) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(waitLimit))
	return conn, bufio.NewReader(conn)
}

// rawRequest is an HTTP/1.1 request with alice's key and the given extra
// header lines (each ending in CRLF).
func rawRequest(method, path, extra, body string) string {
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer %s\r\n%sContent-Length: %d\r\n\r\n%s",
		method, path, keyAlice, extra, len(body), body)
}

// newRequest is an http.Request with alice's key.
func newRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+keyAlice)
	return req
}

// postAsync POSTs to url with alice's key in another goroutine, reads the
// whole response, and reports an error, or a status other than 200, on the
// returned channel.
func postAsync(url string) <-chan error {
	done := make(chan error, 1)
	go func() {
		req, err := http.NewRequest("POST", url, strings.NewReader("{}"))
		if err != nil {
			done <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+keyAlice)
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		done <- err
	}()
	return done
}

// awaitHeld returns what an upstream reports on held when it holds a
// request, failing the test if the request ends first (done) or after
// waitLimit.
func awaitHeld[T any](t *testing.T, held <-chan T, done <-chan error) T {
	t.Helper()
	select {
	case v := <-held:
		return v
	case err := <-done:
		t.Fatalf("the request to be held ended first: %v", err)
	case <-time.After(waitLimit):
		t.Fatalf("no request held within %v", waitLimit)
	}
	var zero T
	return zero
}

// apiErrorFields returns the type and code of an OpenAI-shaped error body.
func apiErrorFields(t *testing.T, body string) (typ, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Type string `json:"type"`
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Type, e.Error.Code
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// closer returns a function that closes ch the first time it is called.
func closer(ch chan struct{}) func() {
	var o sync.Once
	return func() { o.Do(func() { close(ch) }) }
}

// TestStreamEventByEvent: a chunked body reaches the client piece by piece
// while the upstream is still producing it, the headers first, with
// X-Accel-Buffering: no.
func TestStreamEventByEvent(t *testing.T) {
	f := func(contentType, first, rest string, format logsink.Format) {
		t.Helper()
		gotHead, gotFirst := make(chan struct{}), make(chan struct{})
		releaseHead, releaseFirst := closer(gotHead), closer(gotFirst)
		upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n", contentType)
			<-gotHead
			if writeChunk(c, first) != nil {
				return
			}
			<-gotFirst
			if writeChunk(c, rest) == nil {
				io.WriteString(c, "0\r\n\r\n")
			}
		})
		t.Cleanup(releaseHead) // before the upstream's cleanup
		t.Cleanup(releaseFirst)
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
			HealthCheckInterval: noChecks, UpstreamTimeout: waitLimit, AccessLogFormat: format})

		// The upstream sends nothing after its head until the client has it.
		resp, err := streamClient.Do(newRequest(t, "POST", g.url+"/v1/chat/completions", `{"stream":true}`))
		if err != nil {
			t.Fatalf("%s: response head while the upstream holds the body: %v", contentType, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", contentType, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != contentType {
			t.Errorf("Content-Type %q, want %q passed through", got, contentType)
		}
		if got := resp.Header.Get("X-Accel-Buffering"); got != "no" {
			t.Errorf("%s: X-Accel-Buffering %q, want no", contentType, got)
		}
		releaseHead()
		br := bufio.NewReader(resp.Body)
		piece := make([]byte, len(first))
		if _, err := io.ReadFull(br, piece); err != nil || string(piece) != first {
			t.Fatalf("%s: first piece %q, %v; want %q while the upstream holds the rest", contentType, piece, err, first)
		}
		releaseFirst()
		tail, err := io.ReadAll(br)
		if err != nil || string(tail) != rest {
			t.Fatalf("%s: rest %q, %v; want %q and a clean end", contentType, tail, err, rest)
		}
	}
	f("text/event-stream", "data: first\n\n", "data: [DONE]\n\n", logsink.FormatText)
	f("application/json", `{"id":"x","choices":[`, `{"index":0}]}`, logsink.FormatText)
	// Regression: the JSON access log's bytes_out read the whole stream
	// (Response.Body) before the client got any of it.
	f("text/event-stream", "data: first\n\n", "data: [DONE]\n\n", logsink.FormatJSON)
}

// TestClientGoneBeforeResponse: a client that disconnects while its request
// waits for the upstream's headers closes the upstream connection, and the
// request is logged 499; with a per-address connection limit too (the
// gateway's listener keeps the socket visible to the watch), and after
// READ_TIMEOUT, which bounds reading the request, not the wait for the
// upstream.
func TestClientGoneBeforeResponse(t *testing.T) {
	const readTimeout = 200 * time.Millisecond
	for _, c := range []struct {
		name  string
		cfg   server.Config
		leave time.Duration // how long the client waits before it leaves
	}{
		{"defaults", server.Config{}, 0},
		{"MaxConnsPerIP=10", server.Config{MaxConnsPerIP: 10}, 0},
		{"after READ_TIMEOUT", server.Config{ReadTimeout: readTimeout}, 3 * readTimeout},
	} {
		t.Run(c.name, func(t *testing.T) { testClientGoneBeforeResponse(t, c.cfg, c.leave) })
	}
}

func testClientGoneBeforeResponse(t *testing.T, cfg server.Config, leave time.Duration) {
	upURL, got, closed := hangingUpstream(t)
	cfg.KeysFile, cfg.Upstreams = defaultKeys(t), []string{upURL}
	cfg.HealthCheckInterval, cfg.UpstreamTimeout = noChecks, time.Minute
	g := startGateway(t, cfg)

	conn, _ := dialGateway(t, g)
	if _, err := io.WriteString(conn, rawRequest("POST", "/v1/chat/completions", "", `{"model":"m"}`)); err != nil {
		t.Fatal(err)
	}
	recv(t, got, "request at the upstream")
	time.Sleep(leave) // the fault: a client that leaves only after READ_TIMEOUT has passed
	conn.Close()
	if err := recv(t, closed, "close of the upstream connection after the client left"); err == nil {
		t.Fatal("the upstream got more bytes instead of a close")
	}

	// Shutdown waits for the handler, so its log line is written.
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	lines := g.logLines(t)
	if len(lines) != 1 || !strings.HasSuffix(lines[0], " | alice | POST /v1/chat/completions | 499") {
		t.Fatalf("access log %q, want one line with status 499", lines)
	}
}

// TestWatchOnlySlowExchanges: an exchange that ends quickly never starts
// the client watch (a goroutine, a peek at the client's socket and two
// deadline updates per request); one that lasts starts it once.
func TestWatchOnlySlowExchanges(t *testing.T) {
	var slowFrom atomic.Uint64 // WatchesStarted before the slow request
	upURL := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/v1/slow" {
			// Held until its watch has started, as an upstream still
			// thinking is: the exchange lasts WatchDelay however late the
			// watch's timer runs on a loaded machine.
			if !within(func() bool { return server.WatchesStarted() > slowFrom.Load() }) {
				t.Errorf("the slow exchange's watch did not start within %v", waitLimit)
			}
		}
		ctx.SetBodyString("ok")
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), DefaultRPM: 1000, Upstreams: []string{upURL},
		HealthCheckInterval: noChecks})
	before := server.WatchesStarted()
	const fast = 50
	slow := 0 // fast requests that took WatchDelay or more, end to end
	for i := 0; i < fast; i++ {
		start := time.Now()
		if resp, body := do(t, "GET", g.url+"/v1/models", "Bearer "+keyAlice, ""); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		if time.Since(start) >= server.WatchDelay {
			slow++
		}
	}
	// An exchange is part of its request: one that took less than
	// WatchDelay end to end cannot have started a watch. One that took
	// longer may have, and may leave its timer to fire into the next use
	// of its pooled exchange (harmless), so at most two watches each.
	if n := server.WatchesStarted() - before; n > uint64(2*slow) {
		t.Errorf("%d fast requests, %d of them slower than WatchDelay end to end, started %d client watches, want at most %d",
			fast, slow, n, 2*slow)
	}
	t.Logf("%d of %d fast requests took WatchDelay (%v) or more", slow, fast, server.WatchDelay)
	before = server.WatchesStarted()
	slowFrom.Store(before)
	if resp, body := do(t, "GET", g.url+"/v1/slow", "Bearer "+keyAlice, ""); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("slow request: %d %q", resp.StatusCode, body)
	}
	if n := server.WatchesStarted() - before; n != 1 {
		t.Errorf("a request the upstream held until its watch started started %d client watches, want 1", n)
	}
}

// TestClientGoneMidStream: a client that disconnects during a stream gets
// the upstream connection closed, whether the upstream is sending (its
// writes fail) or silent, as while a model thinks (its read returns); and
// the gateway does not log its leaving as an error.
func TestClientGoneMidStream(t *testing.T) {
	f := func(name string, paced bool) {
		t.Helper()
		ended := make(chan error, 1)
		upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			_, err := io.WriteString(c, sseHead)
			if paced {
				tick := time.NewTicker(20 * time.Millisecond) // the fault's pace: an upstream still sending
				defer tick.Stop()
				for i := 0; i < 1000 && err == nil; i++ {
					if err = writeChunk(c, fmt.Sprintf("data: %d\n\n", i)); err == nil {
						<-tick.C
					}
				}
			} else if err = writeChunk(c, "data: 0\n\n"); err == nil {
				_, err = br.ReadByte() // silent until the connection closes
			}
			select {
			case ended <- err:
			default:
			}
		})
		// The upstream timeout is far away: only the client's leaving can
		// end the stream within waitLimit.
		var logs syncBuffer
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
			HealthCheckInterval: noChecks, UpstreamTimeout: time.Minute,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})

		conn, br := dialGateway(t, g)
		if _, err := io.WriteString(conn, rawRequest("POST", "/v1/chat/completions", "", `{"stream":true}`)); err != nil {
			t.Fatal(err)
		}
		status, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200 ") {
			t.Fatalf("%s: status line %q, %v", name, status, err)
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: no event before %v", name, err)
			}
			if strings.HasPrefix(line, "data: ") {
				break
			}
		}
		conn.Close()
		if err := recv(t, ended, name+": close of the upstream connection after the client left"); err == nil {
			t.Fatalf("%s: the upstream connection was not closed", name)
		}
		// fasthttp logs a connection's error as soon as its handler's body
		// stream fails, which is when the upstream connection closed; no
		// event marks that it has not. So the log is watched for a while:
		// a window that can miss a late line, never fail a correct gateway.
		for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if l := logs.String(); strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
				t.Fatalf("%s: the client's leaving was logged as an error:\n%s", name, l)
			}
		}
	}
	f("upstream sending", true)
	f("upstream silent", false)
}

// TestUpstreamDiesMidStream: an upstream that closes its connection before
// the end of the body makes the client's body end in an error, not cleanly.
func TestUpstreamDiesMidStream(t *testing.T) {
	f := func(name string, head, first string, chunked, reset bool) {
		t.Helper()
		readFirst := make(chan struct{})
		release := closer(readFirst)
		upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, head)
			if chunked {
				writeChunk(c, first)
			} else {
				io.WriteString(c, first)
			}
			<-readFirst
			if reset {
				c.(*net.TCPConn).SetLinger(0)
			}
			c.Close()
		})
		t.Cleanup(release)
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
			HealthCheckInterval: noChecks, UpstreamTimeout: waitLimit})

		resp, err := streamClient.Do(newRequest(t, "POST", g.url+"/v1/chat/completions", `{"stream":true}`))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		piece := make([]byte, len(first))
		if _, err := io.ReadFull(br, piece); err != nil || string(piece) != first {
			t.Fatalf("%s: first piece %.40q, %v", name, piece, err)
		}
		release()
		tail, err := io.ReadAll(br)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: after %d more bytes the body ended with %v, want unexpected EOF", name, len(tail), err)
		}
	}
	f("chunked, FIN", sseHead, "data: first\n\n", true, false)
	f("chunked, RST", sseHead, "data: first\n\n", true, true)
	f("Content-Length 2 MiB, FIN after 64 KiB",
		"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 2097152\r\n\r\n",
		string(randomBytes(64<<10, 9)), false, false)
}

// TestUpstreamStallsMidStream: a stream whose next piece takes longer than
// UpstreamTimeout ends in an error for the client, and the upstream
// connection is closed.
func TestUpstreamStallsMidStream(t *testing.T) {
	closed := make(chan error, 1)
	upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, sseHead)
		writeChunk(c, "data: first\n\n")
		_, err := br.ReadByte() // stalls until the gateway gives up
		closed <- err
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
		HealthCheckInterval: noChecks, UpstreamTimeout: 300 * time.Millisecond})

	resp, err := streamClient.Do(newRequest(t, "POST", g.url+"/v1/chat/completions", `{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	// streamClient's own timeout (waitLimit) would end the body with a
	// timeout error; the gateway must end it first.
	if _, err := io.ReadAll(br); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the stall the body ended with %v, want unexpected EOF from the gateway", err)
	}
	if err := recv(t, closed, "close of the stalled upstream connection"); err == nil {
		t.Fatal("the upstream got more bytes instead of a close")
	}
}

// TestUpstreamTimeoutBeforeHeaders: no response head within UpstreamTimeout
// answers 504 upstream_timeout and closes the upstream connection.
func TestUpstreamTimeoutBeforeHeaders(t *testing.T) {
	upURL, got, closed := hangingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
		HealthCheckInterval: noChecks, UpstreamTimeout: 300 * time.Millisecond})
	resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}")
	if resp.StatusCode != 504 {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if typ, code := apiErrorFields(t, body); typ != "api_error" || code != "upstream_timeout" {
		t.Errorf("type %q code %q, want api_error upstream_timeout", typ, code)
	}
	recv(t, got, "request at the upstream")
	if err := recv(t, closed, "close of the timed-out upstream connection"); err == nil {
		t.Fatal("the upstream got more bytes instead of a close")
	}
}

// TestUpstreamRefused: a refused connection answers 502 upstream_unavailable,
// and so does the next request, to the upstream now marked down.
func TestUpstreamRefused(t *testing.T) {
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{deadURL(t)}, HealthCheckInterval: time.Hour})
	for i := 0; i < 2; i++ {
		resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}")
		if resp.StatusCode != 502 {
			t.Fatalf("request %d: status %d, want 502", i, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type %q", i, ct)
		}
		if typ, code := apiErrorFields(t, body); typ != "api_error" || code != "upstream_unavailable" {
			t.Errorf("request %d: type %q code %q, want api_error upstream_unavailable", i, typ, code)
		}
	}
}

// TestLeastInFlight: while one upstream holds a request, waiting for its
// head or streaming its body, the others get the new ones; with none busy,
// ties are broken at random.
func TestLeastInFlight(t *testing.T) {
	type holdSpec struct {
		release chan struct{}
		stream  bool
	}
	var hold atomic.Pointer[holdSpec]
	held := make(chan string, 1)
	var mu sync.Mutex
	counts := map[string]int{}
	handler := func(name string) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			if string(ctx.UserAgent()) == server.HealthCheckUserAgent {
				return
			}
			h := hold.Swap(nil)
			switch {
			case h == nil:
				mu.Lock()
				counts[name]++
				mu.Unlock()
			case h.stream:
				ctx.SetContentType("text/event-stream")
				ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
					w.WriteString("data: first\n\n")
					w.Flush()
					held <- name
					<-h.release
					w.WriteString("data: [DONE]\n\n")
				})
			default:
				held <- name
				<-h.release
			}
		}
	}
	a, b := startUpstream(t, handler("A")), startUpstream(t, handler("B"))
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), DefaultRPM: 1000, Upstreams: []string{a, b}})

	post := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if resp, _ := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}"); resp.StatusCode != 200 {
				t.Fatalf("request %d: status %d", i, resp.StatusCode)
			}
		}
	}
	f := func(stream bool) {
		t.Helper()
		h := &holdSpec{release: make(chan struct{}), stream: stream}
		release := closer(h.release)
		t.Cleanup(release) // before the upstreams' Shutdown
		hold.Store(h)
		done := postAsync(g.url + "/v1/chat/completions")
		busy := awaitHeld(t, held, done)
		post(10)
		mu.Lock()
		if counts[busy] != 0 || len(counts) != 1 {
			t.Errorf("stream %v: with %s busy, requests went %v; want all 10 to the other", stream, busy, counts)
		}
		clear(counts)
		mu.Unlock()
		release()
		if err := recv(t, done, "end of the held request"); err != nil {
			t.Fatalf("held request: %v", err)
		}
	}
	f(false)
	f(true)

	post(40)
	mu.Lock()
	defer mu.Unlock()
	if counts["A"] == 0 || counts["B"] == 0 || counts["A"]+counts["B"] != 40 {
		t.Errorf("40 requests with none busy went %v; want both to get some", counts)
	}
}

// TestRetryOnConnectFailure: a connection refused by one upstream is retried
// on another, and the refusing one is skipped from then on.
func TestRetryOnConnectFailure(t *testing.T) {
	dead := deadURL(t)
	deadAddr := strings.TrimPrefix(dead, "http://")

	var hold atomic.Bool
	held := make(chan struct{}, 1)
	unblock := make(chan struct{})
	release := closer(unblock)
	up := &seen{}
	handle := up.handler(200, `{"ok":true}`)
	live := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.UserAgent()) != server.HealthCheckUserAgent && hold.CompareAndSwap(true, false) {
			held <- struct{}{}
			<-unblock
		}
		handle(ctx)
	})
	t.Cleanup(release)

	// The start-up check's dial to the dead upstream is held until the end,
	// so that the gateway still believes it healthy when requests start;
	// every later dial to it is a request's.
	checkDialed := make(chan struct{})
	endCheck := make(chan struct{})
	releaseCheck := closer(endCheck)
	var checkSeen atomic.Bool
	var requestDials atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == deadAddr {
			if checkSeen.CompareAndSwap(false, true) {
				close(checkDialed)
				select {
				case <-endCheck:
				case <-ctx.Done():
				}
				return nil, errors.New("start-up check held by the test")
			}
			requestDials.Add(1)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	// TCP checks dial once per check; with this interval there is only the
	// start-up round.
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{dead, live}, UpstreamDial: dial,
		HealthCheckPath: server.HealthCheckTCP, HealthCheckInterval: time.Hour})
	t.Cleanup(releaseCheck) // before the gateway's Close, which waits for the check
	recv(t, checkDialed, "start-up check of the dead upstream")

	// The held request goes to either upstream; if to the live one, the next
	// goes to the dead one (fewer in flight). Either way exactly one request
	// is refused by the dead upstream and retried on the live one.
	hold.Store(true)
	heldDone := postAsync(g.url + "/v1/chat/completions")
	awaitHeld(t, held, heldDone)
	if resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}"); resp.StatusCode != 200 {
		t.Fatalf("second request: status %d %s, want 200, from the live upstream or from the retry on it", resp.StatusCode, body)
	}
	if n := requestDials.Load(); n != 1 {
		t.Fatalf("%d dials to the dead upstream, want 1", n)
	}
	release()
	if err := recv(t, heldDone, "end of the held request"); err != nil {
		t.Fatalf("held request: %v", err)
	}

	for i := 0; i < 20; i++ {
		if resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}"); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d %s", i, resp.StatusCode, body)
		}
		if resp, _ := do(t, "GET", g.url+"/readyz", "", ""); resp.StatusCode != 200 {
			t.Fatalf("after request %d: /readyz %d", i, resp.StatusCode)
		}
	}
	if n := requestDials.Load(); n != 1 {
		t.Errorf("the dead upstream was dialled %d times, want once: marked down by its refusal", n)
	}
	if n := up.count(); n != 22 {
		t.Errorf("the live upstream saw %d requests, want 22", n)
	}
	releaseCheck()
	lines := g.logLines(t)
	if len(lines) != 22 {
		t.Errorf("%d log lines, want 22", len(lines))
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, " | alice | POST /v1/chat/completions | 200") {
			t.Errorf("log line %d: %q", i, l)
		}
	}
}

// TestSentRequestIsNotRetried: once a request was sent, a failure answers
// 502; it is not sent again to another upstream.
func TestSentRequestIsNotRetried(t *testing.T) {
	var reached atomic.Int32
	hangUp := func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err == nil {
			reached.Add(1)
		} // then close without answering
	}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t),
		Upstreams:           []string{startRawUpstream(t, hangUp), startRawUpstream(t, hangUp)},
		HealthCheckInterval: noChecks})
	resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, `{"model":"m"}`)
	if resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if _, code := apiErrorFields(t, body); code != "upstream_unavailable" {
		t.Errorf("code %q", code)
	}
	if n := reached.Load(); n != 1 {
		t.Fatalf("the request reached upstreams %d times, want exactly 1", n)
	}
}

// TestHealthCheckHTTP: an upstream answering its health check with 500 gets
// no traffic until the check passes again.
func TestHealthCheckHTTP(t *testing.T) {
	var sick atomic.Bool
	up := &seen{}
	handle := up.handler(200, "{}")
	upURL := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.UserAgent()) == server.HealthCheckUserAgent && sick.Load() {
			ctx.SetStatusCode(500)
			return
		}
		handle(ctx)
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: 100 * time.Millisecond})
	readyz := func() int {
		resp, _ := do(t, "GET", g.url+"/readyz", "", "")
		return resp.StatusCode
	}
	post := func() (int, string) {
		resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}")
		return resp.StatusCode, body
	}
	if s, _ := post(); s != 200 || readyz() != 200 {
		t.Fatalf("healthy: status %d, /readyz %d", s, readyz())
	}

	sick.Store(true)
	eventually(t, "/readyz 503 with the only upstream failing its checks", func() bool { return readyz() == 503 })
	before := up.count()
	s, body := post()
	if s != 502 {
		t.Fatalf("with no healthy upstream: status %d, want 502", s)
	}
	if _, code := apiErrorFields(t, body); code != "upstream_unavailable" {
		t.Errorf("code %q", code)
	}
	if up.count() != before {
		t.Fatal("a request reached the upstream while it was out of rotation")
	}

	sick.Store(false)
	eventually(t, "/readyz 200 once the check passes again", func() bool { return readyz() == 200 })
	if s, _ := post(); s != 200 || up.count() != before+1 {
		t.Fatalf("recovered: status %d, upstream saw %d requests, want %d", s, up.count(), before+1)
	}
}

// TestHealthCheckTCP: with HealthCheckTCP a live upstream, checked by
// connecting only, stays in rotation; a dead one leaves it.
func TestHealthCheckTCP(t *testing.T) {
	conns := make(chan struct{}, 64)
	var httpChecks atomic.Int32
	up := &seen{}
	handle := up.handler(200, "{}")
	upURL := startServer(t, &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if string(ctx.UserAgent()) == server.HealthCheckUserAgent {
				httpChecks.Add(1)
			}
			handle(ctx)
		},
		ConnState: func(_ net.Conn, s fasthttp.ConnState) {
			if s == fasthttp.StateNew {
				select {
				case conns <- struct{}{}:
				default:
				}
			}
		},
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
		HealthCheckPath: server.HealthCheckTCP, HealthCheckInterval: 100 * time.Millisecond})
	for i := 0; i < 3; i++ {
		recv(t, conns, fmt.Sprintf("TCP health check %d", i+1))
	}
	if resp, _ := do(t, "GET", g.url+"/readyz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("/readyz %d after 3 passed checks", resp.StatusCode)
	}
	if resp, _ := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}"); resp.StatusCode != 200 || up.count() != 1 {
		t.Fatalf("status %d, upstream saw %d requests", resp.StatusCode, up.count())
	}
	if n := httpChecks.Load(); n != 0 {
		t.Errorf("TCP checks sent %d HTTP requests", n)
	}

	dead := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{deadURL(t)},
		HealthCheckPath: server.HealthCheckTCP, HealthCheckInterval: 100 * time.Millisecond})
	eventually(t, "/readyz 503 with a dead upstream under TCP checks", func() bool {
		resp, _ := do(t, "GET", dead.url+"/readyz", "", "")
		return resp.StatusCode == 503
	})
}

// TestCloseStopsHealthChecks: Close while a health check hangs lets that
// check end but starts no new round. Each gateway runs in a synctest
// bubble, its upstream an in-memory connection that reads the check and
// never answers: Close comes halfway through the start-up check, which
// then times out (its timeout is the interval) at the very instant the
// interval's tick is due, with the stop pending too. A checker that does
// not look for the stop first goes on with probability 1/2 each time; 16
// gateways miss that with probability 2^-16. (On the wall clock, a
// loaded machine could stall past the first check's timeout before
// Close, and a legitimate second round looked like a late one.)
func TestCloseStopsHealthChecks(t *testing.T) {
	const interval = 100 * time.Millisecond
	for i := 0; i < 16; i++ {
		synctest.Test(t, func(t *testing.T) {
			// At the end, pass or fail: fasthttp's cleaner of idle
			// connections looks every 10 s while its client has any; let
			// it see none and end, as the bubble requires.
			defer time.Sleep(time.Minute)
			var checks atomic.Int32
			dial := func(context.Context, string, string) (net.Conn, error) {
				conn, up := net.Pipe()
				go func() {
					defer up.Close()
					br := bufio.NewReader(up)
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					checks.Add(1)
					io.Copy(io.Discard, br) // no answer, until the gateway closes the connection
				}()
				return conn, nil
			}
			g, err := server.New(server.Config{KeysFile: defaultKeys(t), Upstreams: []string{"http://upstream.test"},
				UpstreamDial: dial, HealthCheckInterval: interval, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(interval / 2)
			synctest.Wait()
			if n := checks.Load(); n != 1 {
				t.Fatalf("gateway %d: %d health checks halfway through the first, want 1", i, n)
			}
			if err := g.Close(); err != nil { // returns when the check has timed out
				t.Fatal(err)
			}
			synctest.Wait()
			if n := checks.Load(); n != 1 {
				t.Fatalf("gateway %d: %d health checks, want the start-up one only: a round started after Close", i, n)
			}
		})
	}
}

// TestCloseReleasesHealthCheckConns: after Close no connection the health
// checker opened stays open to the upstream.
func TestCloseReleasesHealthCheckConns(t *testing.T) {
	var mu sync.Mutex
	open := map[net.Conn]bool{} // connections that carried a health check
	checked := make(chan struct{}, 1)
	upURL := startServer(t, &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if string(ctx.UserAgent()) == server.HealthCheckUserAgent {
				mu.Lock()
				open[ctx.Conn()] = true
				mu.Unlock()
				select {
				case checked <- struct{}{}:
				default:
				}
			}
		},
		ConnState: func(c net.Conn, s fasthttp.ConnState) {
			if s == fasthttp.StateClosed {
				mu.Lock()
				delete(open, c)
				mu.Unlock()
			}
		},
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
		HealthCheckInterval: 100 * time.Millisecond})
	recv(t, checked, "health check")
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "health-check connections closed after Close", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(open) == 0
	})
}

// TestBodiesByteExact: large request and response bodies pass unchanged,
// streamed (above 1 MiB) or buffered, with their Content-Length.
func TestBodiesByteExact(t *testing.T) {
	upload := randomBytes(8<<20, 1)
	wantSum := sha256.Sum256(upload)
	big, small := randomBytes(4<<20, 2), randomBytes(100<<10, 3)
	upURL := startServer(t, &fasthttp.Server{
		MaxRequestBodySize: 16 << 20,
		Handler: func(ctx *fasthttp.RequestCtx) {
			switch string(ctx.Path()) {
			case "/v1/files":
				if b := ctx.PostBody(); sha256.Sum256(b) != wantSum {
					ctx.SetStatusCode(400)
					ctx.SetBodyString(fmt.Sprintf("the upstream got %d bytes that differ from the %d sent", len(b), len(upload)))
					return
				}
				ctx.SetBodyString("same")
			case "/big":
				ctx.SetBody(big)
			case "/small":
				ctx.SetBody(small)
			}
		},
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}})

	if resp, body := do(t, "POST", g.url+"/v1/files", "Bearer "+keyAlice, string(upload)); resp.StatusCode != 200 || body != "same" {
		t.Fatalf("8 MiB upload: status %d: %s", resp.StatusCode, body)
	}
	f := func(path string, want []byte) {
		t.Helper()
		resp, body := do(t, "GET", g.url+path, "Bearer "+keyAlice, "")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(want)) {
			t.Errorf("%s: Content-Length %q, want %d", path, got, len(want))
		}
		if body != string(want) {
			t.Errorf("%s: got %d bytes that differ from the upstream's %d", path, len(body), len(want))
		}
	}
	f("/big", big)
	f("/small", small)
}

// TestForwardedProto: X-Forwarded-Proto is the scheme the gateway served
// (http here), whatever a client sent; a trusted proxy's own is kept, and
// set when it sent none.
func TestForwardedProto(t *testing.T) {
	up := &seen{}
	upURL := startUpstream(t, up.handler(200, "{}"))
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}})
	behind := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	f := func(g *gateway, sent, want string) {
		t.Helper()
		req := newRequest(t, "GET", g.url+"/v1/models", "")
		if sent != "" {
			req.Header.Set("X-Forwarded-Proto", sent)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := string(up.last(t).Header.Peek("X-Forwarded-Proto")); got != want {
			t.Errorf("client sent %q: upstream got X-Forwarded-Proto %q, want %q", sent, got, want)
		}
	}
	f(g, "", "http")
	f(g, "https", "http")
	f(behind, "", "http")
	f(behind, "https", "https")
}

// TestResponseHopByHop: the upstream's hop-by-hop response headers, those
// named in its Connection header included, do not reach the client, and its
// Connection: close does not close the client's connection.
func TestResponseHopByHop(t *testing.T) {
	upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n"+
			"Connection: close, X-Hop\r\n"+
			"X-Hop: 1\r\n"+
			"Keep-Alive: timeout=5\r\n"+
			"X-Kept: 1\r\n"+
			"Content-Type: application/json\r\n"+
			"Content-Length: 2\r\n\r\n{}")
	}) // and closes the connection, as announced
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks})

	conn, br := dialGateway(t, g)
	for i := 1; i <= 2; i++ {
		if _, err := io.WriteString(conn, rawRequest("GET", "/v1/models", "", "")); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		var resp fasthttp.Response
		if err := resp.Read(br); err != nil {
			t.Fatalf("request %d on the same client connection: %v", i, err)
		}
		if resp.StatusCode() != 200 || string(resp.Body()) != "{}" {
			t.Fatalf("request %d: status %d body %q", i, resp.StatusCode(), resp.Body())
		}
		if got := string(resp.Header.Peek("X-Kept")); got != "1" {
			t.Errorf("request %d: X-Kept %q, want 1", i, got)
		}
		for _, h := range []string{"X-Hop", "Keep-Alive"} {
			if got := resp.Header.Peek(h); got != nil {
				t.Errorf("request %d: hop-by-hop %s: %q reached the client", i, h, got)
			}
		}
		if resp.ConnectionClose() {
			t.Errorf("request %d: the upstream's Connection: close reached the client", i)
		}
	}
}

// TestResponseWithoutContentType: a response the upstream sent without a
// Content-Type reaches the client without one, not with a default the
// gateway made up.
func TestResponseWithoutContentType(t *testing.T) {
	upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd")
		}
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks})
	resp, body := do(t, "GET", g.url+"/v1/files/x/content", "Bearer "+keyAlice, "")
	if resp.StatusCode != 200 || body != "abcd" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if ct, ok := resp.Header["Content-Type"]; ok {
		t.Errorf("Content-Type %q reached the client; the upstream sent none", ct)
	}
}

// TestUpstreamHTTP10: an upstream speaking HTTP/1.0, its event stream
// delimited by closing the connection, still gives an HTTP/1.1 client an
// HTTP/1.1 response streamed event by event; so does an HTTP/1.1 upstream
// whose stream is delimited the same way.
func TestUpstreamHTTP10(t *testing.T) {
	f := func(proto string) {
		t.Helper()
		readFirst := make(chan struct{})
		release := closer(readFirst)
		upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, proto+" 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: first\n\n")
			<-readFirst
			io.WriteString(c, "data: [DONE]\n\n")
		}) // then closes the connection: the end of the body
		t.Cleanup(release)
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
			HealthCheckInterval: noChecks, UpstreamTimeout: waitLimit})

		resp, err := streamClient.Do(newRequest(t, "POST", g.url+"/v1/chat/completions", `{"stream":true}`))
		if err != nil {
			t.Fatalf("%s upstream: %v", proto, err)
		}
		defer resp.Body.Close()
		if resp.Proto != "HTTP/1.1" {
			t.Errorf("%s upstream: the client got an %s response", proto, resp.Proto)
		}
		br := bufio.NewReader(resp.Body)
		first := make([]byte, len("data: first\n\n"))
		if _, err := io.ReadFull(br, first); err != nil || string(first) != "data: first\n\n" {
			t.Fatalf("%s upstream: first event %q, %v", proto, first, err)
		}
		release()
		if rest, err := io.ReadAll(br); err != nil || string(rest) != "data: [DONE]\n\n" {
			t.Fatalf("%s upstream: rest %q, %v; want the last event and a clean end", proto, rest, err)
		}
	}
	f("HTTP/1.1")
	f("HTTP/1.0")
}

// TestUpstreamKeepAlive: sequential requests reuse upstream connections,
// after buffered, chunked and large streamed responses alike.
func TestUpstreamKeepAlive(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]map[uint64]bool{}
	big := randomBytes(2<<20, 4)
	const sse = "data: 0\n\ndata: 1\n\ndata: 2\n\n"
	upURL := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.UserAgent()) == server.HealthCheckUserAgent {
			return
		}
		path := string(ctx.Path())
		mu.Lock()
		if conns[path] == nil {
			conns[path] = map[uint64]bool{}
		}
		conns[path][ctx.ConnID()] = true
		mu.Unlock()
		switch path {
		case "/v1/models":
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"data":[]}`)
		case "/v1/chat/completions":
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				for _, ev := range strings.SplitAfter(sse, "\n\n")[:3] {
					w.WriteString(ev)
					w.Flush()
				}
			})
		case "/v1/files/big":
			ctx.SetBody(big)
		}
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), DefaultRPM: 1000, Upstreams: []string{upURL}})
	f := func(method, path, want string) {
		t.Helper()
		for i := 0; i < 20; i++ {
			resp, body := do(t, method, g.url+path, "Bearer "+keyAlice, "")
			if resp.StatusCode != 200 || body != want {
				t.Fatalf("%s %s #%d: status %d, %d bytes", method, path, i, resp.StatusCode, len(body))
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if n := len(conns[path]); n > 2 {
			t.Errorf("20 sequential %s %s used %d upstream connections, want at most 2", method, path, n)
		}
	}
	f("GET", "/v1/models", `{"data":[]}`)
	f("POST", "/v1/chat/completions", sse)
	f("GET", "/v1/files/big", string(big))
}

// TestHeadRequest: a HEAD response keeps its Content-Length, carries no
// body, and leaves the client's connection usable; so does a HEAD request
// answered by the gateway itself when the upstream cannot be reached.
func TestHeadRequest(t *testing.T) {
	methods := make(chan string, 8)
	upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			methods <- req.Method
			if req.Method == "HEAD" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1234\r\n\r\n")
			} else {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"data\":[]}")
			}
		}
	})
	// f sends a HEAD request, then GET path on the same connection: any
	// body byte after the HEAD response would be read as the next response.
	f := func(name, upURL string, wantStatus, wantLength int, path, wantBody string) {
		t.Helper()
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
			HealthCheckInterval: noChecks, UpstreamTimeout: waitLimit})
		conn, br := dialGateway(t, g)
		if _, err := io.WriteString(conn, rawRequest("HEAD", "/v1/models", "", "")); err != nil {
			t.Fatal(err)
		}
		var head fasthttp.Response
		head.SkipBody = true
		if err := head.Read(br); err != nil {
			t.Fatalf("%s: HEAD: %v", name, err)
		}
		if head.StatusCode() != wantStatus {
			t.Fatalf("%s: HEAD status %d, want %d", name, head.StatusCode(), wantStatus)
		}
		if wantLength >= 0 && head.Header.ContentLength() != wantLength {
			t.Errorf("%s: HEAD Content-Length %d, want %d", name, head.Header.ContentLength(), wantLength)
		}
		if _, err := io.WriteString(conn, rawRequest("GET", path, "", "")); err != nil {
			t.Fatal(err)
		}
		var resp fasthttp.Response
		if err := resp.Read(br); err != nil {
			t.Fatalf("%s: GET %s after HEAD on the same connection: %v", name, path, err)
		}
		if resp.StatusCode() != 200 || string(resp.Body()) != wantBody {
			t.Fatalf("%s: GET %s after HEAD: status %d body %q", name, path, resp.StatusCode(), resp.Body())
		}
	}
	f("upstream answers", upURL, 200, 1234, "/v1/models", `{"data":[]}`)
	if m := recv(t, methods, "HEAD at the upstream"); m != "HEAD" {
		t.Fatalf("the upstream got %s, want HEAD", m)
	}
	f("upstream refuses", deadURL(t), 502, -1, "/healthz", "ok")
}

// TestUpstreamAnswersBeforeBody: an upstream that answers before it has
// the whole body (a 413 on the head, say), then drains the body and keeps
// the connection: the answer reaches the client once the body is sent,
// not at UpstreamTimeout: the answer arrives while the gateway is still
// sending.
func TestUpstreamAnswersBeforeBody(t *testing.T) {
	answered := make(chan struct{}, 1)
	upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
		waitDelivered(t, c) // the answer is readable at the gateway's socket
		answered <- struct{}{}
		io.Copy(io.Discard, req.Body)
		br.Peek(1) // keeps the connection open, answering nothing more
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
		HealthCheckInterval: noChecks, UpstreamTimeout: 4 * waitLimit})

	c, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const half = 20000
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", keyAlice, 2*half)
	c.Write(bytes.Repeat([]byte("a"), half))
	recv(t, answered, "the upstream's early answer")
	c.Write(bytes.Repeat([]byte("b"), half))

	// The read deadline, a quarter of UpstreamTimeout, tells an answer
	// passed on from one held until the timeout.
	c.SetReadDeadline(time.Now().Add(waitLimit))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%v; want the upstream's 413 before UpstreamTimeout", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status %d; want the upstream's 413", resp.StatusCode)
	}
}

// TestUpstreamHeaderLimit: an upstream response head of up to 8 KiB is
// passed on; a larger one answers 502 upstream_unavailable
// (docs/http.md#upstream-errors), as nginx's proxy_buffer_size does.
func TestUpstreamHeaderLimit(t *testing.T) {
	f := func(valueBytes, want int) {
		t.Helper()
		upURL := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.Set("X-Big", strings.Repeat("v", valueBytes))
			ctx.SetBodyString("{}")
		})
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks})
		resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}")
		if resp.StatusCode != want {
			t.Fatalf("a head with a %d-byte header: status %d, want %d: %s", valueBytes, resp.StatusCode, want, body)
		}
		if want == 502 {
			if _, code := apiErrorFields(t, body); code != "upstream_unavailable" {
				t.Errorf("code %q", code)
			}
		}
	}
	f(7<<10, 200)
	f(9<<10, 502)
}
