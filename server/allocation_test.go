//go:build !race

package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/logsink"
)

// TestAllocationsPerRequest asserts that the reject, rate-limit and
// admit-and-proxy paths allocate nothing per request, access log included.
func TestAllocationsPerRequest(t *testing.T) {
	g := newTestGateway(t, true)
	f := func(name, authz string, wantStatus int) {
		t.Helper()
		ctx := newCtx(authz)
		a := []byte(authz)
		if len(a) == 0 {
			a = nil
		}
		serveOnce(g, ctx, a) // warm-up: pools, account, limiter ring
		serveOnce(g, ctx, a)
		n := testing.AllocsPerRun(200, func() {
			if s := serveOnce(g, ctx, a); s != wantStatus {
				t.Fatalf("%s: status %d, want %d", name, s, wantStatus)
			}
			// AllocsPerRun runs on one P: let the access log's writer
			// goroutine take its turn, as it would on another core.
			runtime.Gosched()
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, n)
		}
	}
	f("missing key", "", 401)
	f("bad format", "Bearer short", 401)
	f("unknown key", "Bearer sk-unknown-0123456789abcdef", 401)
	f("rate limited", "Bearer "+testKey, 429)
	f("admitted and proxied", "Bearer "+testKeyHigh, 200)

	// A streamed body, as the gateway's server gives it (StreamRequestBody),
	// of the size fasthttp pre-reads whole: refused with nothing unread, or
	// passed to the upstream through the proxy's body reader.
	body := bytes.Repeat([]byte("x"), preReadMax)
	var r bytes.Reader
	fs := func(name, authz string, wantStatus int) {
		t.Helper()
		ctx := newCtx(authz)
		a := []byte(authz)
		run := func() int {
			r.Reset(body)
			ctx.Request.SetBodyStream(&r, len(body))
			return serveOnce(g, ctx, a)
		}
		run()
		run()
		n := testing.AllocsPerRun(200, func() {
			if s := run(); s != wantStatus {
				t.Fatalf("%s: status %d, want %d", name, s, wantStatus)
			}
			if ctx.Response.ConnectionClose() || ctx.Hijacked() {
				t.Fatalf("%s: the connection is closed, with nothing left unread", name)
			}
			runtime.Gosched()
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, n)
		}
	}
	fs("unknown key, streamed body", "Bearer sk-unknown-0123456789abcdef", 401)
	fs("admitted and proxied, streamed body", "Bearer "+testKeyHigh, 200)
}

// TestAllocationsForwardedHeaders asserts that the forwarding headers
// allocate nothing per proxied request, several lines of them included:
// a trusted proxy's, joined in the order received and extended, with the
// client behind it found for the access log, and an untrusted client's,
// replaced.
func TestAllocationsForwardedHeaders(t *testing.T) {
	var client netip.Addr
	body := `{"model":"m"}`
	raw := []byte("POST /v1/chat/completions HTTP/1.1\r\nHost: gateway.test\r\n" +
		"Authorization: Bearer " + testKeyHigh + "\r\n" +
		"X-Forwarded-For: 192.0.2.1, 203.0.113.5\r\nX-Forwarded-For: 10.0.0.7\r\n" +
		"Forwarded: for=203.0.113.5\r\nForwarded: for=10.0.0.7\r\n" +
		"X-Forwarded-Proto: https\r\nX-Real-IP: 203.0.113.5\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	var r bytes.Reader
	br := bufio.NewReader(&r)
	f := func(name string, trusted []netip.Prefix, wantXFF, wantClient string) {
		t.Helper()
		g := newTestGatewayWith(t, false, func(c *Config) { c.TrustedProxies = trusted })
		g.accessLog = AccessLogFunc(func(e *logsink.Entry) { client = e.Client })
		ctx := newCtx("")
		run := func() int {
			r.Reset(raw)
			br.Reset(&r)
			if err := ctx.Request.Read(br); err != nil {
				t.Fatal(err)
			}
			ctx.Response.Reset()
			g.Handler(ctx)
			return ctx.Response.StatusCode()
		}
		run()
		if got := string(ctx.Request.Header.Peek("X-Forwarded-For")); got != wantXFF || client.String() != wantClient {
			t.Fatalf("%s: X-Forwarded-For %q, client %v; want %q, %s", name, got, client, wantXFF, wantClient)
		}
		run()
		n := testing.AllocsPerRun(200, func() {
			if s := run(); s != 200 {
				t.Fatalf("%s: status %d", name, s)
			}
			runtime.Gosched()
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, n)
		}
	}
	f("trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")},
		"192.0.2.1, 203.0.113.5, 10.0.0.7, 127.0.0.1", "203.0.113.5")
	f("untrusted client", nil, "127.0.0.1", "127.0.0.1")
}

