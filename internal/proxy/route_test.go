package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/authgate/authgate/internal/upstreamspec"
	"github.com/authgate/authgate/mockupstream"
)

// testUpstream is a mockupstream.Mock serving some models on a loopback
// port, behind a handler that counts, per model named, the requests that
// reached it.
type testUpstream struct {
	mock *mockupstream.Mock
	url  string
	srv  *fasthttp.Server

	// onRequest, if set before requests are sent, is called with the
	// model each POST names, before the mock answers it.
	onRequest func(model string, ctx *fasthttp.RequestCtx)
	// hold, if set, is waited on by requests that carry X-Hold.
	hold chan struct{}

	mu  sync.Mutex
	got map[string]int // model named → requests received
}

func startUpstream(t *testing.T, models ...string) *testUpstream {
	t.Helper()
	u := &testUpstream{mock: mockupstream.New(mockupstream.Config{Models: models}), got: map[string]int{}}
	u.srv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			model := fastjson.GetString(ctx.PostBody(), "model")
			u.mu.Lock()
			u.got[model]++
			u.mu.Unlock()
			if u.onRequest != nil {
				u.onRequest(model, ctx)
			}
			if len(ctx.Request.Header.Peek("X-Hold")) > 0 {
				<-u.hold
			}
		}
		u.mock.Handler(ctx)
	}}
	ln := listenLoopback(t)
	u.url = "http://" + ln.Addr().String()
	go u.srv.Serve(ln)
	t.Cleanup(u.stop)
	return u
}

// stop closes the upstream: connections to it are refused from then on.
func (u *testUpstream) stop() { _ = u.srv.Shutdown() }

// received returns how many requests naming model reached u.
func (u *testUpstream) received(model string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got[model]
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// deadURL is a loopback address nothing listens on.
func deadURL(t *testing.T) string {
	ln := listenLoopback(t)
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// rounds counts a health checker's completed rounds, for tests to wait on
// instead of sleeping.
type rounds struct {
	mu      sync.Mutex
	n       int
	ch      chan struct{} // closed when the next round ends
	pending func()        // run as the next round ends (between)
	ranAt   int           // the round at whose end pending ran
}

// done runs on the checker's goroutine after each round's table refresh.
func (r *rounds) done() {
	r.mu.Lock()
	r.n++
	if r.pending != nil {
		r.pending()
		r.pending, r.ranAt = nil, r.n
	}
	close(r.ch)
	r.ch = make(chan struct{})
	r.mu.Unlock()
}

// between runs f as a round ends, before the next one starts, and returns
// once that next round has ended: the first round that can see what f
// changed, whose table is then published.
func (r *rounds) between(t *testing.T, f func()) {
	t.Helper()
	r.mu.Lock()
	r.pending, r.ranAt = f, -1
	r.mu.Unlock()
	giveUp := time.After(20 * time.Second) // a hang, not a timing assertion
	for {
		r.mu.Lock()
		n, ran, ch := r.n, r.ranAt, r.ch
		r.mu.Unlock()
		if ran >= 0 && n > ran {
			return
		}
		select {
		case <-ch:
		case <-giveUp:
			t.Fatal("no health check round for 20 s")
		}
	}
}

// wait returns once k rounds have ended after the call: with k = 2, a
// whole round started after the call, and its table is published.
func (r *rounds) wait(t *testing.T, k int) {
	t.Helper()
	r.mu.Lock()
	target := r.n + k
	r.mu.Unlock()
	giveUp := time.After(20 * time.Second) // a hang, not a timing assertion
	for {
		r.mu.Lock()
		n, ch := r.n, r.ch
		r.mu.Unlock()
		if n >= target {
			return
		}
		select {
		case <-ch:
		case <-giveUp:
			t.Fatalf("no health check round for 20 s (waiting for %d, at %d)", target, n)
		}
	}
}

// logBuffer collects a logger's output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testInterval is the health check interval of the routing tests.
const testInterval = 20 * time.Millisecond

// startProxy builds and starts a Proxy from cfg (with a timeout and a
// logger if unset), its check rounds counted, and its log collected.
func startProxy(t *testing.T, cfg Config) (*Proxy, *rounds, *logBuffer) {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &rounds{ch: make(chan struct{})}
	if h := p.health; h != nil {
		refresh := h.afterRound
		h.afterRound = func() { refresh(); r.done() }
		// The interval is short; a check may take longer on a loaded
		// machine without the upstream being down.
		h.timeout = 5 * time.Second
		for _, up := range p.ups {
			if c := up.health.client; c != nil {
				c.ReadTimeout, c.WriteTimeout = h.timeout, h.timeout
			}
		}
	}
	p.Start()
	t.Cleanup(p.Close)
	return p, r, logs
}

// startFront serves p on a loopback port as the gateway's handler would
// with routing: the body's model resolved (an alias rewritten to its
// model), unknown models answered 404, the rest by ServeModel.
func startFront(t *testing.T, p *Proxy) string {
	t.Helper()
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		served := ""
		if model := fastjson.GetString(ctx.PostBody(), "model"); model != "" {
			var known bool
			_, served, known = p.Resolve([]byte(model))
			if !known {
				ctx.SetStatusCode(fasthttp.StatusNotFound)
				ctx.SetBodyString("front: unknown model")
				return
			}
			if served != model {
				ctx.Request.SetBody(bytes.Replace(ctx.PostBody(), []byte(`"model":"`+model+`"`), []byte(`"model":"`+served+`"`), 1))
			}
		}
		p.ServeModel(ctx, served)
	}}
	ln := listenLoopback(t)
	go s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown() })
	return "http://" + ln.Addr().String()
}

