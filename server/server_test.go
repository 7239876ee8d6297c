package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

const (
	keyAlice  = "sk-alice-0123456789abcdef"
	keyAlice2 = "sk-alice-rotated-0123456789"
	keyBob    = "sk-bob-0123456789abcdefgh"
	keyCarol  = "sk-carol-hashed-0123456789"
)

// keysFile writes a keys file into a temporary directory and returns its path.
func keysFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "api_keys.txt")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// defaultKeys is a keys file with rotation, a per-key limit and a hashed key.
func defaultKeys(t *testing.T) string {
	return keysFile(t, "# test keys\n"+
		"alice:"+keyAlice+"\n"+
		"alice:"+keyAlice2+"\n"+
		"bob:"+keyBob+"  rpm=3\n"+
		"carol:"+auth.HashedKey([]byte(keyCarol))+"\n")
}

// startUpstream serves h on a loopback port and returns its base URL.
func startUpstream(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h, CloseOnShutdown: true}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// seen records what reached an upstream.
type seen struct {
	mu   sync.Mutex
	reqs []*fasthttp.Request
}

func (s *seen) handler(status int, body string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if string(ctx.UserAgent()) == server.HealthCheckUserAgent {
			ctx.SetBodyString(`{"object":"list","data":[]}`)
			return
		}
		r := new(fasthttp.Request)
		ctx.Request.CopyTo(r)
		s.mu.Lock()
		s.reqs = append(s.reqs, r)
		s.mu.Unlock()
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("X-Upstream", "yes")
		ctx.SetBodyString(body)
	}
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func (s *seen) last(t *testing.T) *fasthttp.Request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("no request reached the upstream")
	}
	return s.reqs[len(s.reqs)-1]
}

type gateway struct {
	*server.Gateway
	url       string
	accessLog string
}

// startGateway starts a gateway on a loopback port. Zero cfg fields get
// test defaults: the upstream, an access log in a temporary directory.
func startGateway(t *testing.T, cfg server.Config) *gateway {
	t.Helper()
	if cfg.AccessLog == "" {
		cfg.AccessLog = filepath.Join(t.TempDir(), "logs", "api_access.log")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	gw, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := server.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	go gw.Serve(ln)
	t.Cleanup(func() { gw.Close() })
	scheme := "http://"
	if gw.TLSEnabled() {
		scheme = "https://"
	}
	return &gateway{Gateway: gw, url: scheme + ln.Addr().String(), accessLog: cfg.AccessLog}
}

// logLines closes the gateway (flushing its log) and returns the log's lines.
func (g *gateway) logLines(t *testing.T) []string {
	t.Helper()
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b, err := os.ReadFile(g.accessLog)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

var client = &http.Client{Timeout: 10 * time.Second}

// syncBuffer is a bytes.Buffer safe for concurrent writers (a gateway's
// logger).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// do sends a request with the given Authorization header (none if empty).
func do(t *testing.T, method, url, authz, body string) (*http.Response, string) {
	t.Helper()
	return doWith(t, client, method, url, authz, body)
}

// doWith is do with the given client.
func doWith(t *testing.T, hc *http.Client, method, url, authz, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestAuthenticationFailures(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})

	f := func(authz, wantMessage string) {
		t.Helper()
		resp, body := do(t, "POST", g.url+"/v1/chat/completions", authz, `{"model":"m"}`)
		if resp.StatusCode != 401 {
			t.Fatalf("Authorization %q: status %d, want 401", authz, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Authorization %q: Content-Type %q", authz, ct)
		}
		want := `{"error":{"message":"` + wantMessage + `","type":"invalid_request_error","param":"authorization","code":"invalid_api_key"}}`
		if body != want {
			t.Errorf("Authorization %q: body\n%s\nwant\n%s", authz, body, want)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("Authorization %q: no X-Request-Id", authz)
		}
	}
	f("", "Missing Authorization header")
	f("Bearer", "Empty Authorization header")
	f("bearer    ", "Empty Authorization header")
	f("Bearer short", "Invalid API key format")
	f("Bearer sk-has-a-dot.0123456789", "Invalid API key format")
	f("Basic dXNlcjpwYXNzd29yZA==", "Invalid API key format")
	f("Bearer sk-unknown-0123456789abcdef", "Invalid API key")
	f("Bearer "+auth.HashedKey([]byte(keyCarol)), "Invalid API key format") // the stored hash is not a key
	if n := up.count(); n != 0 {
		t.Fatalf("%d unauthenticated requests reached the upstream", n)
	}

	lines := g.logLines(t)
	if len(lines) != 8 {
		t.Fatalf("access log has %d lines, want 8:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, " | - | POST /v1/chat/completions | 401") {
			t.Errorf("log line %q", l)
		}
	}
}

func TestAuthorizationForms(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, `{"ok":true}`))}})
	f := func(authz string) {
		t.Helper()
		resp, body := do(t, "GET", g.url+"/v1/models", authz, "")
		if resp.StatusCode != 200 || body != `{"ok":true}` {
			t.Fatalf("Authorization %q: status %d body %q", authz, resp.StatusCode, body)
		}
	}
	f("Bearer " + keyAlice)
	f("bearer " + keyAlice)
	f("BEARER \t" + keyAlice2)
	f(keyAlice) // the seed accepts the bare key
	f("Bearer " + keyCarol)
	lines := g.logLines(t)
	want := []string{"alice", "alice", "alice", "alice", "carol"}
	for i, l := range lines {
		if got := strings.Split(l, " | ")[1]; got != want[i] {
			t.Errorf("line %d key_id %q, want %q", i, got, want[i])
		}
	}
}

