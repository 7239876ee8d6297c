package server_test

// Limits shared through a real Redis (docs/operations.md#several-replicas): several
// gateways, one redis-server started by the test on a loopback port,
// killed, paused and restarted mid-test.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authgate/authgate/internal/redistest"
	"github.com/authgate/authgate/limiter/redis"
	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

const keyDave = "sk-dave-0123456789abcdefgh"

func redisKeys(t *testing.T) string {
	return keysFile(t, "alice:"+keyAlice+" rpm=2\nbob:"+keyBob+" rpm=3\ndave:"+keyDave+" rpm=30\n")
}

// redisGateway starts a gateway sharing limits through the Redis at url.
// Its Redis timeout is long (5 s), so that a loaded machine's slow round
// trip is not mistaken for an outage: the tests that want one kill or stop
// Redis.
func redisGateway(t *testing.T, url string, mode server.FailureMode, upstream string, window time.Duration) *gateway {
	t.Helper()
	return redisGatewayTimeout(t, url, mode, upstream, window, 5*time.Second)
}

func redisGatewayTimeout(t *testing.T, url string, mode server.FailureMode, upstream string, window, timeout time.Duration) *gateway {
	t.Helper()
	r, err := redis.New(redis.Config{URL: url, Timeout: timeout, Window: window})
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	t.Cleanup(r.Close)
	return startGateway(t, server.Config{
		KeysFile:           redisKeys(t),
		Limiter:            r,
		LimiterFailureMode: mode,
		RateWindow:         window,
		Upstreams:          []string{upstream},
	})
}

// Three gateways, 120 concurrent requests for dave (rpm=30) spread over
// them: exactly 30 reach the upstream, every other one is a 429 with its
// retry headers, and the admitted ones report 30 distinct remaining counts.
// Failure mode closed: a decision Redis did not make would be a 503 here,
// never an admission.
func TestRedisLimitsSharedByReplicas(t *testing.T) {
	srv := redistest.Start(t)
	up := &seen{}
	upURL := startUpstream(t, up.handler(200, "{}"))
	var gws []*gateway
	for i := 0; i < 3; i++ {
		gws = append(gws, redisGateway(t, srv.URL(), server.FailureClosed, upURL, 0))
	}
	var (
		mu        sync.Mutex
		codes     = map[int]int{}
		remaining []string
		wg        sync.WaitGroup
		start     = make(chan struct{})
	)
	for i := 0; i < 120; i++ {
		g := gws[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, _ := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyDave, "{}")
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			switch resp.StatusCode {
			case 200:
				remaining = append(remaining, resp.Header.Get("x-ratelimit-remaining-requests"))
			case 429:
				ms, err := strconv.Atoi(resp.Header.Get("retry-after-ms"))
				if err != nil || ms <= 0 || ms > 60000 || resp.Header.Get("x-ratelimit-remaining-requests") != "0" {
					t.Errorf("429 headers: %v", resp.Header)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if codes[200] != 30 || codes[429] != 90 || up.count() != 30 {
		t.Fatalf("statuses %v, upstream saw %d: want exactly 30 admitted and 90 refused", codes, up.count())
	}
	slices.Sort(remaining)
	if remaining = slices.Compact(remaining); len(remaining) != 30 {
		t.Fatalf("%d distinct remaining counts among the admitted, want 30", len(remaining))
	}
	// Every replica reports the shared state: the next request is refused
	// on each.
	for i, g := range gws {
		if resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyDave, ""); resp.StatusCode != 429 {
			t.Fatalf("gateway %d after the limit: %d", i, resp.StatusCode)
		}
	}
}

// ageWindow moves every admission recorded for keyID in the Redis at srv
// back by d, as if d had passed on Redis's clock, which decides (a gateway
// passes no time of its own to the script).
func ageWindow(t *testing.T, srv *redistest.Server, keyID string, d time.Duration) {
	t.Helper()
	const script = "for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do " +
		"redis.call('ZINCRBY', KEYS[1], -tonumber(ARGV[1]), m) end return redis.call('ZCARD', KEYS[1])"
	out, err := srv.Do(fmt.Sprintf("EVAL %q 1 %s %d", script, redis.DefaultKeyPrefix+keyID, d.Microseconds()))
	if err != nil || !strings.HasPrefix(out, ":") || out == ":0" {
		t.Fatalf("moving %s's admissions back: %q, %v", keyID, out, err)
	}
}

// The window's boundary end to end: a refused request's retry-after-ms is
// when its slot frees, on Redis's clock, for every replica. Instead of
// waiting most of a minute, the test moves the admissions back in Redis,
// as if the time had passed there; each check is asked of a replica that
// was never refused, so that Redis decides, not a replica's local
// pre-check. (The boundary to the microsecond, and the pre-check's, are
// limiter/redis's tests, at fixed instants.)
func TestRedisWindowBoundary(t *testing.T) {
	srv := redistest.Start(t)
	upURL := startUpstream(t, (&seen{}).handler(200, "{}"))
	replica := func() *gateway { return redisGateway(t, srv.URL(), "", upURL, 0) }
	a, b := replica(), replica()

	for i, g := range []*gateway{a, b} {
		resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyAlice, "")
		if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-remaining-requests") != strconv.Itoa(1-i) {
			t.Fatalf("request %d: %d %v", i+1, resp.StatusCode, resp.Header)
		}
	}
	resp, _ := do(t, "GET", a.url+"/v1/models", "Bearer "+keyAlice, "")
	ms, _ := strconv.Atoi(resp.Header.Get("retry-after-ms"))
	if resp.StatusCode != 429 || ms <= 0 || ms > 60000 || resp.Header.Get("Retry-After") != strconv.Itoa((ms+999)/1000) {
		t.Fatalf("third request: %d, retry-after-ms %d, Retry-After %q; want 429 within the window, Retry-After its seconds rounded up",
			resp.StatusCode, ms, resp.Header.Get("Retry-After"))
	}
	retry := time.Duration(ms) * time.Millisecond
	// Half of it passed: still refused, by Redis...
	ageWindow(t, srv, "alice", retry/2)
	if resp, _ := do(t, "GET", replica().url+"/v1/models", "Bearer "+keyAlice, ""); resp.StatusCode != 429 {
		t.Fatalf("half of retry-after-ms later: %d, want 429", resp.StatusCode)
	}
	// ...and admitted once all of it has.
	ageWindow(t, srv, "alice", retry-retry/2)
	if resp, _ := do(t, "GET", replica().url+"/v1/models", "Bearer "+keyAlice, ""); resp.StatusCode != 200 {
		t.Fatalf("retry-after-ms later: %d, want 200", resp.StatusCode)
	}
}

