package server_test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// TestTokenLimits: a key_id with tpm=100 reserves each request's prompt
// bound (its body's bytes) plus its max_tokens at admission, and the
// upstream's usage replaces the reservation at the end: requests are
// admitted while counted plus reserved plus their own fit, then refused
// with OpenAI's message, a retry time and the token headers; a request
// whose reservation alone is over the limit is "too large", with no retry
// time. Concurrent requests never overshoot: admitted reservations in
// flight count. /limits shows the window.
func TestTokenLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	served := 0 // requests that reached the upstream
	mock := mockupstream.New(mockupstream.Config{})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			mu.Lock()
			served++
			mu.Unlock()
		}
		mock.Handler(ctx)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	g := startGateway(t, server.Config{
		KeysFile:  keysFile(t, "alice:"+keyAlice+"  tpm=100\nbob:"+keyBob+"\n"),
		Upstreams: []string{"http://" + ln.Addr().String()},
	})
	body := `{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	post := func(key, body string) (*http.Response, string) {
		return do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+key, body)
	}
	reserve := int64(len(body) + 10)
	// The mock's usage: a token per four bytes of the body, and 5 words.
	used := int64((len(body)+3)/4 + 5)
	// Admitted while what is counted plus this reservation fits.
	var counted int64
	n := 0
	for ; counted+reserve <= 100; n++ {
		resp, b := post(keyAlice, body)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", n+1, resp.StatusCode, b)
		}
		if got := resp.Header.Get("x-ratelimit-limit-tokens"); got != "100" {
			t.Fatalf("x-ratelimit-limit-tokens %q", got)
		}
		// What the limit left after this request's reservation.
		if got, want := resp.Header.Get("x-ratelimit-remaining-tokens"), strconv.FormatInt(100-counted-reserve, 10); got != want {
			t.Fatalf("request %d: x-ratelimit-remaining-tokens %q, want %s", n+1, got, want)
		}
		counted += used
	}
	if n < 2 {
		t.Fatalf("only %d requests fit: the test needs a window that holds several", n)
	}
	resp, b := post(keyAlice, body)
	want := `{"error":{"message":"Rate limit reached for alice on tokens per min (TPM): Limit 100, Used ` + strconv.FormatInt(counted, 10) + `, Requested ` + strconv.FormatInt(reserve, 10) + `.`
	if resp.StatusCode != 429 || !strings.HasPrefix(b, want) || !strings.Contains(b, `"type":"tokens"`) || !strings.Contains(b, `"code":"rate_limit_exceeded"`) {
		t.Fatalf("over the limit: %d %s, want %s…", resp.StatusCode, b, want)
	}
	if ms, err := strconv.Atoi(resp.Header.Get("retry-after-ms")); err != nil || ms <= 0 || ms > 60_100 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("retry headers %q %q", resp.Header.Get("retry-after-ms"), resp.Header.Get("Retry-After"))
	}
	resp, b = post(keyAlice, `{"max_tokens":1000,"messages":[]}`)
	if resp.StatusCode != 429 || !strings.Contains(b, "Request too large for alice on tokens per min (TPM): Limit 100, Requested 1033.") || resp.Header.Get("retry-after-ms") != "" {
		t.Fatalf("too large: %d %s, retry-after-ms %q", resp.StatusCode, b, resp.Header.Get("retry-after-ms"))
	}
	// bob has no token limit.
	if resp, b := post(keyBob, body); resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-limit-tokens") != "" {
		t.Fatalf("bob: %d %s, token headers %q", resp.StatusCode, b, resp.Header.Get("x-ratelimit-limit-tokens"))
	}
	mu.Lock()
	if served != n+1 {
		t.Fatalf("%d requests reached the upstream, want %d (alice's admitted, and bob's)", served, n+1)
	}
	mu.Unlock()

	lj, _ := json.Marshal(g.Limits(time.Now()))
	lb := string(lj)
	var limits map[string]struct {
		Tokens   *int64 `json:"tokens_last_minute"`
		Reserved *int64 `json:"tokens_reserved"`
		TPM      int64  `json:"tpm"`
	}
	if err := json.Unmarshal([]byte(lb), &limits); err != nil {
		t.Fatal(err)
	}
	if a := limits["alice"]; a.Tokens == nil || *a.Tokens != counted || *a.Reserved != 0 || a.TPM != 100 || limits["bob"].Tokens != nil {
		t.Fatalf("/limits: %s", lb)
	}
	// Every reservation was an upper bound: nothing used beyond one.
	m := metricsOf(g)
	if v, ok := m[`authgate_tokens_over_reservation_total{key_id="alice"}`]; !ok || v != 0 {
		t.Fatalf("estimation error %v (present %v)", v, ok)
	}
	if v, ok := m[`authgate_requests_in_flight{key_id="alice"}`]; !ok || v != 0 {
		t.Fatalf("alice's requests in flight %v (present %v)", v, ok)
	}
}

