package main

// REDIS_URL end to end: authgate serve processes sharing limits through a
// real redis-server (docs/operations.md#several-replicas).

import (
	"strings"
	"sync"
	"testing"

	"github.com/authgate/authgate/internal/redistest"
)

// Two replicas, one Redis: 60 concurrent requests of a key_id with rpm=20
// spread over both admit exactly 20. With Redis killed they keep serving
// (failure mode local), without waiting for REDIS_TIMEOUT, and log the
// failure once; when Redis returns, /readyz says so.
func TestServeReplicasShareLimitsThroughRedis(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	key, other := testKey(t), testKey(t)
	keys := "team:" + key + " rpm=20\nsolo:" + other + "\n"
	var replicas []*proc
	for i := 0; i < 2; i++ {
		// A timeout (a minute) longer than the test client's (waitLimit): a
		// request that waited for it fails the test, with no clock read.
		environ, _ := gatewayEnv(t, up, &keys, map[string]string{"REDIS_URL": srv.URL(), "REDIS_TIMEOUT": "1m"})
		replicas = append(replicas, startServe(t, environ))
	}
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		wg    sync.WaitGroup
	)
	for i := 0; i < 60; i++ {
		p := replicas[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := p.try("POST", "/v1/chat/completions", "Bearer "+key, chatBody)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			codes[r.status]++
		}()
	}
	wg.Wait()
	if codes[200] != 20 || codes[429] != 40 || up.requests(t, key) != 20 {
		t.Fatalf("statuses %v, upstream saw %d: want exactly 20 admitted over both replicas", codes, up.requests(t, key))
	}

	srv.Kill()
	for _, p := range replicas {
		// team is known to be at its limit: refused locally, without
		// asking Redis, until its oldest request leaves the window.
		if r := p.do("GET", "/v1/models", "Bearer "+key, ""); r.status != 429 {
			t.Fatalf("team with Redis down: %d, want 429", r.status)
		}
		// solo needs Redis: decided by this replica's own window.
		for i := 0; i < 3; i++ {
			if r := p.do("GET", "/v1/models", "Bearer "+other, ""); r.status != 200 {
				t.Fatalf("solo with Redis down: %d", r.status)
			}
		}
		if r := p.do("GET", "/readyz", "", ""); r.status != 200 || !strings.Contains(r.body, "failure mode local") {
			t.Fatalf("/readyz with Redis down: %d %q", r.status, r.body)
		}
		if !p.stderr.waitFor("rate limiter failed", 1, waitLimit) {
			t.Fatalf("no failure logged:\n%s", p.stderr.String())
		}
	}
	srv.Restart()
	for _, p := range replicas {
		eventually(t, "/readyz ok after Redis returned", func() bool { return p.do("GET", "/readyz", "", "").body == "ok" })
		if r := p.do("GET", "/v1/models", "Bearer "+other, ""); r.status != 200 {
			t.Fatalf("after Redis returned: %d", r.status)
		}
		if n := strings.Count(p.stderr.String(), "rate limiter failed"); n != 1 {
			t.Fatalf("failure logged %d times, want once per transition:\n%s", n, p.stderr.String())
		}
		p.checkStderrClean(key, other)
	}
}

// A Redis that refuses the password stops serve at start with exit 2,
// naming REDIS_URL and not the password.
func TestServeRedisWrongPasswordExits2(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "right-password")
	up := startUpstream(t)
	keys := "team:" + testKey(t) + "\n"
	environ, _ := gatewayEnv(t, up, &keys, map[string]string{"REDIS_URL": "redis://:hunter2secret@" + srv.Addr})
	r := runCLI(t, []string{"serve"}, environ, "")
	if r.code != exitUsage || !strings.Contains(r.stderr, "REDIS_URL") || strings.Contains(r.stderr, "hunter2secret") {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 naming REDIS_URL without the password", r.code, r.stderr)
	}
}
