package server_test

// Hostile clients and faults: malformed bytes, oversized heads and bodies,
// slow clients (slowloris, readers that never read), connection limits and
// floods of guessed keys. Each test runs a real gateway on loopback and
// speaks raw TCP to it where the bytes matter.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/server"
)

// exchangeRaw sends raw on a new connection to g and reads one response.
// closed reports whether the gateway then closes the connection (EOF or
// reset within waitLimit) rather than keeping it open for another request.
func exchangeRaw(t *testing.T, g *gateway, raw string) (resp *http.Response, body string, closed func() bool) {
	t.Helper()
	conn, br := dialGateway(t, g)
	// In a goroutine: the gateway may answer and close before reading all
	// of raw (a head over the limit), and then this write fails.
	go conn.Write([]byte(raw))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%.40q…: no response: %v", raw, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%.40q…: body: %v", raw, err)
	}
	return resp, string(b), func() bool { return connClosed(conn, br) }
}

// connClosed reports whether the peer closed conn (EOF or reset) within
// waitLimit, with nothing more to read.
func connClosed(conn net.Conn, br *bufio.Reader) bool {
	conn.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// metricsOf returns g's metrics samples, "name{labels}" → value.
func metricsOf(g *gateway) map[string]float64 {
	var buf bytes.Buffer
	g.WriteMetrics(&buf)
	out := map[string]float64{}
	for _, line := range strings.Split(buf.String(), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// inFlight returns the requests g has sent upstream and not finished.
func inFlight(g *gateway) float64 {
	var n float64
	for k, v := range metricsOf(g) {
		if strings.HasPrefix(k, "authgate_upstream_in_flight{") {
			n += v
		}
	}
	return n
}

// TestHostileBadBytes: malformed request lines and headers answer 400,
// heads over MaxHeaderBytes 431, bodies over MaxRequestBody 413, each in
// OpenAI's error shape with an X-Request-Id, logged under key_id "-" (but
// a chunked body's, read only once its key is checked), and the
// connection is closed; none reaches the upstream. Every request
// carries a valid key, so a malformed one that slipped through would be
// proxied (200) instead.
func TestHostileBadBytes(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}, MaxRequestBody: 1024})
	const key = "Authorization: Bearer " + keyAlice + "\r\n"
	var statuses []int  // of each request, for the log
	var keyIDs []string // of each request, for the log: "-" but for a chunked body, read only once its key is checked
	// what the log shows of each request: "- -" when fasthttp could not
	// parse (and so reset) its head
	var methodPaths []string
	f := func(name, raw string, wantStatus int, wantCode string) {
		t.Helper()
		resp, body, closed := exchangeRaw(t, g, raw)
		if resp.StatusCode != wantStatus {
			t.Errorf("%s: status %d, want %d; body %s", name, resp.StatusCode, wantStatus, body)
			return
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
		if typ, code := apiErrorFields(t, body); typ != "invalid_request_error" || code != wantCode {
			t.Errorf("%s: type %q code %q, want invalid_request_error %q", name, typ, code, wantCode)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", name)
		}
		if !closed() {
			t.Errorf("%s: connection left open after a request that could not be read", name)
		}
		statuses = append(statuses, wantStatus)
		keyIDs = append(keyIDs, "-")
		methodPaths = append(methodPaths, "- -")
	}
	const host = "Host: gateway.test\r\n"
	parsed := func() { methodPaths[len(methodPaths)-1] = "POST /v1/embeddings" }

	// Malformed: 400.
	f("garbage", "GARBAGE\r\n\r\n", 400, "bad_request")
	f("no version", "GET /v1/models\r\n"+host+key+"\r\n", 400, "bad_request")
	f("unknown protocol", "GET /v1/models FOO/1.1\r\n"+host+key+"\r\n", 400, "bad_request")
	f("bad method token", "G@T /v1/models HTTP/1.1\r\n"+host+key+"\r\n", 400, "bad_request")
	f("space in path", "GET /v1/mo dels HTTP/1.1\r\n"+host+key+"\r\n", 400, "bad_request")
	f("two spaces", "GET  /v1/models HTTP/1.1\r\n"+host+key+"\r\n", 400, "bad_request")
	f("bad absolute URI", "GET http://[::1/v1/models HTTP/1.1\r\n"+host+key+"\r\n", 400, "bad_request")
	methodPaths[len(methodPaths)-1] = "GET http://[::1/v1/models" // the head parsed, the URI did not
	f("header without colon", "GET /v1/models HTTP/1.1\r\n"+host+key+"NoColon\r\n\r\n", 400, "bad_request")
	f("space before colon", "GET /v1/models HTTP/1.1\r\n"+host+key+"X-A : b\r\n\r\n", 400, "bad_request")
	f("NUL in a name", "GET /v1/models HTTP/1.1\r\n"+host+key+"X-A\x00: b\r\n\r\n", 400, "bad_request")
	f("NUL in a value", "GET /v1/models HTTP/1.1\r\n"+host+key+"X-A: b\x00c\r\n\r\n", 400, "bad_request")
	f("bare CR", "GET /v1/models HTTP/1.1\r\n"+host+key+"X-A: b\rX-B: c\r\n\r\n", 400, "bad_request")
	f("HTTP/1.1 without Host", "GET /v1/models HTTP/1.1\r\n"+key+"\r\n", 400, "bad_request")
	f("two Hosts", "GET /v1/models HTTP/1.1\r\n"+host+"Host: other.test\r\n"+key+"\r\n", 400, "bad_request")
	f("two Content-Lengths", "POST /v1/embeddings HTTP/1.1\r\n"+host+key+"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "bad_request")
	f("Content-Length not a number", "POST /v1/embeddings HTTP/1.1\r\n"+host+key+"Content-Length: abc\r\n\r\n", 400, "bad_request")
	f("negative Content-Length", "POST /v1/embeddings HTTP/1.1\r\n"+host+key+"Content-Length: -1\r\n\r\n", 400, "bad_request")
	f("bad chunk size", "POST /v1/embeddings HTTP/1.1\r\n"+host+key+"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, "bad_request")
	keyIDs[len(keyIDs)-1] = "alice"
	parsed()
	f("unsupported transfer coding", "POST /v1/embeddings HTTP/1.1\r\n"+host+key+"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, "bad_request")

	// Too large: 431 for the head (the default limit, 16 KiB), 413 for the
	// body.
	f("one long header", "GET /v1/models HTTP/1.1\r\n"+host+key+"X-Big: "+strings.Repeat("a", 20<<10)+"\r\n\r\n", 431, "request_header_too_large")
	f("many headers", "GET /v1/models HTTP/1.1\r\n"+host+key+strings.Repeat("X-Many: aaaaaaaaaaaaaaaaaaaaaaaa\r\n", 1000)+"\r\n", 431, "request_header_too_large")
	f("long request line", "GET /v1/models?q="+strings.Repeat("a", 20<<10)+" HTTP/1.1\r\n"+host+key+"\r\n", 431, "request_header_too_large")
	// Answered as soon as the head is read: the body is never sent here,
	// so a gateway that waited for it would time the test out.
	f("declared body too large", "POST /v1/embeddings HTTP/1.1\r\n"+host+key+"Content-Length: 1000000000\r\n\r\n", 413, "request_too_large")
	parsed()
	// Not "100 Continue" first, which would invite the gigabyte.
	f("declared body too large, Expect: 100-continue", "POST /v1/embeddings HTTP/1.1\r\n"+host+key+"Content-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n", 413, "request_too_large")
	parsed()
	f("chunked body too large", "POST /v1/embeddings HTTP/1.1\r\n"+host+key+"Transfer-Encoding: chunked\r\n\r\n800\r\n"+strings.Repeat("a", 2048)+"\r\n0\r\n\r\n", 413, "request_too_large")
	keyIDs[len(keyIDs)-1] = "alice"
	parsed()

	// Lines ending in a bare LF: fasthttp takes a head to be complete only
	// once a CRLFCRLF is in, and would wait for one until READ_TIMEOUT
	// (60 s, then 408); the first request of a connection is answered 400
	// at once.
	lf := strings.ReplaceAll
	f("bare LF head", lf("GET /v1/models HTTP/1.1\r\n"+host+key+"\r\n", "\r\n", "\n"), 400, "bad_request")
	f("bare LF blank line", "GET /v1/models HTTP/1.1\r\n"+host+key+"\n", 400, "bad_request")
	f("bare LF then CRLF", "GET /v1/models HTTP/1.1\r\n"+host+lf(key, "\r\n", "\n")+"\r\n", 400, "bad_request")

	if n := up.count(); n != 0 {
		t.Errorf("%d malformed requests reached the upstream", n)
	}
	lines := g.logLines(t)
	if len(lines) != len(statuses) {
		t.Fatalf("%d log lines for %d requests:\n%s", len(lines), len(statuses), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		if want := fmt.Sprintf(" | %s | %s | %d", keyIDs[i], methodPaths[i], statuses[i]); !strings.HasSuffix(l, want) {
			t.Errorf("log line %d %q, want it to end in %q", i, l, want)
		}
	}
}

// TestHostileHeaderLimit: a head of exactly MaxHeaderBytes passes and one
// byte more answers 431, at the default (16 KiB) and at a configured limit.
func TestHostileHeaderLimit(t *testing.T) {
	// An upstream that reads heads of any size here.
	upURL := startServer(t, &fasthttp.Server{Handler: (&seen{}).handler(200, "{}"), ReadBufferSize: 1 << 20})
	// head returns a request head of exactly n bytes.
	head := func(n int) string {
		h := "GET /v1/models HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer " + keyAlice + "\r\nX-Pad: "
		return h + strings.Repeat("p", n-len(h)-4) + "\r\n\r\n"
	}
	f := func(limit, cfgLimit int) {
		t.Helper()
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, MaxHeaderBytes: cfgLimit})
		if resp, body, _ := exchangeRaw(t, g, head(limit)); resp.StatusCode != 200 {
			t.Errorf("limit %d: a head of %d bytes: status %d %s, want 200", limit, limit, resp.StatusCode, body)
		}
		if resp, body, _ := exchangeRaw(t, g, head(limit+1)); resp.StatusCode != 431 {
			t.Errorf("limit %d: a head of %d bytes: status %d %s, want 431", limit, limit+1, resp.StatusCode, body)
		}
	}
	f(server.DefaultMaxHeaderBytes, 0)
	f(4<<10, 4<<10)
	f(64<<10, 64<<10)
}

// TestHostileContentLengthWithChunked: a request with both Content-Length
// and Transfer-Encoding: chunked (a request-smuggling attempt) is read as
// chunked, reaches the upstream as one request with the chunked body, and
// its connection is closed after the response (RFC 9112 section 6.3), so
// that bytes the Content-Length would have claimed cannot start a request.
func TestHostileContentLengthWithChunked(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	smuggled := "GET /admin HTTP/1.1\r\nHost: gateway.test\r\n\r\n"
	raw := "POST /v1/embeddings HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer " + keyAlice + "\r\n" +
		"Content-Length: " + strconv.Itoa(len("3\r\nabc\r\n0\r\n\r\n")+len(smuggled)) + "\r\n" +
		"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + smuggled
	resp, body, closed := exchangeRaw(t, g, raw)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	if !closed() {
		t.Error("connection kept open after a request with both Content-Length and Transfer-Encoding")
	}
	if n := up.count(); n != 1 {
		t.Fatalf("%d requests reached the upstream, want 1", n)
	}
	req := up.last(t)
	if string(req.Body()) != "abc" || string(req.URI().Path()) != "/v1/embeddings" {
		t.Errorf("upstream got %s %q", req.URI().Path(), req.Body())
	}
	// The body is streamed on as it was read: chunked (one framing only).
	if cl, te := req.Header.ContentLength(), req.Header.Peek("Transfer-Encoding"); cl != -1 || string(te) != "chunked" {
		t.Errorf("upstream got Content-Length %d, Transfer-Encoding %q; want chunked", cl, te)
	}
}

// TestHostileObsoleteLineFolding: a header continued on the next line
// (obs-fold, RFC 9112 section 5.2) reaches the upstream unfolded, its lines
// joined by a space, never as a line of its own that could be read as
// another header.
func TestHostileObsoleteLineFolding(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	raw := "GET /v1/models HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer " + keyAlice + "\r\n" +
		"X-A: b\r\n X-Injected: 1\r\n\r\n"
	if resp, body, _ := exchangeRaw(t, g, raw); resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	req := up.last(t)
	if v := string(req.Header.Peek("X-A")); v != "b X-Injected: 1" {
		t.Errorf("X-A reached the upstream as %q", v)
	}
	if v := req.Header.Peek("X-Injected"); v != nil {
		t.Errorf("a continuation line reached the upstream as a header: X-Injected: %q", v)
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// bigUpstream serves GET /big as a body of size zero bytes (with its
// Content-Length, so the gateway streams it) and anything else as a small
// JSON body.
func bigUpstream(t *testing.T, size int) string {
	t.Helper()
	return startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/big" {
			ctx.SetContentType("application/octet-stream")
			ctx.SetBodyStream(io.LimitReader(zeros{}, int64(size)), size)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"object":"list","data":[]}`)
	})
}

// dialNonReader opens a connection to addr with a small receive buffer,
// sends a GET of path with alice's key, and never reads the response. It is
// closed at the end of the test.
func dialNonReader(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(rawRequest("GET", path, "", ""))); err != nil {
		t.Fatal(err)
	}
	return c
}

// getFresh GETs url with alice's key on a new connection and reads the
// whole response; it returns the status and the time taken, dial included.
func getFresh(t *testing.T, url string) (int, time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	req := newRequest(t, "GET", url, "")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, d
}

// TestHostileSlowClients: 1,500 slowloris connections dribbling a request
// line or headers one byte every 300 ms, and 8 connections that asked for a
// 64 MiB body and never read it, do not keep a normal client from its 200
// (each of several requests, each on a new connection, between two rounds
// of dribbling) while every one of them is still held open. The slowloris
// connections, still dribbling, are then answered 408 and closed by
// ReadTimeout, which counts from a connection's opening, whatever trickles
// in. The normal requests' latencies are logged, not asserted: a loaded
// machine stretches them.
func TestHostileSlowClients(t *testing.T) {
	const (
		slowloris   = 1500
		nonReaders  = 8
		normal      = 10
		readTimeout = 10 * time.Second
	)
	g := startGateway(t, server.Config{
		KeysFile:    defaultKeys(t),
		Upstreams:   []string{bigUpstream(t, 64<<20)},
		ReadTimeout: readTimeout,
		DefaultRPM:  1000,
	})
	addr := strings.TrimPrefix(g.url, "http://")

	start := time.Now()
	conns := make([]net.Conn, slowloris)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slowloris connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
		head := "GET /v1/models HTTP/1.1\r\nHost: gateway.test\r\nX-Slow: " // headers
		if i%2 == 0 {
			head = "GET /v1/mod" // the request line
		}
		if _, err := c.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
	}
	opened := time.Since(start)
	stop, dribbled := make(chan struct{}), make(chan struct{})
	round := make(chan struct{}, 1) // a round of dribbling has ended
	go func() {
		defer close(dribbled)
		tick := time.NewTicker(300 * time.Millisecond) // the attack's pace
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, c := range conns {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				c.Write([]byte("a")) // fails once the gateway has closed it
			}
			select {
			case round <- struct{}{}:
			default:
			}
		}
	}()
	defer func() { close(stop); <-dribbled }()

	for range nonReaders {
		dialNonReader(t, addr, "/big")
	}
	eventually(t, "the non-readers' streams in flight", func() bool { return inFlight(g) == nonReaders })
	hostile := float64(slowloris + nonReaders)
	eventually(t, "every hostile connection open", func() bool {
		return metricsOf(g)["authgate_connections_open"] >= hostile
	})

	var lat []time.Duration
	recv(t, round, "a round of dribbling") // the attack is under way
	for range normal {
		status, d := getFresh(t, g.url+"/v1/models")
		if status != 200 {
			t.Fatalf("normal client: status %d", status)
		}
		lat = append(lat, d)
	}
	// The hostile connections were all held while the normal client was
	// served.
	m := metricsOf(g)
	if open := m["authgate_connections_open"]; open < hostile {
		t.Fatalf("only %v connections open after the normal requests, want at least %v (setup took %v)", open, hostile, opened)
	}
	if n := inFlight(g); n != nonReaders {
		t.Fatalf("%v streams in flight after the normal requests, want %d", n, nonReaders)
	}
	sorted := append([]time.Duration(nil), lat...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	t.Logf("normal client beside %d slowloris and %d non-reading connections (opened in %v): latencies %v; median %v, max %v",
		slowloris, nonReaders, opened.Round(time.Millisecond), lat, sorted[len(sorted)/2], sorted[len(sorted)-1])

	// Still dribbling, every slowloris connection is answered 408 and closed
	// by the read timeout.
	for i, c := range conns {
		c.SetReadDeadline(start.Add(readTimeout + 30*time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("slowloris connection %d: no 408 by %v after it opened: %v", i, time.Since(start), err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 408 || !connClosed(c, br) {
			t.Fatalf("slowloris connection %d: status %d, want 408 and a close", i, resp.StatusCode)
		}
	}
	closedAfter := time.Since(start)
	if closedAfter < readTimeout {
		t.Fatalf("slowloris connections closed %v after opening, before the read timeout (%v)", closedAfter, readTimeout)
	}
	t.Logf("all slowloris connections answered 408 and closed %v after the first opened (ReadTimeout %v)", closedAfter.Round(time.Millisecond), readTimeout)
	eventually(t, "the slowloris connections gone", func() bool {
		return metricsOf(g)["authgate_connections_open"] < hostile-slowloris+normal
	})
}

// TestSlowReaderCutByWriteTimeout: a client that asked for a large streamed
// body and stops reading is disconnected once a write to it has waited
// WriteTimeout, and its upstream request ends with it; a client that reads
// gets the same body whole, however long it takes in total.
func TestSlowReaderCutByWriteTimeout(t *testing.T) {
	const size = 64 << 20
	g := startGateway(t, server.Config{
		KeysFile:     defaultKeys(t),
		Upstreams:    []string{bigUpstream(t, size)},
		WriteTimeout: 500 * time.Millisecond,
	})
	addr := strings.TrimPrefix(g.url, "http://")

	c := dialNonReader(t, addr, "/big")
	eventually(t, "the stream in flight", func() bool { return inFlight(g) == 1 })
	eventually(t, "the stream cut", func() bool { return inFlight(g) == 0 })
	// What the client can still read stops short of the body: the gateway
	// closed the connection.
	c.SetReadDeadline(time.Now().Add(waitLimit))
	n, err := io.Copy(io.Discard, c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the cut stream: %v", err)
	}
	if n >= size {
		t.Fatalf("the non-reader got %d bytes, the whole body", n)
	}

	resp, err := (&http.Client{Timeout: time.Minute}).Do(newRequest(t, "GET", g.url+"/big", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err = io.Copy(io.Discard, resp.Body)
	if err != nil || n != size {
		t.Fatalf("a reading client got %d of %d bytes: %v", n, size, err)
	}
}

// TestWriteTimeoutSparesLongStream: WriteTimeout bounds each write to the
// client, not the response: a server-sent-events stream whose events come
// further apart than WriteTimeout, and which lasts many times it, reaches
// the client whole.
func TestWriteTimeoutSparesLongStream(t *testing.T) {
	const (
		writeTimeout = 200 * time.Millisecond
		gap          = 3 * writeTimeout
		events       = 4
	)
	upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, sseHead)
		for i := range events {
			time.Sleep(gap) // the fault: an upstream silent for longer than WriteTimeout
			if writeChunk(c, fmt.Sprintf("data: %d\n\n", i)) != nil {
				return
			}
		}
		time.Sleep(gap) // the end of the body comes late too
		io.WriteString(c, "0\r\n\r\n")
	})
	g := startGateway(t, server.Config{
		KeysFile:            defaultKeys(t),
		Upstreams:           []string{upURL},
		HealthCheckInterval: noChecks,
		WriteTimeout:        writeTimeout,
	})
	start := time.Now()
	resp, err := (&http.Client{Timeout: time.Minute}).Do(newRequest(t, "POST", g.url+"/v1/chat/completions", `{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("stream cut after %v (WriteTimeout %v): %v; got %q", time.Since(start), writeTimeout, err, body)
	}
	var want strings.Builder
	for i := range events {
		fmt.Fprintf(&want, "data: %d\n\n", i)
	}
	if string(body) != want.String() {
		t.Fatalf("body %q, want %q", body, want.String())
	}
	if d := time.Since(start); d < (events+1)*gap {
		t.Fatalf("stream took %v, less than the upstream's %v: its pauses were not waited for", d, (events+1)*gap)
	}
}

// TestHostileConnectionLimits: beyond MaxConns a new connection is answered
// 503 and closed, and counted; beyond MaxConnsPerIP, 429, while another
// address is still served; a connection that closes makes room again. Both
// refusals are OpenAI-shaped JSON, sent whole before the close, even to a
// client that has sent its request before reading.
func TestHostileConnectionLimits(t *testing.T) {
	upURL := startUpstream(t, (&seen{}).handler(200, "{}"))
	// rejected dials addr from local (nil: any) and reports the status the
	// gateway answers before closing, or 0 if it serves the connection; a
	// refusal's body must be JSON with the error code wantCode.
	const wantCode = `"code":"too_many_connections"`
	rejected := func(addr string, local net.IP) int {
		t.Helper()
		d := net.Dialer{}
		if local != nil {
			d.LocalAddr = &net.TCPAddr{IP: local}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(rawRequest("GET", "/healthz", "", ""))); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(waitLimit))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("status %d, body %q: %v", resp.StatusCode, body, err)
		}
		if resp.StatusCode == 200 {
			return 0
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !json.Valid(body) || !strings.Contains(string(body), wantCode) {
			t.Errorf("refusal %d: Content-Type %q, body %q; want JSON with %s", resp.StatusCode, ct, body, wantCode)
		}
		if !connClosed(c, br) {
			t.Errorf("connection refused with %d left open", resp.StatusCode)
		}
		return resp.StatusCode
	}
	// hold opens n idle connections to addr from 127.0.0.1.
	hold := func(addr string, n int) []net.Conn {
		t.Helper()
		var cs []net.Conn
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			cs = append(cs, c)
		}
		return cs
	}

	t.Run("MaxConns", func(t *testing.T) {
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, MaxConns: 20})
		addr := strings.TrimPrefix(g.url, "http://")
		held := hold(addr, 20)
		eventually(t, "20 connections open", func() bool { return metricsOf(g)["authgate_connections_open"] == 20 })
		if s := rejected(addr, nil); s != 503 {
			t.Fatalf("connection 21 of MaxConns=20: status %d, want 503", s)
		}
		if n := metricsOf(g)["authgate_connections_rejected_total"]; n != 1 {
			t.Errorf("authgate_connections_rejected_total = %v, want 1", n)
		}
		held[0].Close()
		eventually(t, "a connection served after one closed", func() bool { return rejected(addr, nil) == 0 })
	})
	t.Run("MaxConnsPerIP", func(t *testing.T) {
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, MaxConnsPerIP: 3})
		addr := strings.TrimPrefix(g.url, "http://")
		held := hold(addr, 3)
		eventually(t, "3 connections open", func() bool { return metricsOf(g)["authgate_connections_open"] == 3 })
		if s := rejected(addr, nil); s != 429 {
			t.Fatalf("connection 4 from one address with MaxConnsPerIP=3: status %d, want 429", s)
		}
		if n := metricsOf(g)["authgate_connections_rejected_total"]; n != 1 {
			t.Errorf("authgate_connections_rejected_total = %v, want 1", n)
		}
		// Refused connections hold no count: many of them, then the
		// held ones closed, leave room for three again.
		for range 20 {
			if s := rejected(addr, nil); s != 429 {
				t.Fatalf("connection over MaxConnsPerIP=3: status %d, want 429", s)
			}
		}
		if s := rejected(addr, net.IPv4(127, 0, 0, 2)); s != 0 {
			t.Fatalf("a connection from another address: status %d, want it served", s)
		}
		for _, c := range held {
			c.Close()
		}
		eventually(t, "a connection served after the held ones closed", func() bool { return rejected(addr, nil) == 0 })
		hold(addr, 2)
		eventually(t, "2 connections open", func() bool { return metricsOf(g)["authgate_connections_open"] == 2 })
		if s := rejected(addr, nil); s != 0 {
			t.Fatalf("connection 3 with 2 held and MaxConnsPerIP=3: status %d, want it served", s)
		}
	})
}

