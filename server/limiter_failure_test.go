package server_test

// What a request gets when the configured Limiter cannot decide
// (REDIS_FAILURE_MODE, docs/operations.md#redis-failure), with a limiter that
// fails on command. The same modes against a real Redis killed and
// restarted are in redis_test.go.

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authgate/authgate/limiter"
	"github.com/authgate/authgate/server"
)

// switchable admits everything with Remaining 99 while up, and fails every
// decision while down.
type switchable struct{ down atomic.Bool }

var errStoreDown = errors.New("store unreachable")

func (l *switchable) Allow(keyID string, limit int, now time.Time) (limiter.Result, error) {
	if l.down.Load() {
		return limiter.Result{}, errStoreDown
	}
	return limiter.Result{Allowed: true, Limit: limit, Remaining: 99, Reset: time.Second}, nil
}

// failureGateway starts a gateway with a switchable limiter in mode and
// returns it with its admin URL and its operational log.
func failureGateway(t *testing.T, mode server.FailureMode) (*gateway, *switchable, string, *syncBuffer) {
	t.Helper()
	lim := &switchable{}
	logs := &syncBuffer{}
	up := &seen{}
	g := startGateway(t, server.Config{
		KeysFile:           defaultKeys(t),
		Limiter:            lim,
		LimiterFailureMode: mode,
		Upstreams:          []string{startUpstream(t, up.handler(200, "{}"))},
		Logger:             slog.New(slog.NewTextHandler(logs, nil)),
	})
	return g, lim, startAdmin(t, g.Gateway), logs
}

func readyz(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, body := do(t, "GET", url+"/readyz", "", "")
	return resp.StatusCode, body
}

func TestLimiterFailureLocal(t *testing.T) {
	g, lim, admin, logs := failureGateway(t, "") // the default is local
	// While the limiter decides, bob (rpm=3) is admitted beyond his local
	// limit, and this process's windows record what it admitted.
	for i := 0; i < 5; i++ {
		if resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyBob, ""); resp.StatusCode != 200 ||
			resp.Header.Get("x-ratelimit-remaining-requests") != "99" {
			t.Fatalf("limiter up, request %d: %d, remaining %q", i, resp.StatusCode, resp.Header.Get("x-ratelimit-remaining-requests"))
		}
	}
	if code, body := readyz(t, g.url); code != 200 || body != "ok" {
		t.Fatalf("/readyz with the limiter up: %d %q", code, body)
	}

	lim.down.Store(true)
	// Fallback on the local windows: bob's already hold his 3 admissions.
	resp, body := do(t, "GET", g.url+"/v1/models", "Bearer "+keyBob, "")
	if resp.StatusCode != 429 || !strings.Contains(body, "Rate limit exceeded for bob") {
		t.Fatalf("bob with the limiter down: %d %s, want 429 from his local window", resp.StatusCode, body)
	}
	for i := 0; i < 3; i++ {
		resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyAlice, "")
		if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-limit-requests") != "100" ||
			resp.Header.Get("x-ratelimit-remaining-requests") != []string{"99", "98", "97"}[i] {
			t.Fatalf("alice with the limiter down, request %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
	code, body := readyz(t, g.url)
	if code != 200 || !strings.Contains(body, "failure mode local") {
		t.Fatalf("/readyz with the limiter down: %d %q, want 200 naming the failure mode", code, body)
	}
	samples, _ := scrape(t, admin)
	if samples["authgate_limiter_up"] != "0" || samples[`authgate_limiter_fallback_total{mode="local"}`] != "4" {
		t.Fatalf("metrics with the limiter down: up %q fallback %q, want 0 and 4",
			samples["authgate_limiter_up"], samples[`authgate_limiter_fallback_total{mode="local"}`])
	}

	lim.down.Store(false)
	if resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyBob, ""); resp.StatusCode != 200 {
		t.Fatalf("bob after recovery: %d, want 200 (the shared limiter decides again)", resp.StatusCode)
	}
	if code, body := readyz(t, g.url); code != 200 || body != "ok" {
		t.Fatalf("/readyz after recovery: %d %q", code, body)
	}
	if samples, _ := scrape(t, admin); samples["authgate_limiter_up"] != "1" {
		t.Fatalf("authgate_limiter_up after recovery = %q", samples["authgate_limiter_up"])
	}
	// One line per transition, however many requests failed.
	out := logs.String()
	if n := strings.Count(out, "rate limiter failed"); n != 1 || !strings.Contains(out, "failure_mode=local") ||
		!strings.Contains(out, errStoreDown.Error()) {
		t.Fatalf("%d failure lines, want 1 naming the mode and error:\n%s", n, out)
	}
	if n := strings.Count(out, "rate limiter recovered"); n != 1 {
		t.Fatalf("%d recovery lines, want 1:\n%s", n, out)
	}
}

