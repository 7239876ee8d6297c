//go:build !race

package proxy

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// TestAllocationServeModel: resolving a model (an alias too) and serving
// it through its pool allocates nothing, as Serve does not.
func TestAllocationServeModel(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"ok":true}`)
	}}
	go up.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	p, err := New(Config{
		Upstreams: []string{"http://a.test models=m1|m2", "http://b.test models=m1|m2", "http://c.test models=m3"},
		Aliases:   map[string]string{"gpt-4o": "m3"},
		Timeout:   10 * time.Second,
		Dial:      func(context.Context, string, string) (net.Conn, error) { return ln.Dial() },
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	t.Cleanup(p.Close)

	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/chat/completions")
	req.Header.SetHost("gateway.test")
	req.SetBodyString(`{"model":"m1","messages":[]}`)
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	f := func(name string, serve func() string, wantUpstream string) {
		t.Helper()
		run := func() {
			ctx.Response.Reset()
			ctx.Request.Header.Del("X-Forwarded-For")
			if got := serve(); ctx.Response.StatusCode() != 200 || (wantUpstream != "" && got != wantUpstream) {
				t.Fatalf("%s: status %d from %q, want 200 from %q", name, ctx.Response.StatusCode(), got, wantUpstream)
			}
		}
		run()
		if n := testing.AllocsPerRun(200, run); n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, n)
		}
	}
	model, alias := []byte("m1"), []byte("gpt-4o")
	f("Serve", func() string { name, _ := p.Serve(ctx); return name }, "")
	f("ServeModel", func() string {
		_, served, _ := p.Resolve(model)
		name, _ := p.ServeModel(ctx, served)
		return name
	}, "")
	f("ServeModel alias", func() string {
		_, served, _ := p.Resolve(alias)
		name, _ := p.ServeModel(ctx, served)
		return name
	}, "http://c.test")
}