func TestProxyForwardsRequest(t *testing.T) {
	up := &seen{}
	upURL := startUpstream(t, up.handler(201, `{"id":"x"}`))
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}})

	conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model":"m","messages":[]}`
	fmt.Fprintf(conn, "POST //v1/chat/completions?a=1&b=%%2F HTTP/1.1\r\n"+
		"Host: gateway.example\r\n"+
		"Authorization: Bearer %s\r\n"+
		"Connection: keep-alive, X-Secret-Hop\r\n"+
		"X-Secret-Hop: must-not-pass\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Authorization: Basic abc\r\n"+
		"X-Forwarded-For: 203.0.113.7\r\n"+
		"X-Request-Id: req-abc-123\r\n"+
		"X-Custom: kept\r\n"+
		"Content-Type: application/json\r\n"+
		"Content-Length: %d\r\n\r\n%s", keyAlice, len(body), body)
	br := bufio.NewReader(conn)
	var resp fasthttp.Response
	if err := resp.Read(br); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 201 || string(resp.Body()) != `{"id":"x"}` {
		t.Fatalf("status %d body %q", resp.StatusCode(), resp.Body())
	}
	if v := string(resp.Header.Peek("X-Upstream")); v != "yes" {
		t.Errorf("upstream response header lost: %q", v)
	}
	if v := string(resp.Header.Peek("X-Request-Id")); v != "req-abc-123" {
		t.Errorf("X-Request-Id returned %q", v)
	}

	r := up.last(t)
	f := func(header, want string) {
		t.Helper()
		if got := string(r.Header.Peek(header)); got != want {
			t.Errorf("upstream got %s %q, want %q", header, got, want)
		}
	}
	f("Authorization", "")
	f("X-Secret-Hop", "")
	f("Keep-Alive", "")
	f("Proxy-Authorization", "")
	f("X-Custom", "kept")
	f("X-Request-Id", "req-abc-123")
	f("X-Forwarded-For", "127.0.0.1") // the client's own is not believed
	f("X-Forwarded-Proto", "http")
	f("Host", strings.TrimPrefix(upURL, "http://"))
	if got := string(r.Header.Method()); got != "POST" {
		t.Errorf("method %q", got)
	}
	if got := string(r.Header.RequestURI()); got != "//v1/chat/completions?a=1&b=%2F" {
		t.Errorf("request URI %q, want it unchanged", got)
	}
	if got := string(r.Body()); got != body {
		t.Errorf("body %q", got)
	}

	// The connection stays usable: a second request on it.
	fmt.Fprintf(conn, "GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer %s\r\n\r\n", keyAlice)
	resp.Reset()
	if err := resp.Read(br); err != nil {
		t.Fatalf("second request on the connection: %v", err)
	}
	if up.count() != 2 {
		t.Fatalf("upstream saw %d requests, want 2", up.count())
	}
	// Without an X-Forwarded-For of the client's.
	r = up.last(t)
	f("X-Forwarded-For", "127.0.0.1")
	f("X-Forwarded-Proto", "http")
	f("Authorization", "")
}