func TestLimiterFailureOpen(t *testing.T) {
	g, lim, admin, _ := failureGateway(t, server.FailureOpen)
	lim.down.Store(true)
	// Admitted beyond bob's limit of 3, with his local window's headers.
	for i := 0; i < 5; i++ {
		if resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyBob, ""); resp.StatusCode != 200 ||
			resp.Header.Get("x-ratelimit-limit-requests") != "3" {
			t.Fatalf("open, request %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
	if code, body := readyz(t, g.url); code != 200 || !strings.Contains(body, "failure mode open") {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	if samples, _ := scrape(t, admin); samples[`authgate_limiter_fallback_total{mode="open"}`] != "5" {
		t.Fatalf("fallback count %q, want 5", samples[`authgate_limiter_fallback_total{mode="open"}`])
	}
}

func TestLimiterFailureClosed(t *testing.T) {
	g, lim, _, _ := failureGateway(t, server.FailureClosed)
	lim.down.Store(true)
	resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}")
	want := `{"error":{"message":"The rate limiter is unavailable","type":"api_error","param":null,"code":"rate_limiter_unavailable"}}`
	if resp.StatusCode != 503 || body != want || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("closed: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// Unauthenticated requests are still 401: the limiter is not asked.
	if resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer sk-unknown-0123456789abcdef", ""); resp.StatusCode != 401 {
		t.Fatalf("unknown key: %d", resp.StatusCode)
	}
	if code, body := readyz(t, g.url); code != 503 || !strings.Contains(body, "failure mode closed") {
		t.Fatalf("/readyz: %d %q, want 503 naming the mode", code, body)
	}
	// The net/http adapter answers the same.
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app")) })
	hs := httptest.NewServer(g.WrapHTTP(app))
	defer hs.Close()
	if resp, body := do(t, "GET", hs.URL+"/v1/models", "Bearer "+keyAlice, ""); resp.StatusCode != 503 || body != want {
		t.Fatalf("WrapHTTP closed: %d %s", resp.StatusCode, body)
	}

	lim.down.Store(false)
	if resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyAlice, ""); resp.StatusCode != 200 {
		t.Fatalf("after recovery: %d", resp.StatusCode)
	}
	if code, _ := readyz(t, g.url); code != 200 {
		t.Fatalf("/readyz after recovery: %d", code)
	}
	lines := g.logLines(t)
	if !strings.HasSuffix(lines[0], "| alice | POST /v1/chat/completions | 503") {
		t.Fatalf("access log line %q, want alice's 503", lines[0])
	}
}

func TestFailureModeConfig(t *testing.T) {
	for _, s := range []string{"local", "open", "closed"} {
		if m, err := server.ParseFailureMode(s); err != nil || string(m) != s {
			t.Errorf("ParseFailureMode(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "LOCAL", "fallback"} {
		if _, err := server.ParseFailureMode(s); err == nil {
			t.Errorf("ParseFailureMode(%q): no error", s)
		}
	}
	_, err := server.New(server.Config{KeysFile: defaultKeys(t), LimiterFailureMode: "sometimes"})
	if err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Fatalf("New with a bad failure mode: %v", err)
	}
}
