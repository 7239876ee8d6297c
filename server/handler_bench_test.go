package server

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// benchDecision measures the auth → limit decision alone: header parse,
// digest lookup, account, limiter.
func BenchmarkDecision(b *testing.B) {
	g := newTestGateway(b, false)
	run := func(b *testing.B, authz string) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ctx := newCtx(authz)
			for pb.Next() {
				g.decideKey(ctx.Request.Header.PeekBytes(strAuthorization), time.Now(), 0)
			}
		})
	}
	b.Run("admit", func(b *testing.B) { run(b, "Bearer "+testKeyHigh) })
	// One key_id per goroutine: no shared limiter state, so this is the
	// figure that should scale with cores.
	b.Run("admit-key-per-goroutine", func(b *testing.B) {
		var next atomic.Int32
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			key := testKeysSpread[int(next.Add(1)-1)%len(testKeysSpread)]
			ctx := newCtx("Bearer " + key)
			for pb.Next() {
				g.decideKey(ctx.Request.Header.PeekBytes(strAuthorization), time.Now(), 0)
			}
		})
	})
	b.Run("limited", func(b *testing.B) { run(b, "Bearer "+testKey) })
	b.Run("unknown", func(b *testing.B) { run(b, "Bearer sk-unknown-0123456789abcdef") })
}

// BenchmarkHandler runs the whole handler on a reused RequestCtx, beside a
// bare handler writing the same 401 (the baseline).
func BenchmarkHandler(b *testing.B) {
	bare := func(ctx *fasthttp.RequestCtx) {
		ctx.Response.SetStatusCode(401)
		ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
		ctx.Response.SetBodyRaw(body401[4])
	}
	run := func(b *testing.B, withLog bool, authz string, want int, h func(*Gateway, *fasthttp.RequestCtx, []byte) int) {
		g := newTestGateway(b, withLog)
		h(g, newCtx(authz), []byte(authz)) // warm-up; uses up rpm=1 keys
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ctx := newCtx(authz)
			a := []byte(authz)
			for pb.Next() {
				if s := h(g, ctx, a); s != want {
					b.Fatalf("status %d, want %d", s, want)
				}
			}
		})
	}
	gw := serveOnce
	baseline := func(_ *Gateway, ctx *fasthttp.RequestCtx, _ []byte) int {
		ctx.Response.Reset()
		bare(ctx)
		return ctx.Response.StatusCode()
	}
	b.Run("bare-401", func(b *testing.B) { run(b, false, "", 401, baseline) })
	b.Run("reject-401", func(b *testing.B) { run(b, false, "Bearer sk-unknown-0123456789abcdef", 401, gw) })
	b.Run("reject-401-log", func(b *testing.B) { run(b, true, "Bearer sk-unknown-0123456789abcdef", 401, gw) })
	b.Run("limited-429", func(b *testing.B) { run(b, false, "Bearer "+testKey, 429, gw) })
	b.Run("proxy-200", func(b *testing.B) { run(b, false, "Bearer "+testKeyHigh, 200, gw) })
	b.Run("proxy-200-log", func(b *testing.B) { run(b, true, "Bearer "+testKeyHigh, 200, gw) })
}