func TestUpstreamAPIKeyReplacesClientKey(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{
		KeysFile:       defaultKeys(t),
		Upstreams:      []string{startUpstream(t, up.handler(200, "{}"))},
		UpstreamAPIKey: "upstream-secret",
	})
	resp, _ := do(t, "POST", g.url+"/v1/embeddings", "Bearer "+keyAlice, "{}")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := up.last(t)
	if got := string(r.Header.Peek("Authorization")); got != "Bearer upstream-secret" {
		t.Fatalf("upstream Authorization %q", got)
	}
	if id := string(r.Header.Peek("X-Request-Id")); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("generated X-Request-Id %q", id)
	} else if got := resp.Header.Get("X-Request-Id"); got != id {
		t.Errorf("client got X-Request-Id %q, upstream %q", got, id)
	}
}

func TestRateLimit(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})

	for i := 0; i < 3; i++ {
		resp, _ := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyBob, "{}")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
		f := func(h, want string) {
			t.Helper()
			if got := resp.Header.Get(h); got != want {
				t.Errorf("request %d: %s %q, want %q", i, h, got, want)
			}
		}
		f("x-ratelimit-limit-requests", "3")
		f("x-ratelimit-remaining-requests", fmt.Sprint(2-i))
		if got := resp.Header.Get("x-ratelimit-reset-requests"); !regexp.MustCompile(`^(\d+(\.\d+)?s|\d+ms|1m0s)$`).MatchString(got) {
			t.Errorf("request %d: x-ratelimit-reset-requests %q", i, got)
		}
	}
	resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyBob, "{}")
	if resp.StatusCode != 429 {
		t.Fatalf("4th request: status %d, want 429", resp.StatusCode)
	}
	if want := `{"error":{"message":"Rate limit exceeded for bob","type":"rate_limit_error","code":"rate_limit_exceeded"}}`; body != want {
		t.Errorf("429 body %s", body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("429 Content-Type %q", ct)
	}
	var ms, secs int
	if _, err := fmt.Sscan(resp.Header.Get("retry-after-ms"), &ms); err != nil || ms <= 0 || ms > 60000 {
		t.Errorf("retry-after-ms %q", resp.Header.Get("retry-after-ms"))
	}
	if _, err := fmt.Sscan(resp.Header.Get("Retry-After"), &secs); err != nil || secs != (ms+999)/1000 {
		t.Errorf("Retry-After %q with retry-after-ms %d", resp.Header.Get("Retry-After"), ms)
	}
	if got := resp.Header.Get("x-ratelimit-remaining-requests"); got != "0" {
		t.Errorf("429 x-ratelimit-remaining-requests %q", got)
	}
	if up.count() != 3 {
		t.Fatalf("upstream saw %d requests, want 3", up.count())
	}
	// Another key_id is not affected; alice's two keys share one limit.
	if resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyAlice, ""); resp.StatusCode != 200 {
		t.Fatalf("alice: %d", resp.StatusCode)
	}
	lines := g.logLines(t)
	if last := lines[3]; !strings.HasSuffix(last, " | bob | POST /v1/chat/completions | 429") {
		t.Errorf("429 log line %q", last)
	}
}

func TestRotatedKeysShareLimit(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), DefaultRPM: 4, Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	codes := ""
	for i := 0; i < 6; i++ {
		k := keyAlice
		if i%2 == 1 {
			k = keyAlice2
		}
		resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+k, "")
		codes += fmt.Sprint(resp.StatusCode, " ")
	}
	if codes != "200 200 200 200 429 429 " {
		t.Fatalf("codes %s", codes)
	}
}

