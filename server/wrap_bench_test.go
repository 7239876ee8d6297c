package server

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/authgate/authgate/internal/accounts"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

var strTinyBody = []byte(`{"ok":true}`)

// refiller empties the limiter windows of a benchmark's gateway once a
// key_id has used up its 1,000,000 requests a minute, which the fast paths
// here do within a second: it drops every account and publishes the same
// keys in a new snapshot, whose requests get fresh accounts. The refused
// request that triggers it is not counted as an error; it happens once per
// million, and the new account's ring (8 MB) is the few B/op reported.
type refiller struct {
	mu sync.Mutex
	g  *Gateway
}

// check returns whether status is acceptable, refilling on a 429.
func (r *refiller) check(status int) bool {
	switch status {
	case 200:
		return true
	case 429:
		r.mu.Lock()
		r.g.accounts.Each(func(a *accounts.Account) { r.g.accounts.Delete(a.KeyID) })
		r.g.keys.Store(accounts.NewSnapshot(r.g.keys.Load().Keys, r.g.cfg.DefaultRPM))
		r.mu.Unlock()
		return true
	}
	return false
}

// BenchmarkWrap runs a fasthttp handler writing a tiny 200 bare (the
// baseline) and behind Gateway.Wrap, on the admit path, with and without
// the access log, on a reused RequestCtx.
func BenchmarkWrap(b *testing.B) {
	next := func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
		ctx.Response.SetBodyRaw(strTinyBody)
	}
	run := func(b *testing.B, withLog bool, h func(g *Gateway) fasthttp.RequestHandler) {
		g := newTestGateway(b, withLog)
		r := &refiller{g: g}
		handler := h(g)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ctx := newCtx("Bearer " + testKeyHigh)
			for pb.Next() {
				ctx.Response.Reset()
				ctx.Request.Header.DelBytes(strXRequestID)
				handler(ctx)
				if s := ctx.Response.StatusCode(); !r.check(s) {
					b.Fatalf("status %d", s)
				}
			}
		})
	}
	b.Run("bare", func(b *testing.B) { run(b, false, func(*Gateway) fasthttp.RequestHandler { return next }) })
	b.Run("wrap", func(b *testing.B) { run(b, false, func(g *Gateway) fasthttp.RequestHandler { return g.Wrap(next) }) })
	b.Run("wrap-log", func(b *testing.B) { run(b, true, func(g *Gateway) fasthttp.RequestHandler { return g.Wrap(next) }) })
}

// discardWriter is a reusable http.ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) Flush()                      {}

// BenchmarkWrapHTTP runs a net/http handler writing a tiny 200 bare (the
// baseline), behind Gateway.WrapHTTP (native), and behind Gateway.Wrap
// through fasthttpadaptor (the alternative WrapHTTP does not take), on the
// admit path without an access log.
func BenchmarkWrapHTTP(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = hdrContentTypeJSON
		w.WriteHeader(http.StatusOK)
		w.Write(strTinyBody)
	})
	runHTTP := func(b *testing.B, h func(g *Gateway) http.Handler) {
		g := newTestGateway(b, false)
		rf := &refiller{g: g}
		handler := h(g)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
			r.Header.Set("Authorization", "Bearer "+testKeyHigh)
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				clear(w.h)
				delete(r.Header, hdrXRequestID)
				w.status = 0
				handler.ServeHTTP(w, r)
				if !rf.check(w.status) {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
	b.Run("bare", func(b *testing.B) { runHTTP(b, func(*Gateway) http.Handler { return next }) })
	b.Run("native", func(b *testing.B) { runHTTP(b, func(g *Gateway) http.Handler { return g.WrapHTTP(next) }) })
	b.Run("fasthttpadaptor", func(b *testing.B) {
		g := newTestGateway(b, false)
		r := &refiller{g: g}
		handler := g.Wrap(fasthttpadaptor.NewFastHTTPHandler(next))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ctx := newCtx("Bearer " + testKeyHigh)
			for pb.Next() {
				ctx.Response.Reset()
				ctx.Request.Header.DelBytes(strXRequestID)
				handler(ctx)
				if s := ctx.Response.StatusCode(); !r.check(s) {
					b.Fatalf("status %d", s)
				}
			}
		})
	})
}
