package server_test

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/redistest"
	"github.com/authgate/authgate/limiter/redis"
	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// TestTokenLimitsExact: one key_id with tpm=20000 and 200 concurrent
// streams with max_tokens=100, all in one window. The upstream's own
// tally of the usage it reported for the requests it served stays within
// the limit (every reservation is an upper bound, so the estimation error
// is zero), and the tokens the gateway recorded equal that tally: every
// completed stream metered exactly.
func TestTokenLimitsExact(t *testing.T) { tokenLimitsExact(t, 1, nil) }

// TestTokenLimitsExactSharedRedis: the same with the streams spread over
// four gateways sharing their limits through one Redis.
func TestTokenLimitsExactSharedRedis(t *testing.T) {
	url := redistest.Start(t).URL()
	tokenLimitsExact(t, 4, func(cfg *server.Config) { shareRedis(t, url, cfg) })
}

// shareRedis makes cfg's gateway share its limits through the Redis at
// url, on a connection of its own, as a replica does. Leases last an hour:
// a slot or reservation not given back stays held for the whole test.
func shareRedis(t *testing.T, url string, cfg *server.Config) *redis.Tokens {
	t.Helper()
	r, err := redis.New(redis.Config{URL: url, Timeout: 5 * time.Second, Window: cfg.RateWindow})
	if err != nil {
		t.Fatal(err)
	}
	tk := redis.NewTokens(r, redis.TokensConfig{Period: cfg.RateWindow, Lease: time.Hour})
	t.Cleanup(func() { tk.Close(); r.Close() })
	cfg.Limiter, cfg.TokenStore = r, tk
	return tk
}

func tokenLimitsExact(t *testing.T, replicas int, configure func(*server.Config)) {
	const (
		limit   = 20000
		streams = 200
		chunks  = 5
	)
	var tally atomic.Int64 // the usage the upstream reported
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mock := mockupstream.New(mockupstream.Config{StreamChunks: chunks, ChunkDelay: time.Millisecond})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			// The mock's usage: a prompt token per four bytes of the body
			// as received, a completion token per content chunk.
			tally.Add(int64(max(1, (len(ctx.PostBody())+3)/4) + chunks))
		}
		mock.Handler(ctx)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	keys := keysFile(t, "alice:"+keyAlice+"  tpm="+strconv.Itoa(limit)+" rpm=1000000\n")
	var gws []*gateway
	for range replicas {
		cfg := server.Config{KeysFile: keys, Upstreams: []string{"http://" + ln.Addr().String()}}
		if configure != nil {
			configure(&cfg)
		}
		gws = append(gws, startGateway(t, cfg))
	}
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for i := range streams {
		g := gws[i%replicas]
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(`{"stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+keyAlice)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case err != nil:
				t.Error(err)
			case resp.StatusCode == 200 && strings.HasSuffix(string(body), "data: [DONE]\n\n"):
				ok.Add(1)
			case resp.StatusCode == 429:
				refused.Add(1)
			default:
				t.Errorf("status %d: %q", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if ok.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("%d admitted, %d refused: the test needs both", ok.Load(), refused.Load())
	}
	var recorded int64
	pollUntil(t, "every stream's tokens recorded", func() bool {
		recorded = 0
		for _, g := range gws {
			m := metricsOf(g)
			recorded += int64(m[`authgate_tokens_total{key_id="alice",model="",type="prompt"}`] + m[`authgate_tokens_total{key_id="alice",model="",type="completion"}`])
		}
		return recorded == tally.Load()
	})
	if recorded > limit {
		t.Fatalf("the upstream reported %d tokens for the admitted requests, over tpm=%d", recorded, limit)
	}
	var window int64
	for _, g := range gws {
		m := metricsOf(g)
		if v := m[`authgate_tokens_over_reservation_total{key_id="alice"}`]; v != 0 {
			t.Fatalf("estimation error %v", v)
		}
		if v := m[`authgate_tokens_total{key_id="alice",model="",type="completion"}`]; v == 0 {
			t.Fatal("no completion tokens metered")
		}
		window += *g.Limits(time.Now())["alice"].TokensLastMinute
	}
	if replicas == 1 && window != recorded {
		// Every stream's reservation replaced by its upstream usage.
		t.Fatalf("the window holds %d tokens, want the %d the upstream reported", window, recorded)
	}
	if replicas > 1 {
		// The shared window holds what the upstream reported, nothing
		// more, and no reservation: /limits shows Redis's counts.
		sh := gws[0].Limits(time.Now())["alice"].Shared
		if sh == nil || sh.WindowTokens != recorded || sh.TokensReserved != 0 || sh.Reservations != 0 {
			t.Fatalf("/limits shared %+v, want %d tokens in the window and nothing reserved", sh, recorded)
		}
	}
	t.Logf("%d gateway(s): %d streams admitted, %d refused; %d tokens, upstream and gateway alike, of %d",
		replicas, ok.Load(), refused.Load(), recorded, limit)
}
