package server_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/server"
)

// exampleKeys builds an in-memory key set from keys-file lines.
func exampleKeys(lines ...string) *auth.KeySet {
	var entries []auth.Entry
	for i, line := range lines {
		e, ok, err := auth.ParseLine([]byte(line), i+1)
		if err != nil || !ok {
			panic(fmt.Sprintf("line %d: %v", i+1, err))
		}
		entries = append(entries, e)
	}
	keys, warnings := auth.NewKeySet(entries)
	if len(warnings) > 0 {
		panic(warnings[0])
	}
	return keys
}

// printLog is an access log that prints what a deterministic example can
// show (no time, no request id).
var printLog = server.AccessLogFunc(func(e *logsink.Entry) {
	fmt.Printf("log: %s %s %s %d\n", e.KeyID, e.Method, e.Path, e.Status)
})

// Wrap puts authentication, the per-key limit and the access log in front
// of any fasthttp handler. A gateway used only this way needs no upstream.
func ExampleGateway_Wrap() {
	g, err := server.New(server.Config{
		Keys:         exampleKeys("alice:sk-alice-0123456789abcdef rpm=10"),
		AccessLogger: printLog,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	defer g.Close() // after the server has stopped: flushes the access log

	app := func(ctx *fasthttp.RequestCtx) {
		fmt.Printf("app: serving %s\n", server.KeyID(ctx))
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"object":"list","data":[]}`)
	}
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: g.Wrap(app)}
	go srv.Serve(ln)
	defer srv.Shutdown()

	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	for _, authz := range []string{"Bearer sk-alice-0123456789abcdef", "Bearer sk-wrong-0123456789abcdef"} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gateway.test/v1/models")
		req.Header.Set("Authorization", authz)
		if err := client.Do(req, resp); err != nil {
			panic(err)
		}
		if resp.StatusCode() == fasthttp.StatusOK {
			fmt.Printf("client: 200, %s requests left\n", resp.Header.Peek("x-ratelimit-remaining-requests"))
		} else {
			fmt.Printf("client: %d %s\n", resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	// Output:
	// app: serving alice
	// log: alice GET /v1/models 200
	// client: 200, 9 requests left
	// log: - GET /v1/models 401
	// client: 401 {"error":{"message":"Invalid API key","type":"invalid_request_error","param":"authorization","code":"invalid_api_key"}}
}

// WrapHTTP is the same middleware for net/http handlers; the key_id is in
// the request's context.
func ExampleGateway_WrapHTTP() {
	g, err := server.New(server.Config{
		Keys:         exampleKeys("bob:sk-bob-0123456789abcdefgh rpm=1"),
		AccessLogger: printLog,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	defer g.Close()

	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", server.KeyIDFromContext(r.Context()))
	})
	srv := httptest.NewServer(g.WrapHTTP(app))
	defer srv.Close()

	for range 2 { // bob's limit is 1 request a minute
		req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer sk-bob-0123456789abcdefgh")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("client: %d %s", resp.StatusCode, body)
	}
	// Output:
	// log: bob POST /v1/chat/completions 200
	// client: 200 hello bob
	// log: bob POST /v1/chat/completions 429
	// client: 429 {"error":{"message":"Rate limit exceeded for bob","type":"rate_limit_error","code":"rate_limit_exceeded"}}
}

// A wrapped handler reads the authenticated key_id and its settings from
// the request; outside a gateway KeyID returns "".
func ExampleKeyID() {
	g, err := server.New(server.Config{
		Keys:   exampleKeys("carol:sk-carol-0123456789abcdef rpm=30"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	defer g.Close()

	app := func(ctx *fasthttp.RequestCtx) {
		fmt.Printf("key_id %q, limit %d a minute\n", server.KeyID(ctx), server.KeySettings(ctx).RPM)
	}
	var req fasthttp.Request
	req.SetRequestURI("/v1/embeddings")
	req.Header.Set("Authorization", "Bearer sk-carol-0123456789abcdef")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)

	g.Wrap(app)(&ctx)
	app(new(fasthttp.RequestCtx)) // not through the gateway
	// Output:
	// key_id "carol", limit 30 a minute
	// key_id "", limit 0 a minute
}

// Config.Keys is the in-memory key source, used instead of a keys file:
// build it from keys-file lines (or auth.Entry values) with auth.NewKeySet.
// Keys of one key_id share its limit.
func ExampleConfig_inMemoryKeys() {
	var entries []auth.Entry
	for i, line := range []string{
		"alice:sk-alice-laptop-0123456789 rpm=2",
		"alice:sk-alice-server-0123456789",
		"bob:sk-bob-0123456789abcdefgh",
	} {
		e, _, err := auth.ParseLine([]byte(line), i+1)
		if err != nil {
			panic(err)
		}
		entries = append(entries, e)
	}
	keys, _ := auth.NewKeySet(entries)

	g, err := server.New(server.Config{
		Keys:         keys,
		AccessLogger: printLog,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	defer g.Close()
	h := g.Wrap(func(*fasthttp.RequestCtx) {})
	for _, key := range []string{"sk-alice-laptop-0123456789", "sk-alice-server-0123456789", "sk-alice-server-0123456789", "sk-bob-0123456789abcdefgh"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/v1/models")
		ctx.Request.Header.Set("Authorization", "Bearer "+key)
		h(&ctx)
	}
	// Output:
	// log: alice GET /v1/models 200
	// log: alice GET /v1/models 200
	// log: alice GET /v1/models 429
	// log: bob GET /v1/models 200
}
