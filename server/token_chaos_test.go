package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/redistest"
	"github.com/authgate/authgate/limiter/redis"
	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// TestTokenChaos: requests of a key_id with token and concurrency limits
// end every way a request can end: answered whole, streamed to the end,
// left by their client mid-stream or before the answer, cut by an
// upstream that resets its connection mid-stream, or timed out waiting
// for a slow upstream. Afterwards nothing is left held: no request in
// flight, no token reserved in the window or the day, no concurrency
// slot.
func TestTokenChaos(t *testing.T) { tokenChaos(t, 1, nil) }

// TestTokenChaosSharedRedis: the same over four gateways sharing their
// limits through one Redis: afterwards nothing is held in Redis either.
func TestTokenChaosSharedRedis(t *testing.T) {
	url := redistest.Start(t).URL()
	var stores []*redis.Tokens
	gws := tokenChaos(t, 4, func(cfg *server.Config) { stores = append(stores, shareRedis(t, url, cfg)) })
	pollUntil(t, "nothing held in Redis", func() bool {
		sh := gws[0].Limits(time.Now())["alice"].Shared // /limits asks Redis
		return sh != nil && sh.InFlight == 0 && sh.Reservations == 0 && sh.TokensReserved == 0 && sh.WindowTokens > 0
	})
	for i, s := range stores {
		if n := s.Held(); n != 0 {
			t.Errorf("gateway %d still renews %d leases", i, n)
		}
	}
}

func tokenChaos(t *testing.T, replicas int, configure func(*server.Config)) []*gateway {
	const requests = 2000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mock := mockupstream.New(mockupstream.Config{StreamChunks: 20, ChunkDelay: time.Millisecond})
	srv := &fasthttp.Server{Logger: quietLogger{}, Handler: func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Request.Header.Peek("X-Chaos")) {
		case "slow": // past the gateway's UpstreamTimeout
			time.Sleep(300 * time.Millisecond)
		case "reset": // a few events, then the connection drops
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n")
				w.Flush()
				ctx.Conn().Close()
			})
			return
		}
		mock.Handler(ctx)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	keys := keysFile(t, "alice:"+keyAlice+"  tpm=1000000000 tpd=1000000000 concurrency=1000 rpm=1000000\n")
	var gws []*gateway
	for range replicas {
		cfg := server.Config{KeysFile: keys, Upstreams: []string{"http://" + ln.Addr().String()}, UpstreamTimeout: 100 * time.Millisecond}
		if configure != nil {
			configure(&cfg)
		}
		gws = append(gws, startGateway(t, cfg))
	}

	kinds := []string{"whole", "stream", "stream-left", "left-before", "reset", "slow"}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				g := gws[i%replicas]
				kind := kinds[i%len(kinds)]
				body := `{"max_tokens":50,"messages":[]}`
				if kind != "whole" && kind != "slow" {
					body = `{"max_tokens":50,"stream":true,"messages":[]}`
				}
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "POST", g.url+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+keyAlice)
				if kind == "reset" || kind == "slow" {
					req.Header.Set("X-Chaos", kind)
				}
				if kind == "left-before" {
					time.AfterFunc(time.Duration(rand.IntN(3))*time.Millisecond, cancel)
				}
				resp, err := client.Do(req)
				if err == nil {
					if kind == "stream-left" {
						io.ReadFull(resp.Body, make([]byte, 1+rand.IntN(300)))
						cancel()
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				cancel()
			}
		}()
	}
	for i := range requests {
		work <- i
	}
	close(work)
	wg.Wait()

	for i, g := range gws {
		pollUntil(t, fmt.Sprintf("every request's holdings given back in gateway %d", i), func() bool {
			lj, _ := json.Marshal(g.Limits(time.Now()))
			var m map[string]struct {
				InFlight    int64  `json:"in_flight"`
				Reserved    *int64 `json:"tokens_reserved"`
				ReservedDay *int64 `json:"tokens_reserved_today"`
				Tokens      *int64 `json:"tokens_last_minute"`
			}
			json.Unmarshal(lj, &m)
			a := m["alice"]
			// With Redis, the local counts stay at zero (Redis holds them).
			return a.InFlight == 0 && a.Reserved != nil && *a.Reserved == 0 && *a.ReservedDay == 0 && (*a.Tokens > 0 || configure != nil)
		})
		if v := metricsOf(g)[`authgate_requests_in_flight{key_id="alice"}`]; v != 0 {
			t.Errorf("gateway %d: authgate_requests_in_flight %v after every request ended", i, v)
		}
	}
	return gws
}

// quietLogger drops a fasthttp server's log: the chaos upstream's resets
// are on purpose.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