// Each failure mode with Redis killed mid-test, and recovery when it comes
// back (empty, as a restarted Redis without persistence is).
func TestRedisFailureModes(t *testing.T) {
	for _, tc := range []struct {
		mode server.FailureMode
		// statuses of bob's (rpm=3) next 3 requests with Redis down, after
		// 2 admitted while it was up
		down  []int
		ready int
	}{
		{server.FailureLocal, []int{200, 429, 429}, 200},
		{server.FailureOpen, []int{200, 200, 200}, 200},
		{server.FailureClosed, []int{503, 503, 503}, 503},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			srv := redistest.Start(t)
			up := &seen{}
			g := redisGateway(t, srv.URL(), tc.mode, startUpstream(t, up.handler(200, "{}")), 0)
			admin := startAdmin(t, g.Gateway)
			for i := 0; i < 2; i++ {
				if resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyBob, ""); resp.StatusCode != 200 {
					t.Fatalf("Redis up, request %d: %d", i, resp.StatusCode)
				}
			}

			calls := func() (calls, failures string) {
				samples, _ := scrape(t, admin)
				return samples["authgate_redis_calls_total"], samples["authgate_redis_failures_total"]
			}
			callsUp, failuresUp := calls()

			srv.Kill()
			var got []int
			for range tc.down {
				resp, body := do(t, "GET", g.url+"/v1/models", "Bearer "+keyBob, "")
				if resp.StatusCode == 503 && !strings.Contains(body, `"code":"rate_limiter_unavailable"`) {
					t.Fatalf("503 body %s", body)
				}
				got = append(got, resp.StatusCode)
			}
			if !slices.Equal(got, tc.down) {
				t.Fatalf("with Redis down: %v, want %v", got, tc.down)
			}
			code, body := readyz(t, g.url)
			if code != tc.ready || !strings.Contains(body, "failure mode "+string(tc.mode)) {
				t.Fatalf("/readyz with Redis down: %d %q", code, body)
			}
			samples, _ := scrape(t, admin)
			if samples["authgate_limiter_up"] != "0" || samples[`authgate_limiter_fallback_total{mode="`+string(tc.mode)+`"}`] != "3" {
				t.Fatalf("metrics with Redis down: %v", family(samples, "authgate_limiter"))
			}
			// The first request found Redis dead; the next ones did not
			// ask it (no request waits on a dead Redis).
			if c, f := calls(); c != plusOne(t, callsUp) || f != plusOne(t, failuresUp) {
				t.Fatalf("Redis calls and failures %s, %s with Redis down, from %s, %s: want one more of each", c, f, callsUp, failuresUp)
			}

			srv.Restart()
			eventually(t, "/readyz ok after Redis returned", func() bool {
				code, body := readyz(t, g.url)
				return code == 200 && body == "ok"
			})
			// Redis decides again: it restarted empty, so bob has his 3.
			for i := 0; i < 4; i++ {
				resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyBob, "")
				if want := []int{200, 200, 200, 429}[i]; resp.StatusCode != want {
					t.Fatalf("after recovery, request %d: %d, want %d", i, resp.StatusCode, want)
				}
			}
			if samples, _ := scrape(t, admin); samples["authgate_limiter_up"] != "1" ||
				samples["authgate_redis_calls_total"] == "0" {
				t.Fatalf("metrics after recovery: %v", family(samples, "authgate_"))
			}
		})
	}
}