// guessKey appends to dst the i-th guessed key: well-formed (100 of
// [A-Za-z0-9_-]) and distinct, so that a gateway keeping anything per
// unknown key would keep 50,000 different ones.
func guessKey(dst []byte, i int) []byte {
	end := len(dst) + 100
	dst = append(dst, "sk-guess-"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	for len(dst) < end {
		dst = append(dst, 'x')
	}
	return dst
}

// heapInUse returns the heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC() // the second frees what the first's finalizers and sync.Pool victims kept
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestGuessKeysBoundedMemory: 50,000 distinct well-formed unknown keys,
// sent over keep-alive connections (pipelined), each answered 401 "Invalid
// API key", leave the process's heap (gateway and test client share it)
// within a few MB of where it was, and are counted by reason in
// authgate_unauthorized_total, like the other three reasons, and logged.
func TestGuessKeysBoundedMemory(t *testing.T) {
	const (
		warmup    = 5_000
		guesses   = 50_000
		conns     = 8
		batch     = 50 // requests pipelined before reading their responses
		maxGrowth = 4 << 20
	)
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	type client struct {
		conn net.Conn
		br   *bufio.Reader
		req  []byte
		resp fasthttp.Response
	}
	cs := make([]*client, conns)
	for i := range cs {
		conn, br := dialGateway(t, g)
		conn.SetDeadline(time.Time{})
		cs[i] = &client{conn: conn, br: br}
	}
	// send sends the guesses numbered [from, to), spread over the
	// connections, and checks every answer.
	send := func(from, to int) {
		t.Helper()
		errs := make(chan error, conns)
		for ci, c := range cs {
			go func() {
				errs <- func() error {
					for i := from + ci*batch; i < to; i += conns * batch {
						end := min(i+batch, to)
						c.req = c.req[:0]
						for k := i; k < end; k++ {
							c.req = append(c.req, "GET /v1/models HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer "...)
							c.req = guessKey(c.req, k)
							c.req = append(c.req, "\r\n\r\n"...)
						}
						c.conn.SetDeadline(time.Now().Add(time.Minute))
						if _, err := c.conn.Write(c.req); err != nil {
							return err
						}
						for k := i; k < end; k++ {
							if err := c.resp.Read(c.br); err != nil {
								return fmt.Errorf("guess %d: %w", k, err)
							}
							if c.resp.StatusCode() != 401 || !bytes.Contains(c.resp.Body(), []byte(`"Invalid API key"`)) {
								return fmt.Errorf("guess %d: %d %s", k, c.resp.StatusCode(), c.resp.Body())
							}
						}
					}
					return nil
				}()
			}()
		}
		for range conns {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	logged := func(n uint64) {
		t.Helper()
		eventually(t, "every line written", func() bool { return g.AccessLogStats().Written == n })
	}

	send(0, warmup)
	logged(warmup)
	before := heapInUse()
	start := time.Now()
	send(warmup, warmup+guesses)
	took := time.Since(start)
	logged(warmup + guesses)
	after := heapInUse()
	growth := int64(after) - int64(before)
	t.Logf("%d unknown keys in %v over %d connections; heap in use %.1f MiB before, %.1f MiB after: %+.2f MiB",
		guesses, took.Round(time.Millisecond), conns, float64(before)/(1<<20), float64(after)/(1<<20), float64(growth)/(1<<20))
	if growth > maxGrowth {
		t.Errorf("heap grew by %.1f MiB for %d unknown keys, over %d MiB", float64(growth)/(1<<20), guesses, maxGrowth>>20)
	}

	// The other reasons, and a real key still served.
	for range 3 {
		do(t, "GET", g.url+"/v1/models", "", "")
	}
	for range 4 {
		do(t, "GET", g.url+"/v1/models", "Bearer   ", "")
	}
	for range 5 {
		do(t, "GET", g.url+"/v1/models", "Bearer short", "")
	}
	if resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyAlice, ""); resp.StatusCode != 200 {
		t.Errorf("a real key after the flood: status %d", resp.StatusCode)
	}
	m := metricsOf(g)
	for reason, want := range map[string]float64{"unknown": warmup + guesses, "missing": 3, "empty": 4, "bad_format": 5} {
		if got := m[`authgate_unauthorized_total{reason="`+reason+`"}`]; got != want {
			t.Errorf("authgate_unauthorized_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got, want := m[`authgate_requests_total{key_id="-",code="401"}`], float64(warmup+guesses+3+4+5); got != want {
		t.Errorf(`authgate_requests_total{key_id="-",code="401"} = %v, want %v`, got, want)
	}
	if n := up.count(); n != 1 {
		t.Errorf("%d requests reached the upstream, want 1", n)
	}
}