// TestSimultaneousRequests: 40 requests at once on a limit of 5 admit exactly 5.
func TestSimultaneousRequests(t *testing.T) {
	up := &seen{}
	release := make(chan struct{})
	upURL := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		<-release
		up.handler(200, "{}")(ctx)
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), DefaultRPM: 5, Upstreams: []string{upURL}})

	statuses := make(chan int, 40)
	start := make(chan struct{})
	for i := 0; i < 40; i++ {
		go func() {
			<-start
			resp, _ := do(t, "POST", g.url+"/v1/completions", "Bearer "+keyAlice, "{}")
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	// The 35 refusals come back while the 5 admitted wait in the upstream.
	count := func(n int) map[int]int {
		codes := map[int]int{}
		for range n {
			codes[recv(t, statuses, "a response")]++
		}
		return codes
	}
	if codes := count(35); codes[429] != 35 {
		t.Fatalf("the first 35 answers, with 5 requests held in the upstream: %v, want 35 429s", codes)
	}
	close(release)
	if codes := count(5); codes[200] != 5 || up.count() != 5 {
		t.Fatalf("the last 5 answers: %v, upstream saw %d; want 5 200s", codes, up.count())
	}
}

func TestAccessLogFormat(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	do(t, "GET", g.url+"/healthz", "", "")
	do(t, "GET", g.url+"/readyz", "", "")
	do(t, "POST", g.url+"/v1/chat/completions?api_key=secret-in-query", "Bearer "+keyAlice, "{}")
	do(t, "DELETE", g.url+"/v1/files/x", "", "")
	lines := g.logLines(t)
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (probes are not logged), got:\n%s", strings.Join(lines, "\n"))
	}
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \| (\S+) \| (\S+ \S+) \| (\d{3})$`)
	want := [][]string{{"alice", "POST /v1/chat/completions", "200"}, {"-", "DELETE /v1/files/x", "401"}}
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q does not match the format", l)
		}
		if m[1] != want[i][0] || m[2] != want[i][1] || m[3] != want[i][2] {
			t.Errorf("line %q, want %v", l, want[i])
		}
	}
}

func TestHealthProbes(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, body := do(t, "GET", g.url+p, "", "")
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	// A probe path with another method is guarded like any other.
	if resp, _ := do(t, "POST", g.url+"/healthz", "", ""); resp.StatusCode != 401 {
		t.Errorf("POST /healthz: %d, want 401", resp.StatusCode)
	}
	if up.count() != 0 {
		t.Errorf("probes reached the upstream")
	}
}

func TestUpstreamErrors(t *testing.T) {
	// A port with nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()

	hang := make(chan struct{})
	slowURL := startUpstream(t, func(ctx *fasthttp.RequestCtx) { <-hang })
	t.Cleanup(func() { close(hang) }) // runs before the upstream's Shutdown

	f := func(upURL string, wantStatus int, wantCode string) {
		t.Helper()
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, UpstreamTimeout: 300 * time.Millisecond})
		resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}")
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s: status %d, want %d", upURL, resp.StatusCode, wantStatus)
		}
		if want := `"type":"api_error","param":null,"code":"` + wantCode + `"}}`; !strings.HasSuffix(body, want) {
			t.Errorf("body %s, want suffix %s", body, want)
		}
		if resp.Header.Get("x-ratelimit-limit-requests") != "100" {
			t.Errorf("no rate-limit headers on an upstream error")
		}
		if l := g.logLines(t)[0]; !strings.HasSuffix(l, fmt.Sprintf("| alice | POST /v1/chat/completions | %d", wantStatus)) {
			t.Errorf("log line %q", l)
		}
	}
	f(deadURL, 502, "upstream_unavailable")
	f(slowURL, 504, "upstream_timeout")
}

func TestRequestBodyTooLarge(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}, MaxRequestBody: 1024})
	// First a request under the limit, then one over it on the same
	// kept-alive connection.
	if resp, _ := do(t, "POST", g.url+"/v1/embeddings", "Bearer "+keyAlice, strings.Repeat("x", 1000)); resp.StatusCode != 200 {
		t.Fatalf("body under the limit: %d", resp.StatusCode)
	}
	resp, body := do(t, "POST", g.url+"/v1/embeddings", "Bearer "+keyAlice, strings.Repeat("x", 4096))
	if resp.StatusCode != 413 || !strings.Contains(body, `"code":"request_too_large"`) {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("413 without X-Request-Id")
	}
	if up.count() != 1 {
		t.Fatal("an oversized body reached the upstream")
	}
	lines := g.logLines(t)
	if len(lines) != 2 || !strings.HasSuffix(lines[1], " | - | POST /v1/embeddings | 413") {
		t.Fatalf("log:\n%s", strings.Join(lines, "\n"))
	}
	// Regression: the 413 line was stamped with the previous request's time.
	t0, _ := time.Parse(time.RFC3339Nano, strings.Split(lines[0], " | ")[0])
	t1, _ := time.Parse(time.RFC3339Nano, strings.Split(lines[1], " | ")[0])
	if !t1.After(t0) {
		t.Errorf("413 logged at %v, not after the request before it (%v)", t1, t0)
	}
}

func TestAuthDisabled(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{DisableAuth: true, Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	resp, _ := do(t, "GET", g.url+"/v1/models", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if l := g.logLines(t)[0]; !strings.HasSuffix(l, " | auth-disabled | GET /v1/models | 200") {
		t.Errorf("log line %q", l)
	}
}

func TestFailClosed(t *testing.T) {
	upURL := startUpstream(t, (&seen{}).handler(200, "{}"))
	f := func(name, path string) {
		t.Helper()
		_, err := server.New(server.Config{KeysFile: path, Upstreams: []string{upURL}})
		if !errors.Is(err, server.ErrNoKeys) {
			t.Fatalf("%s: err %v, want ErrNoKeys", name, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	f("missing", filepath.Join(t.TempDir(), "nope.txt"))
	f("empty", keysFile(t, ""))
	f("no valid line", keysFile(t, "# only a comment\nalice:short\nbad line\n"))
	f("unreadable", t.TempDir()) // a directory
}

func TestAllowNoKeysFailsOpen(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{
		KeysFile:    filepath.Join(t.TempDir(), "missing.txt"),
		AllowNoKeys: true,
		Upstreams:   []string{startUpstream(t, up.handler(200, "{}"))},
	})
	if resp, _ := do(t, "GET", g.url+"/v1/models", "", ""); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if l := g.logLines(t)[0]; !strings.HasSuffix(l, " | no-keys-configured | GET /v1/models | 200") {
		t.Errorf("log line %q", l)
	}
}

func TestReload(t *testing.T) {
	up := &seen{}
	path := keysFile(t, "bob:"+keyBob+" rpm=3\n")
	g := startGateway(t, server.Config{KeysFile: path, Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	get := func(key string) int {
		t.Helper()
		resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+key, "")
		return resp.StatusCode
	}
	get(keyBob)
	get(keyBob)

	// A bad file keeps the last good keys.
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); !errors.Is(err, server.ErrNoKeys) {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if c := get(keyBob); c != 200 {
		t.Fatalf("after a bad reload bob gets %d", c)
	}

	// bob stays (his 3 used requests are remembered), alice arrives.
	if err := os.WriteFile(path, []byte("bob:"+keyBob+" rpm=3\nalice:"+keyAlice+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if c := get(keyBob); c != 429 {
		t.Fatalf("bob's window was lost on reload: %d", c)
	}
	if c := get(keyAlice); c != 200 {
		t.Fatalf("new key: %d", c)
	}

	// bob removed: refused at once.
	if err := os.WriteFile(path, []byte("alice:"+keyAlice+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if c := get(keyBob); c != 401 {
		t.Fatalf("removed key: %d", c)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	keys := defaultKeys(t)
	f := func(cfg server.Config) {
		t.Helper()
		if cfg.KeysFile == "" {
			cfg.KeysFile = keys
		}
		if _, err := server.New(cfg); err == nil {
			t.Fatalf("New(%+v) succeeded", cfg)
		}
	}
	f(server.Config{KeysFile: filepath.Join(t.TempDir(), "missing.txt")})
	f(server.Config{Upstreams: []string{"ftp://x"}})
	f(server.Config{Upstreams: []string{"http://"}})
	f(server.Config{Upstreams: []string{"http://u:p@host"}})
	f(server.Config{Upstreams: []string{"http://h"}, DefaultRPM: -1})
	f(server.Config{Upstreams: []string{"http://h"}, AccessLog: "/proc/forbidden/x.log"})
}

// TestUpstreamPathPrefix: a base path in UPSTREAM_URL is prepended for the
// upstream, while the access log keeps the client's path (regression: the
// log showed the prefixed one).
func TestUpstreamPathPrefix(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}")) + "/api/"}})
	if resp, _ := do(t, "GET", g.url+"/v1/models?x=1", "Bearer "+keyAlice, ""); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := string(up.last(t).Header.RequestURI()); got != "/api/v1/models?x=1" {
		t.Errorf("upstream got %q, want /api/v1/models?x=1", got)
	}
	if l := g.logLines(t)[0]; !strings.HasSuffix(l, " | alice | GET /v1/models | 200") {
		t.Errorf("log line %q", l)
	}
}

// startMock serves a mockupstream.Mock configured by cfg on a loopback
// port until the test ends, and returns it with its URL.
func startMock(t *testing.T, cfg mockupstream.Config) (*mockupstream.Mock, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mock := mockupstream.New(cfg)
	go mock.Serve(ln)
	t.Cleanup(func() { mock.Shutdown() })
	return mock, "http://" + ln.Addr().String()
}
