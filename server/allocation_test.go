//go:build !race

package server

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/valyala/fasthttp"

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