var testClient = &fasthttp.Client{MaxConnsPerHost: 64}

// chat sends a chat completion naming model (none if empty) to base, with
// extra headers as name, value pairs, and returns the status and body.
func chat(t *testing.T, base, model string, header ...string) (int, []byte) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI(base + "/v1/chat/completions")
	body := `{"messages":[{"role":"user","content":"hi"}]}`
	if model != "" {
		body = `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	}
	req.SetBodyString(body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if err := testClient.DoTimeout(req, resp, 20*time.Second); err != nil {
		t.Errorf("POST %s: %v", model, err)
		return 0, nil
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

// sendN sends n requests naming model, each expected to answer want.
func sendN(t *testing.T, base, model string, n, want int) {
	t.Helper()
	for range n {
		if status, body := chat(t, base, model); status != want {
			t.Fatalf("%s: %d %s, want %d", model, status, body, want)
		}
	}
}

func modelIDs(ms []Model) string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return strings.Join(ids, " ")
}

// entryOf decodes the entry of id in ms.
func entryOf(t *testing.T, ms []Model, id string) map[string]any {
	t.Helper()
	for _, m := range ms {
		if m.ID == id {
			var e map[string]any
			if err := json.Unmarshal(m.JSON, &e); err != nil {
				t.Fatalf("entry of %s: %v: %s", id, err, m.JSON)
			}
			if e["id"] != id {
				t.Fatalf("entry of %s has id %v", id, e["id"])
			}
			return e
		}
	}
	t.Fatalf("no entry %s in %s", id, modelIDs(ms))
	return nil
}

// TestRouteDiscovery: each upstream's models are read from its
// GET /v1/models; a request goes only to the upstreams that list its
// model; an adapter loaded at run time is routed to after a check round,
// and once unloaded is unknown after another.
func TestRouteDiscovery(t *testing.T) {
	a := startUpstream(t, "llama")
	b := startUpstream(t, "qwen")
	p, r, logs := startProxy(t, Config{Upstreams: []string{a.url, b.url}, HealthInterval: testInterval})
	r.wait(t, 2)
	if !p.Routing() || p.DefaultPool() || !p.ModelsKnown() {
		t.Fatalf("Routing %v, DefaultPool %v, ModelsKnown %v; want true, false, true", p.Routing(), p.DefaultPool(), p.ModelsKnown())
	}
	front := startFront(t, p)
	sendN(t, front, "llama", 20, 200)
	sendN(t, front, "qwen", 20, 200)
	sendN(t, front, "mistral", 1, 404)
	if a.received("llama") != 20 || b.received("qwen") != 20 || a.received("qwen")+b.received("llama") != 0 {
		t.Fatalf("a got llama %d, qwen %d; b got qwen %d, llama %d: want 20, 0, 20, 0",
			a.received("llama"), a.received("qwen"), b.received("qwen"), b.received("llama"))
	}
	if got := modelIDs(p.Models()); got != "llama qwen" {
		t.Fatalf("Models() = %s", got)
	}
	if e := entryOf(t, p.Models(), "llama"); e["root"] != "llama" || e["max_model_len"] != float64(mockupstream.DefaultMaxModelLen) {
		t.Fatalf("llama's entry %v: want the upstream's (vLLM's root, max_model_len)", e)
	}

	// vLLM's POST /v1/load_lora_adapter on b.
	if status, body := post(t, b.url+"/v1/load_lora_adapter", `{"lora_name":"sql-lora","lora_path":"/adapters/sql"}`); status != 200 {
		t.Fatalf("load_lora_adapter: %d %s", status, body)
	}
	r.wait(t, 2)
	sendN(t, front, "sql-lora", 10, 200)
	if b.received("sql-lora") != 10 || a.received("sql-lora") != 0 {
		t.Fatalf("sql-lora reached b %d, a %d times; want 10, 0", b.received("sql-lora"), a.received("sql-lora"))
	}
	if e := entryOf(t, p.Models(), "sql-lora"); e["parent"] != "qwen" || e["root"] != "/adapters/sql" {
		t.Fatalf("sql-lora's entry %v: want vLLM's parent and root", e)
	}
	if n := strings.Count(logs.String(), `msg="upstream now serves" upstream=`+b.url); n != 2 {
		t.Fatalf("%d \"upstream now serves\" lines for b, want 2 (its first list, then the adapter):\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `models="[qwen sql-lora]" count=2`) {
		t.Fatalf("no log of b's new list:\n%s", logs)
	}

	if status, body := post(t, b.url+"/v1/unload_lora_adapter", `{"lora_name":"sql-lora"}`); status != 200 {
		t.Fatalf("unload_lora_adapter: %d %s", status, body)
	}
	r.wait(t, 2)
	if _, served, known := p.Resolve([]byte("sql-lora")); known {
		t.Fatalf("Resolve(sql-lora) = %q, true after unloading", served)
	}
	sendN(t, front, "sql-lora", 1, 404)
	if b.received("sql-lora") != 10 {
		t.Fatalf("sql-lora reached b after it was unloaded")
	}
	if got := modelIDs(p.Models()); got != "llama qwen" {
		t.Fatalf("Models() = %s after unloading", got)
	}
}

// post sends body to url.
func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI(url)
	req.SetBodyString(body)
	if err := testClient.DoTimeout(req, resp, 20*time.Second); err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

// TestRouteModelGone: ServeModel for a model no upstream serves any more
// (dropped between Resolve and ServeModel) answers 404 model_not_found
// and reaches no upstream.
func TestRouteModelGone(t *testing.T) {
	a := startUpstream(t, "llama")
	p, _, _ := startProxy(t, Config{Upstreams: []string{a.url + " models=llama"}})
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { p.ServeModel(ctx, "gone") }}
	ln := listenLoopback(t)
	go s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown() })
	status, body := chat(t, "http://"+ln.Addr().String(), "gone")
	if status != 404 || !bytes.Contains(body, []byte(`"code":"model_not_found"`)) {
		t.Fatalf("got %d %s, want 404 model_not_found", status, body)
	}
	if a.received("gone") != 0 {
		t.Fatal("the request reached the upstream")
	}
}

// TestRouteDeclared: an upstream declared with models= serves those, and
// is not discovered even when its check GETs /v1/models; its entries are
// made up. Declarations work with health checks off too.
func TestRouteDeclared(t *testing.T) {
	a := startUpstream(t, "d1", "d2", "extra")
	b := startUpstream(t, "qwen")
	p, r, _ := startProxy(t, Config{Upstreams: []string{a.url + " models=d1|d2", b.url}, HealthInterval: testInterval})
	r.wait(t, 2)
	if got := modelIDs(p.Models()); got != "d1 d2 qwen" {
		t.Fatalf("Models() = %s, want d1 d2 qwen (a's extra is not declared)", got)
	}
	if _, _, known := p.Resolve([]byte("extra")); known {
		t.Fatal("extra, which a lists but does not declare, is known")
	}
	e := entryOf(t, p.Models(), "d1")
	if e["owned_by"] != "authgate" || e["object"] != "model" || e["created"] != float64(p.created) || len(e) != 4 {
		t.Fatalf("d1's entry %v: want a made-up one", e)
	}
	front := startFront(t, p)
	sendN(t, front, "d2", 5, 200)
	sendN(t, front, "qwen", 5, 200)
	if a.received("d2") != 5 || b.received("d2") != 0 || b.received("qwen") != 5 || a.received("qwen") != 0 {
		t.Fatal("a request reached an upstream that does not serve its model")
	}

	// Health checks off: the declarations alone.
	p2, _, _ := startProxy(t, Config{Upstreams: []string{a.url + " models=d1", b.url + " models=qwen"}})
	if !p2.Routing() || p2.DefaultPool() || !p2.ModelsKnown() || modelIDs(p2.Models()) != "d1 qwen" {
		t.Fatalf("checks off: Routing %v, DefaultPool %v, ModelsKnown %v, Models %s", p2.Routing(), p2.DefaultPool(), p2.ModelsKnown(), modelIDs(p2.Models()))
	}
	front2 := startFront(t, p2)
	sendN(t, front2, "d1", 3, 200)
	if a.received("d1") != 3 {
		t.Fatal("d1 did not reach a")
	}
}

// TestRouteCatchAll: an upstream with neither a declaration nor a model
// list serves any model a listed upstream does not.
func TestRouteCatchAll(t *testing.T) {
	a := startUpstream(t, "d1")
	b := startUpstream(t) // lenient: answers any model
	// A health path other than /v1/models: nothing is discovered.
	p, r, _ := startProxy(t, Config{Upstreams: []string{a.url + " models=d1", b.url}, HealthPath: "/health", HealthInterval: testInterval})
	r.wait(t, 2)
	if !p.Routing() || p.DefaultPool() || !p.ModelsKnown() {
		t.Fatalf("Routing %v, DefaultPool %v, ModelsKnown %v; want true, false, true", p.Routing(), p.DefaultPool(), p.ModelsKnown())
	}
	if _, served, known := p.Resolve([]byte("anything")); served != "anything" || !known {
		t.Fatalf("Resolve(anything) = %q, %v; want anything, true", served, known)
	}
	front := startFront(t, p)
	sendN(t, front, "d1", 5, 200)
	sendN(t, front, "anything", 5, 200)
	if a.received("d1") != 5 || b.received("d1") != 0 || b.received("anything") != 5 || a.received("anything") != 0 {
		t.Fatal("d1 must go to a only, anything to b only")
	}
	if got := modelIDs(p.Models()); got != "d1" {
		t.Fatalf("Models() = %s, want d1", got)
	}

	// An upstream whose /v1/models cannot be read (404) is a catch-all.
	c := startUpstream(t, "llama")
	noList := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/v1/models" {
			ctx.SetStatusCode(404)
			return
		}
		ctx.SetBodyString("no-list")
	}}
	ln := listenLoopback(t)
	go noList.Serve(ln)
	t.Cleanup(func() { _ = noList.Shutdown() })
	p2, r2, logs := startProxy(t, Config{Upstreams: []string{c.url, "http://" + ln.Addr().String()}, HealthInterval: testInterval})
	r2.wait(t, 3)
	front2 := startFront(t, p2)
	sendN(t, front2, "llama", 5, 200)
	if status, body := chat(t, front2, "other"); status != 200 || string(body) != "no-list" {
		t.Fatalf("other: %d %s, want the catch-all's answer", status, body)
	}
	if c.received("llama") != 5 || c.received("other") != 0 {
		t.Fatal("llama must go to c only, other never to c")
	}
	if n := strings.Count(logs.String(), "cannot read the upstream's model list: it gets requests for any model until it can"); n != 1 {
		t.Fatalf("%d warnings for the catch-all's list, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `err="model list answered Not Found"`) {
		t.Fatalf("the warning does not say why:\n%s", logs)
	}
}

// TestRouteAliases: an alias resolves to its model, is listed by Models
// as its model's entry under its own id while its model is served by a
// healthy upstream, and not otherwise.
func TestRouteAliases(t *testing.T) {
	a := startUpstream(t, "qwen")
	b := startUpstream(t, "llama")
	aliases := map[string]string{"gpt-4o-mini": "qwen", "gpt-4o": "llama", "ghost": "nothing", "qwen-old": "qwen"}
	p, r, _ := startProxy(t, Config{Upstreams: []string{a.url, b.url}, HealthInterval: testInterval, Aliases: aliases})
	aliases["ghost"] = "changed" // New copies the map
	r.wait(t, 2)
	if got := modelIDs(p.Models()); got != "gpt-4o gpt-4o-mini llama qwen qwen-old" {
		t.Fatalf("Models() = %s", got)
	}
	e := entryOf(t, p.Models(), "gpt-4o")
	if e["root"] != "llama" || e["max_model_len"] != float64(mockupstream.DefaultMaxModelLen) {
		t.Fatalf("gpt-4o's entry %v: want llama's, renamed", e)
	}
	f := func(model, wantServed string, wantKnown bool) {
		t.Helper()
		wantName := model // the name a request is logged and counted by
		if wantServed == "" {
			wantName = ""
		}
		if name, served, known := p.Resolve([]byte(model)); name != wantName || served != wantServed || known != wantKnown {
			t.Errorf("Resolve(%s) = %q, %q, %v; want %q, %q, %v", model, name, served, known, wantName, wantServed, wantKnown)
		}
	}
	f("gpt-4o", "llama", true)
	f("gpt-4o-mini", "qwen", true)
	f("qwen", "qwen", true)
	f("ghost", "nothing", false)
	f("nothing", "", false)

	front := startFront(t, p)
	sendN(t, front, "gpt-4o", 4, 200)
	if b.received("llama") != 4 || a.received("llama")+a.received("gpt-4o")+b.received("gpt-4o") != 0 {
		t.Fatal("gpt-4o must reach b as llama")
	}

	// b down: llama and its alias leave the list; they stay known.
	b.stop()
	r.wait(t, 2)
	if got := modelIDs(p.Models()); got != "gpt-4o-mini qwen qwen-old" {
		t.Fatalf("Models() = %s with b down", got)
	}
	f("gpt-4o", "llama", true)
	if status, body := chat(t, front, "gpt-4o"); status != 502 || !bytes.Contains(body, []byte("upstream_unavailable")) {
		t.Fatalf("gpt-4o with b down: %d %s, want 502", status, body)
	}
	if a.received("llama") != 0 {
		t.Fatal("llama reached a")
	}
}

// TestRouteRoutingDefaultPool: Routing and DefaultPool in each
// configuration.
func TestRouteRoutingDefaultPool(t *testing.T) {
	dead := deadURL(t) // health checks off: never contacted
	f := func(name string, cfg Config, wantRouting, wantDefault, wantKnown bool) {
		t.Helper()
		p, _, _ := startProxy(t, cfg)
		if p.Routing() != wantRouting || p.DefaultPool() != wantDefault || p.ModelsKnown() != wantKnown {
			t.Errorf("%s: Routing %v, DefaultPool %v, ModelsKnown %v; want %v, %v, %v", name,
				p.Routing(), p.DefaultPool(), p.ModelsKnown(), wantRouting, wantDefault, wantKnown)
		}
	}
	alias := map[string]string{"a": "m1"}
	f("no upstream", Config{}, false, true, false)
	f("one catch-all", Config{Upstreams: []string{dead}}, false, true, false)
	f("two catch-alls", Config{Upstreams: []string{dead, dead}}, false, true, false)
	f("one declared", Config{Upstreams: []string{dead + " models=m1"}}, false, true, true)
	f("two the same", Config{Upstreams: []string{dead + " models=m1|m2", dead + " models=m2|m1"}}, false, true, true)
	f("two different", Config{Upstreams: []string{dead + " models=m1", dead + " models=m1|m2"}}, true, false, true)
	f("declared and catch-all", Config{Upstreams: []string{dead + " models=m1", dead}}, true, false, true)
	f("one with an alias", Config{Upstreams: []string{dead + " models=m1"}, Aliases: alias}, true, true, true)
	f("catch-all with an alias", Config{Upstreams: []string{dead}, Aliases: alias}, true, true, false)

	// Discovered: one pool until the lists differ.
	a := startUpstream(t, "m1")
	b := startUpstream(t, "m1")
	p, r, _ := startProxy(t, Config{Upstreams: []string{a.url, b.url}, HealthInterval: testInterval})
	r.wait(t, 2)
	if p.Routing() || !p.DefaultPool() {
		t.Fatalf("same lists: Routing %v, DefaultPool %v; want false, true", p.Routing(), p.DefaultPool())
	}
	b.mock.AddModel("m2")
	r.wait(t, 2)
	if !p.Routing() || p.DefaultPool() {
		t.Fatalf("different lists: Routing %v, DefaultPool %v; want true, false", p.Routing(), p.DefaultPool())
	}

	// An upstream whose list was never read, down: no pool of its own.
	p, r, _ = startProxy(t, Config{Upstreams: []string{a.url, dead}, HealthInterval: testInterval})
	if p.Routing() || !p.DefaultPool() { // before the first round or after: one pool
		t.Fatalf("at start: Routing %v, DefaultPool %v; want false, true", p.Routing(), p.DefaultPool())
	}
	r.wait(t, 2)
	if p.Routing() || !p.DefaultPool() || !p.ModelsKnown() {
		t.Fatalf("one list read, one upstream down: Routing %v, DefaultPool %v, ModelsKnown %v; want false, true, true", p.Routing(), p.DefaultPool(), p.ModelsKnown())
	}
	if _, _, known := p.Resolve([]byte("other")); known {
		t.Fatal("the upstream down is a catch-all")
	}
}

// TestRouteBalancing: within a model's pool, requests go to the upstream
// with the fewest in flight; never outside the pool.
func TestRouteBalancing(t *testing.T) {
	a := startUpstream(t, "m1")
	b := startUpstream(t, "m1")
	c := startUpstream(t, "m2", "m1-not-listed")
	hold := make(chan struct{})
	arrived := make(chan *testUpstream, 1)
	for _, u := range []*testUpstream{a, b} {
		u.hold = hold
		u.onRequest = func(_ string, ctx *fasthttp.RequestCtx) {
			if len(ctx.Request.Header.Peek("X-Hold")) > 0 {
				arrived <- u
			}
		}
	}
	p, _, _ := startProxy(t, Config{Upstreams: []string{a.url + " models=m1", b.url + " models=m1", c.url + " models=m2"}})
	front := startFront(t, p)

	sendN(t, front, "m1", 64, 200)
	if a.received("m1") == 0 || b.received("m1") == 0 || a.received("m1")+b.received("m1") != 64 || c.received("m1") != 0 {
		t.Fatalf("64 sequential m1 requests: a %d, b %d, c %d; want both a and b, not c", a.received("m1"), b.received("m1"), c.received("m1"))
	}

	// One request held in one of them: the next ones all go to the
	// other, the least loaded.
	held := make(chan int)
	go func() {
		status, _ := chat(t, front, "m1", "X-Hold", "1")
		held <- status
	}()
	busy, idle := <-arrived, a // in flight at busy until hold is closed
	if busy == a {
		idle = b
	}
	beforeBusy, beforeIdle := busy.received("m1"), idle.received("m1")
	sendN(t, front, "m1", 20, 200)
	if busy.received("m1") != beforeBusy || idle.received("m1") != beforeIdle+20 {
		t.Fatalf("with one request held in one upstream: it got %d more, the other %d more; want 0, 20",
			busy.received("m1")-beforeBusy, idle.received("m1")-beforeIdle)
	}
	close(hold)
	if status := <-held; status != 200 {
		t.Fatalf("held request: %d", status)
	}
}

// TestRouteFailover: a refused connection is retried on another upstream
// of the model's pool, never on one outside it; a pool with no upstream
// left answers 502 and reaches no other.
func TestRouteFailover(t *testing.T) {
	b := startUpstream(t, "m1")
	c := startUpstream(t, "m2")
	dead := deadURL(t)
	// Health checks off: the dead upstream stays in the pick, and each
	// request that picks it is retried.
	p, _, _ := startProxy(t, Config{Upstreams: []string{dead + " models=m1|m3", b.url + " models=m1", c.url + " models=m2"}})
	front := startFront(t, p)
	sendN(t, front, "m1", 40, 200)
	if b.received("m1") != 40 || c.received("m1") != 0 {
		t.Fatalf("m1: b got %d, c %d; want 40, 0", b.received("m1"), c.received("m1"))
	}
	// m3's one upstream is dead: no retry on b or c, whose pools are others.
	for range 5 {
		if status, body := chat(t, front, "m3"); status != 502 || !bytes.Contains(body, []byte("upstream_unavailable")) {
			t.Fatalf("m3: %d %s, want 502", status, body)
		}
	}
	if b.received("m3")+c.received("m3") != 0 {
		t.Fatalf("m3 reached b %d and c %d times", b.received("m3"), c.received("m3"))
	}
}

// TestRouteFlipConcurrent: 32 clients ask for a model while discovery
// moves it back and forth between two upstreams, loading it on one
// (vLLM's load_lora_adapter) and then unloading it from the other; no
// request routed after the gateway has seen an upstream drop the model
// reaches that upstream.
//
// Discovery reads each upstream's list once a check round, so a request
// routed between an upstream's unloading and the round that sees it still
// goes there, and the upstream answers it 404 as vLLM would: that window,
// at most one interval and a check, is inherent to polling, and allowed.
// What is checked is exact, with no clock: after each round that drops
// the model from an upstream's list, the test bumps an epoch; each client
// sends the epoch it read before sending, and the upstream's handler
// reports a request for the model it does not list whose epoch is at
// least the one of its drop, since such a request was routed after the
// table without the model there was published.
func TestRouteFlipConcurrent(t *testing.T) {
	const (
		clients = 32
		flips   = 10
		never   = math.MaxInt64
	)
	a := startUpstream(t, "base-a")
	b := startUpstream(t, "base-b")
	a.mock.AddModel("flip")
	p, r, _ := startProxy(t, Config{Upstreams: []string{a.url, b.url}, HealthInterval: testInterval})
	r.wait(t, 2)
	front := startFront(t, p)

	var (
		epoch atomic.Int64 // bumped once a table without flip at an upstream is published
		mu    sync.Mutex   // guards the maps and violations; held while a mock's list changes
		// listed says whether an upstream lists flip now; droppedAt, for
		// one that does not, the epoch of the table that dropped it from
		// there (never while that table is not published yet).
		listed     = map[*testUpstream]bool{a: true, b: false}
		droppedAt  = map[*testUpstream]int64{b: 0}
		violations []string
		stale      int // requests that reached an upstream in the allowed window
	)
	name := map[*testUpstream]string{a: "a", b: "b"}
	for _, u := range []*testUpstream{a, b} {
		u.onRequest = func(model string, ctx *fasthttp.RequestCtx) {
			seen, err := strconv.ParseInt(string(ctx.Request.Header.Peek("X-Epoch")), 10, 64)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				violations = append(violations, "a request without its epoch")
			case model == "flip" && !listed[u] && seen >= droppedAt[u]:
				violations = append(violations, fmt.Sprintf("flip reached %s, dropped there by the table of epoch %d, from a request sent at epoch %d", name[u], droppedAt[u], seen))
			case model == "flip" && !listed[u]:
				stale++
			case model == "base-a" && u != a, model == "base-b" && u != b:
				violations = append(violations, fmt.Sprintf("%s reached %s", model, name[u]))
			}
		}
	}

	stop := make(chan struct{})
	var (
		wg         sync.WaitGroup
		okMu       sync.Mutex
		ok         = map[string]int{}
		notFound   int // the mock's 404 for flip, in the allowed window
		afterDrops int // flip requests sent once a drop was published
		unexpected []string
	)
	models := []string{"flip", "flip", "flip", "base-a", "base-b"}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				model := models[i%len(models)]
				seen := epoch.Load()
				status, body := chat(t, front, model, "X-Epoch", strconv.FormatInt(seen, 10))
				okMu.Lock()
				switch {
				case status == 200:
					ok[model]++
				case status == 404 && model == "flip" && bytes.Contains(body, []byte("does not exist")):
					notFound++
				default:
					unexpected = append(unexpected, fmt.Sprintf("%s: %d %s", model, status, body))
				}
				if model == "flip" && seen > 0 {
					afterDrops++
				}
				okMu.Unlock()
			}
		}()
	}

	from, to := a, b
	for range flips {
		r.between(t, func() {
			mu.Lock()
			to.mock.AddModel("flip")
			listed[to] = true
			mu.Unlock()
		})
		// The removal is made as a round ends; the round after it is the
		// first to see it, and has published its table when between
		// returns: not a round later.
		r.between(t, func() {
			mu.Lock()
			from.mock.RemoveModel("flip")
			listed[from], droppedAt[from] = false, never
			mu.Unlock()
		})
		e := epoch.Load() + 1
		mu.Lock()
		droppedAt[from] = e
		mu.Unlock()
		epoch.Store(e)
		from, to = to, from
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, v := range violations[:min(len(violations), 10)] {
		t.Error(v)
	}
	if len(violations) > 0 {
		t.Fatalf("%d violations", len(violations))
	}
	for _, u := range unexpected[:min(len(unexpected), 10)] {
		t.Errorf("unexpected answer: %s", u)
	}
	t.Logf("answered: %v; flip answered 404 in the window before a round: %d (%d reached an upstream after it unlisted flip); flip sent after a drop: %d",
		ok, notFound, stale, afterDrops)
	// The test has teeth only if flip was served by both, and many
	// requests were routed after drops.
	if a.received("flip") == 0 || b.received("flip") == 0 || ok["base-a"] == 0 || ok["base-b"] == 0 || afterDrops < flips {
		t.Fatalf("too little traffic: flip reached a %d, b %d times; %d flip requests after a drop",
			a.received("flip"), b.received("flip"), afterDrops)
	}
}

// TestRouteDiscoveryBounds: a model list over 4 MiB, over 4096 models, or
// not a list is not used: the last one read stays, the upstream stays
// healthy, and each failure is logged once.
func TestRouteDiscoveryBounds(t *testing.T) {
	var list atomic.Pointer[[]byte]
	setList := func(b []byte) { list.Store(&b) }
	setList([]byte(`{"object":"list","data":[{"id":"m1","object":"model"}]}`))
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/v1/models" {
			ctx.SetBody(*list.Load())
			return
		}
		ctx.SetBodyString("listed")
	}}
	ln := listenLoopback(t)
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	other := startUpstream(t, "m2")
	p, r, logs := startProxy(t, Config{Upstreams: []string{"http://" + ln.Addr().String(), other.url}, HealthInterval: testInterval})
	r.wait(t, 2)
	front := startFront(t, p)

	many := []byte(`{"data":[`)
	for i := range maxModels + 1 {
		if i > 0 {
			many = append(many, ',')
		}
		many = fmt.Appendf(many, `{"id":"m%d"}`, i)
	}
	many = append(many, "]}"...)
	f := func(body []byte, wantErr string) {
		t.Helper()
		setList(body)
		r.wait(t, 3) // two whole rounds: the failure is logged once
		if status, got := chat(t, front, "m1"); status != 200 || string(got) != "listed" {
			t.Fatalf("%s: m1 answered %d %s, want the upstream's 200", wantErr, status, got)
		}
		if _, _, known := p.Resolve([]byte("m0")); known {
			t.Fatalf("%s: a model of the refused list is known", wantErr)
		}
		if n := strings.Count(logs.String(), `err="`+wantErr+`"`); n != 1 {
			t.Fatalf("%d log lines with %q, want 1:\n%s", n, wantErr, logs)
		}
	}
	f(append(append([]byte(`{"data":[{"id":"m0"}],"pad":"`), bytes.Repeat([]byte("x"), maxModelListBody)...), `"}`...), "model list body over 4 MiB")
	f([]byte(`{"data":[{"id":"m0"}`), "model list is not JSON")
	f(many, "model list holds over 4096 models")
	f([]byte(`{"data":{"id":"m0"}}`), "model list has no data array of objects")
	f([]byte(`{"data":[{"id":"m0"},{"name":"x"}]}`), "model list entry without a valid id")
	f([]byte(`{"data":[{"id":"m0"},{"id":"`+strings.Repeat("x", upstreamspec.MaxModelID+1)+`"}]}`), "model list entry without a valid id")
	// The last two failures are of one class: one warning.
	if n := strings.Count(logs.String(), "keeping the last one read"); n != 5 {
		t.Fatalf("%d warnings, want 5:\n%s", n, logs)
	}

	setList([]byte(`{"data":[{"id":"m3"},{"id":"m3","dup":true}]}`))
	r.wait(t, 2)
	if _, _, known := p.Resolve([]byte("m1")); known {
		t.Fatal("m1 is still known once the upstream lists m3 only")
	}
	if e := entryOf(t, p.Models(), "m3"); e["dup"] != nil {
		t.Fatalf("m3's entry %v: want the first of its id", e)
	}
}