// TestAllocationsWrap asserts that Wrap adds no allocation per request on
// its admit, reject and limit paths, KeyID and KeySettings included, with
// the file sink and with an AccessLogger.
func TestAllocationsWrap(t *testing.T) {
	var seen int
	next := func(ctx *fasthttp.RequestCtx) {
		if KeyID(ctx) != "" && KeySettings(ctx).RPM > 0 {
			seen++
		}
		ctx.Response.SetBodyRaw(strOK)
	}
	f := func(name string, g *Gateway, authz string, wantStatus int) {
		t.Helper()
		h := g.Wrap(next)
		ctx := newCtx(authz)
		run := func() int {
			ctx.Response.Reset()
			ctx.Request.Header.DelBytes(strXRequestID)
			h(ctx)
			return ctx.Response.StatusCode()
		}
		run()
		run()
		n := testing.AllocsPerRun(200, func() {
			if s := run(); s != wantStatus {
				t.Fatalf("%s: status %d, want %d", name, s, wantStatus)
			}
			runtime.Gosched()
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, n)
		}
	}
	file := newTestGateway(t, true)
	f("file log: unknown key", file, "Bearer sk-unknown-0123456789abcdef", 401)
	f("file log: rate limited", file, "Bearer "+testKey, 429)
	f("file log: admitted", file, "Bearer "+testKeyHigh, 200)

	var lines int
	fn := newTestGateway(t, false)
	fn.accessLog = AccessLogFunc(func(e *logsink.Entry) { lines += len(e.RequestID) })
	f("AccessLogger: unknown key", fn, "Bearer sk-unknown-0123456789abcdef", 401)
	f("AccessLogger: admitted", fn, "Bearer "+testKeyHigh, 200)
	if seen == 0 || lines == 0 {
		t.Fatalf("next saw the key_id %d times; %d request-id bytes logged", seen, lines)
	}
}

// TestAllocationsWatchedExchange asserts that an exchange long enough to
// have its client watched (proxy.WatchDelay) allocates once per request: an
// inference request, which lasts that long as a rule, on a real loopback
// connection, as the gateway serves it (a watch needs a socket). The one
// allocation is net's: the *net.OpError that net.(*rawConn).Read returns
// when clientWatch.stop wakes the watch with a deadline in the past, the
// only way to end a wait in the poller short of closing the socket. The
// upstream is a fasthttp server on an in-memory listener that answers each
// request once its exchange's watch has started (however late its timer
// runs on a loaded machine); the client is a TCP connection and one fixed
// buffer. A GET, so that fasthttp's own allocation for a request body
// (TestAllocationsPerRequest's streamed-body cases) is not counted.
func TestAllocationsWatchedExchange(t *testing.T) {
	upLn := fasthttputil.NewInmemoryListener()
	var answered atomic.Uint64
	before := proxy.WatchesStarted()
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		// The exchanges come one at a time: the n-th is watched once n
		// watches have started. A poll, not an event: nothing else tells.
		n := answered.Add(1)
		for deadline := time.Now().Add(10 * time.Second); proxy.WatchesStarted()-before < n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"object":"list","data":[]}`)
	}}
	go up.Serve(upLn)
	t.Cleanup(func() { upLn.Close() })
	keys, warns := auth.NewKeySet([]auth.Entry{entry(t, 1, "high", testKeyHigh, 1_000_000)})
	if len(warns) > 0 {
		t.Fatal(warns)
	}
	g, err := New(Config{
		Keys:                keys,
		Upstreams:           []string{"http://upstream.test"},
		HealthCheckInterval: -1,
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		AccessLog:           filepath.Join(t.TempDir(), "access.log"),
		UpstreamDial: func(context.Context, string, string) (net.Conn, error) {
			return upLn.Dial()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := []byte("GET /v1/models HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer " + testKeyHigh + "\r\n\r\n")
	body := []byte(`{"object":"list","data":[]}`)
	buf := make([]byte, 8<<10)
	roundTrip := func() {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			m, err := c.Read(buf[n:])
			n += m
			if err != nil {
				t.Fatalf("after %q: %v", buf[:n], err)
			}
			if bytes.HasSuffix(buf[:n], body) {
				break
			}
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 ")) {
			t.Fatalf("response %q", buf[:n])
		}
	}
	roundTrip() // warm-up: pools, account, limiter ring
	roundTrip()
	const runs = 5
	// AllocsPerRun counts the whole process's allocations, over the
	// 150 ms the runs take: goroutines an earlier test left behind may
	// allocate meanwhile. The least of three measurements is the
	// exchange's own.
	n := testing.AllocsPerRun(runs, roundTrip)
	for range 2 {
		n = min(n, testing.AllocsPerRun(runs, roundTrip))
	}
	if started := proxy.WatchesStarted() - before; started < runs+2 {
		t.Fatalf("%d watches started in %d requests: the exchanges were not watched", started, runs+3)
	}
	if n > 1 {
		t.Errorf("%v allocations per watched request, want at most 1 (net's)", n)
	}
}

// TestAllocationsRouted asserts that a request routed by model between two
// pools allocates nothing, JSON access log (with the model) included: its
// body read for its model under the inspection budget, the model resolved
// (an alias too, its body rewritten into a buffer of the request's) and
// counted, and the request proxied to the model's pool.
func TestAllocationsRouted(t *testing.T) {
	g := newTestGatewayWith(t, true, func(c *Config) {
		c.Upstreams = []string{"http://upstream.test models=gpt-4o-mini", "http://other.test models=other-model"}
		c.ModelAliases = map[string]string{"mini": "gpt-4o-mini"}
		c.AccessLogFormat = logsink.FormatJSON
	})
	for _, model := range []string{"gpt-4o-mini", "mini"} {
		body := []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"Say hello."}]}`)
		ctx := newCtx("Bearer " + testKeyHigh)
		a := []byte("Bearer " + testKeyHigh)
		var r bytes.Reader
		run := func() int {
			r.Reset(body)
			ctx.Request.Header.SetMethod(fasthttp.MethodPost)
			ctx.Request.Header.SetContentTypeBytes(strContentTypeJSON)
			ctx.Request.SetBodyStream(&r, len(body))
			return serveOnce(g, ctx, a)
		}
		run()
		run()
		n := testing.AllocsPerRun(200, func() {
			if s := run(); s != 200 {
				t.Fatalf("%s: status %d, want 200", model, s)
			}
			runtime.Gosched()
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", model, n)
		}
	}
}
