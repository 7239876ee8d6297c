package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/server"
)

// memKeys returns an in-memory key set: alice (default limit) and bob
// (rpm=2).
func memKeys(t *testing.T) *auth.KeySet {
	t.Helper()
	var entries []auth.Entry
	for i, line := range []string{"alice:" + keyAlice, "bob:" + keyBob + " rpm=2"} {
		e, ok, err := auth.ParseLine([]byte(line), i+1)
		if !ok || err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	keys, warns := auth.NewKeySet(entries)
	if len(warns) > 0 {
		t.Fatal(warns)
	}
	return keys
}

// newWrapGateway returns a gateway without upstreams over memKeys, with an
// access log file whose path it also returns.
func newWrapGateway(t *testing.T) (*server.Gateway, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "access.log")
	g, err := server.New(server.Config{
		Keys:      memKeys(t),
		AccessLog: logPath,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("New without upstreams: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g, logPath
}

// serveFast serves h on a loopback port and returns its base URL.
func serveFast(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// reached records what the wrapped handler saw.
type reached struct {
	mu       sync.Mutex
	keyIDs   []string
	settings []auth.Settings
	ids      []string
}

func (r *reached) add(keyID string, s auth.Settings, requestID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keyIDs = append(r.keyIDs, keyID)
	r.settings = append(r.settings, s)
	r.ids = append(r.ids, requestID)
}

func (r *reached) snapshot() ([]string, []auth.Settings, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.keyIDs...), append([]auth.Settings(nil), r.settings...), append([]string(nil), r.ids...)
}

// metricLine returns the value of the series in g's metrics ("" if absent).
func metricLine(g *server.Gateway, series string) string {
	var buf bytes.Buffer
	g.WriteMetrics(&buf)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// checkWrapped runs the middleware scenario against base, served by a
// handler wrapped by g whose next records into r and answers 418.
func checkWrapped(t *testing.T, g *server.Gateway, logPath, base string, r *reached) {
	t.Helper()
	for _, authz := range []string{"", "Basic abc", "Bearer short", "Bearer sk-nobody-0123456789abcdef"} {
		resp, body := do(t, "POST", base+"/v1/chat/completions", authz, "{}")
		if resp.StatusCode != 401 || !strings.Contains(body, `"code":"invalid_api_key"`) || resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("Authorization %q: %d %s", authz, resp.StatusCode, body)
		}
	}
	if k, _, _ := r.snapshot(); len(k) != 0 {
		t.Fatalf("refused requests reached the handler: %v", k)
	}

	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+keyAlice)
	req.Header.Set("X-Request-Id", "req-42")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 418 || string(b) != "teapot alice" {
		t.Fatalf("alice: %d %q", resp.StatusCode, b)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "req-42" {
		t.Errorf("X-Request-Id %q, want req-42", got)
	}
	if got := resp.Header.Get("x-ratelimit-limit-requests"); got != "100" {
		t.Errorf("x-ratelimit-limit-requests %q, want 100", got)
	}

	for i := 0; i < 2; i++ {
		if resp, body := do(t, "GET", base+"/v1/models", "Bearer "+keyBob, ""); resp.StatusCode != 418 {
			t.Fatalf("bob %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := do(t, "GET", base+"/v1/models", "Bearer "+keyBob, "")
	if resp.StatusCode != 429 || !strings.Contains(body, "Rate limit exceeded for bob") ||
		resp.Header.Get("Retry-After") == "" || resp.Header.Get("x-ratelimit-remaining-requests") != "0" {
		t.Fatalf("bob over the limit: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	keyIDs, settings, ids := r.snapshot()
	if want := []string{"alice", "bob", "bob"}; fmt.Sprint(keyIDs) != fmt.Sprint(want) {
		t.Fatalf("handler saw key_ids %v, want %v", keyIDs, want)
	}
	if want := []auth.Settings{{RPM: 100}, {RPM: 2}, {RPM: 2}}; fmt.Sprint(settings) != fmt.Sprint(want) {
		t.Errorf("handler saw settings %v, want %v", settings, want)
	}
	if ids[0] != "req-42" || len(ids[1]) != 32 {
		t.Errorf("handler saw request ids %q", ids)
	}

	for series, want := range map[string]string{
		`authgate_requests_total{key_id="alice",code="418"}`: "1",
		`authgate_requests_total{key_id="bob",code="418"}`:   "2",
		`authgate_requests_total{key_id="bob",code="429"}`:   "1",
		`authgate_requests_total{key_id="-",code="401"}`:     "4",
	} {
		if got := metricLine(g, series); got != want {
			t.Errorf("%s = %q, want %q", series, got, want)
		}
	}

	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(log), "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d log lines, want 8:\n%s", len(lines), log)
	}
	for i, want := range []string{
		" | alice | POST /v1/chat/completions | 418",
		" | bob | GET /v1/models | 418",
		" | bob | GET /v1/models | 418",
		" | bob | GET /v1/models | 429",
	} {
		if !strings.HasSuffix(lines[4+i], want) {
			t.Errorf("log line %d %q, want suffix %q", 4+i, lines[4+i], want)
		}
	}
}

func TestWrap(t *testing.T) {
	g, logPath := newWrapGateway(t)
	var r reached
	base := serveFast(t, g.Wrap(func(ctx *fasthttp.RequestCtx) {
		r.add(server.KeyID(ctx), server.KeySettings(ctx), string(ctx.Request.Header.Peek("X-Request-Id")))
		ctx.SetStatusCode(418)
		ctx.SetBodyString("teapot " + server.KeyID(ctx))
	}))
	if resp, body := do(t, "GET", base+"/readyz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("/readyz without upstreams: %d %s", resp.StatusCode, body)
	}
	checkWrapped(t, g, logPath, base, &r)
}

func TestWrapHTTP(t *testing.T) {
	g, logPath := newWrapGateway(t)
	var r reached
	srv := httptest.NewServer(g.WrapHTTP(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.add(server.KeyIDFromContext(req.Context()), server.KeySettingsFromContext(req.Context()), req.Header.Get("X-Request-Id"))
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the wrapped ResponseWriter is not an http.Flusher")
		}
		w.WriteHeader(418)
		io.WriteString(w, "teapot "+server.KeyIDFromContext(req.Context()))
		w.(http.Flusher).Flush()
	})))
	t.Cleanup(srv.Close)
	if resp, body := do(t, "GET", srv.URL+"/healthz", "", ""); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("/healthz: %d %s", resp.StatusCode, body)
	}
	checkWrapped(t, g, logPath, srv.URL, &r)
}

// TestWrapHTTPDefaultStatus: a handler that writes nothing is logged 200.
func TestWrapHTTPDefaultStatus(t *testing.T) {
	var entries []string
	g, err := server.New(server.Config{
		Keys:   memKeys(t),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AccessLogger: server.AccessLogFunc(func(e *logsink.Entry) {
			entries = append(entries, fmt.Sprintf("%s %s %s %d %d", e.KeyID, e.Method, e.Path, e.Status, e.BytesOut))
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h := g.WrapHTTP(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest("GET", "/v1/models?x=1", nil)
	req.Header.Set("Authorization", "Bearer "+keyAlice)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 || fmt.Sprint(entries) != "[alice GET /v1/models?x=1 200 0]" {
		t.Fatalf("status %d, log %q", w.Code, entries)
	}
}

// TestKeyIDOutsideGateway: the accessors answer "" and zero outside a
// gateway.
func TestKeyIDOutsideGateway(t *testing.T) {
	var ctx fasthttp.RequestCtx
	if server.KeyID(&ctx) != "" || server.KeySettings(&ctx) != (auth.Settings{}) {
		t.Error("fasthttp accessors outside a gateway")
	}
	if server.KeyIDFromContext(context.Background()) != "" || server.KeySettingsFromContext(context.Background()) != (auth.Settings{}) {
		t.Error("context accessors outside a gateway")
	}
}

// TestHandlerWithoutUpstreams: the proxy of a wrap-only gateway answers 502.
func TestHandlerWithoutUpstreams(t *testing.T) {
	g, _ := newWrapGateway(t)
	base := serveFast(t, g.Handler)
	resp, body := do(t, "POST", base+"/v1/chat/completions", "Bearer "+keyAlice, "{}")
	if resp.StatusCode != 502 || !strings.Contains(body, `"code":"upstream_unavailable"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", base+"/readyz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("/readyz: %d", resp.StatusCode)
	}
}

// TestTwoGatewaysIndependent: two gateways in one process, over the same
// keys, keep their own limits and metrics.
func TestTwoGatewaysIndependent(t *testing.T) {
	ga, _ := newWrapGateway(t)
	gb, _ := newWrapGateway(t)
	ok := func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200) }
	a, b := serveFast(t, ga.Wrap(ok)), serveFast(t, gb.Wrap(ok))
	for _, base := range []string{a, a, b, b} {
		if resp, _ := do(t, "GET", base+"/v1/models", "Bearer "+keyBob, ""); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", base, resp.StatusCode)
		}
	}
	if resp, _ := do(t, "GET", a+"/v1/models", "Bearer "+keyBob, ""); resp.StatusCode != 429 {
		t.Fatalf("third on a: %d, want 429", resp.StatusCode)
	}
	do(t, "GET", a+"/v1/models", "Bearer "+keyAlice, "")
	for g, want := range map[*server.Gateway][3]string{ga: {"2", "1", "1"}, gb: {"2", "", ""}} {
		got := [3]string{
			metricLine(g, `authgate_requests_total{key_id="bob",code="200"}`),
			metricLine(g, `authgate_requests_total{key_id="bob",code="429"}`),
			metricLine(g, `authgate_requests_total{key_id="alice",code="200"}`),
		}
		if got != want {
			t.Errorf("metrics %v, want %v", got, want)
		}
	}
}

// TestSetKeys: SetKeys swaps the in-memory key set; key_ids that remain
// keep their limiter state; an empty set is refused and changes nothing.
func TestSetKeys(t *testing.T) {
	g, _ := newWrapGateway(t)
	base := serveFast(t, g.Wrap(func(ctx *fasthttp.RequestCtx) {}))
	status := func(key string) int {
		resp, _ := do(t, "GET", base+"/v1/models", "Bearer "+key, "")
		return resp.StatusCode
	}
	const keyDave = "sk-dave-0123456789abcdef"
	if s := [3]int{status(keyBob), status(keyBob), status(keyDave)}; s != [3]int{200, 200, 401} {
		t.Fatalf("before: %v", s)
	}
	e, _, _ := auth.ParseLine([]byte("dave:"+keyDave), 1)
	b, _, _ := auth.ParseLine([]byte("bob:"+keyBob+" rpm=2"), 2)
	keys, _ := auth.NewKeySet([]auth.Entry{e, b})
	if err := g.SetKeys(keys); err != nil {
		t.Fatal(err)
	}
	if s := [3]int{status(keyAlice), status(keyDave), status(keyBob)}; s != [3]int{401, 200, 429} {
		t.Fatalf("after SetKeys (alice, dave, bob): %v, want [401 200 429]", s)
	}
	empty, _ := auth.NewKeySet(nil)
	for _, k := range []*auth.KeySet{nil, empty} {
		if err := g.SetKeys(k); !errors.Is(err, server.ErrNoKeys) {
			t.Fatalf("SetKeys(%v): %v, want ErrNoKeys", k, err)
		}
	}
	if err := g.Reload(); err != nil || status(keyDave) != 200 {
		t.Fatalf("Reload after SetKeys: %v, dave %d", err, status(keyDave))
	}
}