// A hung Redis (stopped, connections open) costs one request the timeout
// (100 ms here; limiter/redis's TestRedisHungTimesOut bounds that wait),
// then falls back locally; the requests after it do not ask Redis at all.
func TestRedisHungDoesNotHangRequests(t *testing.T) {
	srv := redistest.Start(t)
	g := redisGatewayTimeout(t, srv.URL(), "", startUpstream(t, (&seen{}).handler(200, "{}")), 0, 100*time.Millisecond)
	admin := startAdmin(t, g.Gateway)
	do(t, "GET", g.url+"/v1/models", "Bearer "+keyDave, "")
	samples, _ := scrape(t, admin)
	callsUp := samples["authgate_redis_calls_total"]
	srv.Pause()
	defer srv.Resume()
	for i := 0; i < 5; i++ {
		start := time.Now()
		resp, _ := do(t, "GET", g.url+"/v1/models", "Bearer "+keyDave, "")
		t.Logf("request %d with Redis hung: %d in %v", i, resp.StatusCode, time.Since(start))
		if resp.StatusCode != 200 {
			t.Fatalf("request %d with Redis hung: %d, want 200 (local fallback)", i, resp.StatusCode)
		}
	}
	samples, _ = scrape(t, admin)
	if c := samples["authgate_redis_calls_total"]; c != plusOne(t, callsUp) || samples["authgate_redis_failures_total"] != "1" {
		t.Fatalf("Redis calls %s (from %s), failures %s with Redis hung: want the first request's only",
			c, callsUp, samples["authgate_redis_failures_total"])
	}
	srv.Resume()
	eventually(t, "/readyz ok after Redis resumed", func() bool {
		_, body := readyz(t, g.url)
		return body == "ok"
	})
}

// plusOne returns the metric value s plus one.
func plusOne(t *testing.T, s string) string {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("metric value %q: %v", s, err)
	}
	return strconv.Itoa(n + 1)
}

// Token limits and concurrency slots shared through Redis (a TokenStore
// alone: the request windows stay local) follow REDIS_FAILURE_MODE when
// Redis is gone: local decides with this gateway's own token limits, open
// admits whatever the limits say, closed answers 503.
func TestRedisTokenFailureModes(t *testing.T) {
	_, upURL := startMock(t, mockupstream.Config{})
	const (
		small = `{"max_tokens":100,"messages":[]}`  // reserves 133 of tpm=300
		large = `{"max_tokens":1000,"messages":[]}` // more than tpm=300 alone
	)
	for _, tc := range []struct {
		mode                 server.FailureMode
		small, large, concur int // statuses with Redis down
	}{
		{server.FailureLocal, 200, 429, 200},
		{server.FailureOpen, 200, 200, 200},
		{server.FailureClosed, 503, 503, 503},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			srv := redistest.Start(t)
			r, err := redis.New(redis.Config{URL: srv.URL(), Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			tk := redis.NewTokens(r, redis.TokensConfig{})
			t.Cleanup(func() { tk.Close(); r.Close() })
			g := startGateway(t, server.Config{
				KeysFile:           keysFile(t, "alice:"+keyAlice+" tpm=300\nbob:"+keyBob+" concurrency=1\n"),
				TokenStore:         tk,
				LimiterFailureMode: tc.mode,
				Upstreams:          []string{upURL},
			})
			chat := func(key, body string) (int, string) {
				resp, b := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+key, body)
				return resp.StatusCode, b
			}
			if s, b := chat(keyAlice, large); s != 429 || !strings.Contains(b, "Request too large for alice") {
				t.Fatalf("Redis up, a request over tpm: %d %s", s, b)
			}
			if s, _ := chat(keyAlice, small); s != 200 {
				t.Fatalf("Redis up, small request: %d", s)
			}
			if u, err := tk.Usage("alice"); err != nil || u.WindowTokens == 0 {
				t.Fatalf("Redis up: alice's usage in Redis %+v, %v: want the small request's tokens", u, err)
			}
			srv.Kill()
			got := [3]int{}
			got[0], _ = chat(keyAlice, small)
			got[1], _ = chat(keyAlice, large)
			var body string
			got[2], body = chat(keyBob, small)
			if got != [3]int{tc.small, tc.large, tc.concur} {
				t.Fatalf("with Redis down: %v, want %v", got, [3]int{tc.small, tc.large, tc.concur})
			}
			if tc.mode == server.FailureClosed && !strings.Contains(body, `"code":"rate_limiter_unavailable"`) {
				t.Fatalf("503 body %s", body)
			}
		})
	}
}