// TestTokenLimitsConcurrent: requests in flight hold their reservations,
// so concurrent requests cannot overshoot the limit together: with
// tpm=100 and reservations of 71, one request at a time reaches the
// upstream (asserted inside it, while it holds them), the others are
// refused; once it ends with its usage, the next fits.
func TestTokenLimitsConcurrent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	inside, most := 0, 0
	release := make(chan struct{})
	arrived := make(chan struct{}, 16)
	mock := mockupstream.New(mockupstream.Config{})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsPost() { // the health check
			mock.Handler(ctx)
			return
		}
		mu.Lock()
		inside++
		most = max(most, inside)
		mu.Unlock()
		arrived <- struct{}{}
		<-release
		mock.Handler(ctx)
		mu.Lock()
		inside--
		mu.Unlock()
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	g := startGateway(t, server.Config{
		KeysFile:  keysFile(t, "alice:"+keyAlice+"  tpm=100\n"),
		Upstreams: []string{"http://" + ln.Addr().String()},
	})
	body := `{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	statuses := make(chan int, 8)
	first := make(chan int, 1)
	go func() {
		resp, _ := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, body)
		first <- resp.StatusCode
	}()
	<-arrived // the first request holds its reservation inside the upstream
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, body)
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 429 {
			t.Fatalf("a request beside one in flight: status %d, want 429", s)
		}
	}
	close(release)
	if s := <-first; s != 200 {
		t.Fatalf("the first request: %d", s)
	}
	if resp, b := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, body); resp.StatusCode != 200 {
		t.Fatalf("after the first ended with its usage: %d %s", resp.StatusCode, b)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 1 {
		t.Fatalf("%d requests inside the upstream at once, want 1", most)
	}
}

// TestTokenLimitsStream: a stream's reservation is held while it runs and
// replaced by its usage when it ends (asked for on the client's behalf).
func TestTokenLimitsStream(t *testing.T) {
	_, upURL := startMock(t, mockupstream.Config{StreamChunks: 3})
	g := startGateway(t, server.Config{
		KeysFile:  keysFile(t, "alice:"+keyAlice+"  tpm=1000\n"),
		Upstreams: []string{upURL},
	})
	resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, `{"stream":true,"max_tokens":50}`)
	if resp.StatusCode != 200 || strings.Contains(body, `"choices":[]`) || resp.Header.Get("x-ratelimit-limit-tokens") != "1000" {
		t.Fatalf("stream: %d %q, token headers %q", resp.StatusCode, body, resp.Header.Get("x-ratelimit-limit-tokens"))
	}
	var a accountsLimit
	pollUntil(t, "the stream's reservation reconciled", func() bool {
		lj, _ := json.Marshal(g.Limits(time.Now()))
		var m map[string]accountsLimit
		json.Unmarshal(lj, &m)
		a = m["alice"]
		return a.Reserved != nil && *a.Reserved == 0
	})
	// The mock's usage of the body sent up (include_usage added): a token
	// per four bytes, and the 3 content chunks.
	if a.Tokens == nil || *a.Tokens < 4 || *a.Tokens > 50 {
		t.Fatalf("tokens counted after the stream: %v", a.Tokens)
	}
}

// accountsLimit is what the tests read of a /limits entry.
type accountsLimit struct {
	Tokens   *int64 `json:"tokens_last_minute"`
	Reserved *int64 `json:"tokens_reserved"`
}

// TestTokensPerDaySurviveRestart: with a StateDir, a key_id's tokens of
// the day are saved on Close and read back by the next gateway, which
// refuses what would pass its tpd=; a state file that does not parse
// stops New with an error naming it.
func TestTokensPerDaySurviveRestart(t *testing.T) {
	if now := time.Now().UTC(); now.Truncate(24*time.Hour).Add(24*time.Hour).Sub(now) < 30*time.Second {
		t.Skip("within 30 s of UTC midnight: the day's count would restart mid-test")
	}
	_, upURL := startMock(t, mockupstream.Config{})
	dir, keys := t.TempDir(), keysFile(t, "alice:"+keyAlice+"  tpd=60\n")
	cfg := server.Config{KeysFile: keys, Upstreams: []string{upURL}, StateDir: dir}
	body := `{"max_tokens":5,"messages":[]}` // reserves 35, uses 8 + 5
	g := startGateway(t, cfg)
	for i := range 2 {
		if resp, b := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, body); resp.StatusCode != 200 {
			t.Fatalf("day 1, request %d: %d %s", i+1, resp.StatusCode, b)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g2 := startGateway(t, cfg)
	// 2 × 13 = 26 counted today: 26 + 35 > 60.
	resp, b := do(t, "POST", g2.url+"/v1/chat/completions", "Bearer "+keyAlice, body)
	if resp.StatusCode != 429 || !strings.Contains(b, "on tokens per day (TPD): Limit 60, Used 26, Requested 35.") {
		t.Fatalf("after a restart: %d %s", resp.StatusCode, b)
	}
	g2.Close()

	if err := os.WriteFile(filepath.Join(dir, "tokens-per-day.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("New with a broken state file: %v", err)
	}
}
