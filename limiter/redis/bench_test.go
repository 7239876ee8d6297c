package redis_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authgate/authgate/internal/redistest"
	"github.com/authgate/authgate/limiter/redis"
	"github.com/authgate/authgate/limiter/tokens"
)

// BenchmarkTokensAdmitFinish: one request's shared token admission and
// its end, two script calls on a loopback Redis, from parallel goroutines
// (auto-pipelined on one connection), over 64 key_ids; beside it the
// request window's one call, as in the same run.
func BenchmarkTokensAdmitFinish(b *testing.B) {
	srv := redistest.Start(b)
	r, err := redis.New(redis.Config{URL: srv.URL(), Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	s := redis.NewTokens(r, redis.TokensConfig{})
	defer s.Close()
	lim := tokens.Limits{TPM: 1 << 40, TPD: 1 << 40}
	var seq atomic.Uint64
	b.Run("tokens", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l, res, err := s.Admit("k"+strconv.Itoa(int(seq.Add(1)%64)), lim, 500)
				if err != nil || !res.Allowed() {
					b.Fatalf("Admit: %+v, %v", res, err)
				}
				l.Finish(100)
			}
		})
	})
	b.Run("requests", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.Allow("k"+strconv.Itoa(int(seq.Add(1)%64)), 1<<30, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
