package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/authgate/authgate/auth"
)

const (
	testKey     = "sk-test-0123456789abcdef"
	testKeyHigh = "sk-high-0123456789abcdef"
)

// testKeysSpread are keys of distinct key_ids with rpm=1000000.
var testKeysSpread = []string{
	"sk-spread-0-0123456789abcdef", "sk-spread-1-0123456789abcdef",
	"sk-spread-2-0123456789abcdef", "sk-spread-3-0123456789abcdef",
}

// newTestGateway returns a gateway whose upstream is a fixed-200 fasthttp
// handler on an in-memory listener, with an access log in a temp dir when
// withLog is set. testKey has rpm=1; testKeyHigh rpm=1000000.
func newTestGateway(tb testing.TB, withLog bool) *Gateway {
	tb.Helper()
	return newTestGatewayWith(tb, withLog, nil)
}

// newTestGatewayWith is newTestGateway with edit applied to its Config
// (nil: none).
func newTestGatewayWith(tb testing.TB, withLog bool, edit func(*Config)) *Gateway {
	tb.Helper()
	ln := fasthttputil.NewInmemoryListener()
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"ok":true}`)
	}}
	go up.Serve(ln)
	tb.Cleanup(func() { ln.Close() })

	entries := []auth.Entry{
		entry(tb, 1, "low", testKey, 1),
		entry(tb, 2, "high", testKeyHigh, 1_000_000),
	}
	for i, k := range testKeysSpread {
		entries = append(entries, entry(tb, 3+i, fmt.Sprintf("spread%d", i), k, 1_000_000))
	}
	keys, warns := auth.NewKeySet(entries)
	if len(warns) > 0 {
		tb.Fatal(warns)
	}
	cfg := Config{
		Keys:      keys,
		Upstreams: []string{"http://upstream.test"},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		UpstreamDial: func(context.Context, string, string) (net.Conn, error) {
			return ln.Dial()
		},
	}
	if withLog {
		cfg.AccessLog = filepath.Join(tb.TempDir(), "access.log")
	}
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	return g
}

func entry(tb testing.TB, line int, keyID, key string, rpm int) auth.Entry {
	e, ok, err := auth.ParseLine([]byte(keyID+":"+key), line)
	if !ok || err != nil {
		tb.Fatalf("entry %q: %v", keyID, err)
	}
	e.Settings.RPM = rpm
	return e
}

// newCtx returns a request context for POST /v1/chat/completions from
// 127.0.0.1 with the given Authorization header.
func newCtx(authz string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/chat/completions")
	req.Header.SetHost("gateway.test")
	req.Header.SetContentType("application/json")
	req.SetBodyString(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	return ctx
}

// serveOnce runs the handler on ctx as a fresh request: it restores the
// headers the proxy consumes and clears the response.
func serveOnce(g *Gateway, ctx *fasthttp.RequestCtx, authz []byte) int {
	ctx.Response.Reset()
	if authz != nil {
		ctx.Request.Header.SetBytesKV(strAuthorization, authz)
	}
	ctx.Request.Header.Del("X-Forwarded-For")
	g.Handler(ctx)
	return ctx.Response.StatusCode()
}
