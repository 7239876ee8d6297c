package main

// REDIS_URL end to end: authgate serve processes sharing limits through a
// real redis-server (docs/operations.md#several-replicas).

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authgate/authgate/internal/redistest"
	"github.com/authgate/authgate/limiter/redis"
	"github.com/authgate/authgate/mockupstream"
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

// A replica killed with SIGKILL mid-stream cannot give back its requests'
// concurrency slots and token reservations in Redis; they expire within
// REDIS_LEASE (1.5 s here; the test would wait 15 s, longer than it
// polls, for the default).
func TestServeKilledReplicaLeaksNothingPastTheLease(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstreamWith(t, mockupstream.Config{StreamChunks: 10000, ChunkDelay: 20 * time.Millisecond})
	key := testKey(t)
	keys := "team:" + key + " concurrency=2 tpm=1000000\n"
	var replicas []*proc
	for range 2 {
		environ, _ := gatewayEnv(t, up, &keys, map[string]string{"REDIS_URL": srv.URL(), "REDIS_TIMEOUT": "1m", "REDIS_LEASE": "1500ms"})
		replicas = append(replicas, startServe(t, environ))
	}
	doomed, survivor := replicas[0], replicas[1]
	// Two streams through the doomed replica hold both slots.
	for range 2 {
		req, _ := http.NewRequest("POST", doomed.base+"/v1/chat/completions", strings.NewReader(`{"stream":true,"messages":[]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := doomed.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if _, err := io.ReadFull(resp.Body, make([]byte, 20)); resp.StatusCode != 200 || err != nil {
			t.Fatalf("stream: %d, %v", resp.StatusCode, err)
		}
	}
	r, err := redis.New(redis.Config{URL: srv.URL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	store := redis.NewTokens(r, redis.TokensConfig{})
	defer store.Close()
	u, err := store.Usage("team")
	if err != nil || u.InFlight != 2 || u.Reservations != 2 {
		t.Fatalf("Redis holds %+v (%v), want the two streams' slots and reservations", u, err)
	}
	// The slots are the key_id's, whichever replica holds them.
	if got := survivor.do("POST", "/v1/chat/completions", "Bearer "+key, chatBody); got.status != 429 || !strings.Contains(got.body, "concurrency_limit_exceeded") {
		t.Fatalf("a third request while two streams run: %d %s, want 429 concurrency_limit_exceeded", got.status, got.body)
	}
	doomed.signal(syscall.SIGKILL)
	doomed.wait(waitLimit)
	eventually(t, "the killed replica's slots and reservations expire", func() bool {
		u, err := store.Usage("team")
		return err == nil && u.InFlight == 0 && u.Reservations == 0 && u.TokensReserved == 0
	})
	if got := survivor.do("POST", "/v1/chat/completions", "Bearer "+key, chatBody); got.status != 200 {
		t.Fatalf("after the lease: %d %s, want 200", got.status, got.body)
	}
	survivor.checkStderrClean(key)
}
