package server_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/limiter"
	"github.com/authgate/authgate/server"
)

// keySet builds an in-memory key set from keys-file lines.
func keySet(t *testing.T, lines ...string) *auth.KeySet {
	t.Helper()
	ks, warns, err := auth.Parse(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil || len(warns) > 0 {
		t.Fatalf("key set: %v %v", warns, err)
	}
	return ks
}

// swappableKeys is a KeySource whose answer the test sets.
type swappableKeys struct {
	mu   sync.Mutex
	keys *auth.KeySet
	err  error
}

func (s *swappableKeys) set(ks *auth.KeySet, err error) {
	s.mu.Lock()
	s.keys, s.err = ks, err
	s.mu.Unlock()
}

func (s *swappableKeys) LoadKeys() (*auth.KeySet, []*auth.LineError, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, nil, s.err
}

func (s *swappableKeys) String() string { return "test-source" }

func TestKeySource(t *testing.T) {
	src := &swappableKeys{}
	src.set(keySet(t, "alice:"+keyAlice), nil)
	up := &seen{}
	g := startGateway(t, server.Config{KeySource: src, KeysFile: "/nonexistent/ignored", Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	get := func(key string) int {
		t.Helper()
		resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+key, "")
		return resp.StatusCode
	}
	if c := get(keyAlice); c != 200 {
		t.Fatalf("alice from the source: %d", c)
	}
	src.set(keySet(t, "bob:"+keyBob), nil)
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if a, b := get(keyAlice), get(keyBob); a != 401 || b != 200 {
		t.Fatalf("after reload: alice %d bob %d, want 401 200", a, b)
	}
	// A failing or empty source keeps the keys in force.
	src.set(nil, errors.New("backend down"))
	if err := g.Reload(); !errors.Is(err, server.ErrNoKeys) || !strings.Contains(err.Error(), "test-source") {
		t.Fatalf("Reload with a failing source: %v", err)
	}
	src.set(keySet(t), nil)
	if err := g.Reload(); !errors.Is(err, server.ErrNoKeys) {
		t.Fatalf("Reload with an empty source: %v", err)
	}
	if c := get(keyBob); c != 200 {
		t.Fatalf("bob after failed reloads: %d", c)
	}
	// New fails closed on a source without keys.
	if _, err := server.New(server.Config{KeySource: src, Upstreams: []string{"http://127.0.0.1:1"}}); !errors.Is(err, server.ErrNoKeys) {
		t.Fatalf("New with an empty source: %v", err)
	}
}

// everyOther admits a key_id's odd requests and refuses its even ones,
// recording what the gateway asked.
type everyOther struct {
	mu     sync.Mutex
	n      map[string]int
	limits []string
	calls  atomic.Int32
}

func (l *everyOther) Allow(keyID string, limit int, now time.Time) (limiter.Result, error) {
	l.calls.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[keyID]++
	l.limits = append(l.limits, fmt.Sprintf("%s:%d", keyID, limit))
	if l.n[keyID]%2 == 1 {
		return limiter.Result{Allowed: true, Limit: limit, Remaining: 7, Reset: 2500 * time.Millisecond}, nil
	}
	return limiter.Result{Allowed: false, Limit: limit, Remaining: 0, Reset: 1500 * time.Millisecond}, nil
}

func TestCustomLimiter(t *testing.T) {
	lim := &everyOther{n: map[string]int{}}
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Limiter: lim, Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})

	resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyBob, "")
	if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-remaining-requests") != "7" ||
		resp.Header.Get("x-ratelimit-reset-requests") != "2.5s" || resp.Header.Get("x-ratelimit-limit-requests") != "3" {
		t.Fatalf("admitted: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body := do(t, "GET", g.url+"/v1/models", "Bearer "+keyBob, "")
	if resp.StatusCode != 429 || !strings.Contains(body, "Rate limit exceeded for bob") ||
		resp.Header.Get("retry-after-ms") != "1500" || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("refused: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// Unauthenticated requests never reach the limiter.
	do(t, "GET", g.url+"/v1/models", "Bearer sk-unknown-0123456789abcdef", "")
	do(t, "GET", g.url+"/v1/models", "", "")
	if n := lim.calls.Load(); n != 2 {
		t.Fatalf("limiter called %d times, want 2", n)
	}
	if up.count() != 1 {
		t.Fatalf("upstream saw %d requests, want 1", up.count())
	}
	if got := strings.Join(lim.limits, " "); got != "bob:3 bob:3" {
		t.Errorf("limiter asked %q, want bob's key_id and rpm=3", got)
	}
}
