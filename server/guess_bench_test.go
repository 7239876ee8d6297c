package server

import (
	"crypto/sha256"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkGuessFlood measures a real key's decision (authenticate, then
// its limiter) alone ("quiet") and while another goroutine runs the whole
// handler on distinct unknown keys as fast as it can ("flood"; its rate is
// reported as guesses/s). An unknown key shares with a real one only the
// key set (read only) and counters sharded by connection, so the two should
// cost the same. Besides ns/op, which on a busy machine includes the time
// the benchmark's thread waits for a core (the flood takes one), it
// reports cpu-ns/op, the CPU time of its thread per decision (Linux only),
// which rises only if the flood makes the decision itself slower (shared
// cache lines, locks). Compare with benchstat over -count=5:
//
//	go test -run '^$' -bench GuessFlood -count 5 ./server/
func BenchmarkGuessFlood(b *testing.B) {
	g := newTestGateway(b, false)
	decide := func(b *testing.B) {
		ctx := newCtx("Bearer " + testKeyHigh)
		b.ReportAllocs()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu := threadCPU()
		for b.Loop() {
			if d := g.decideKey(ctx.Request.Header.PeekBytes(strAuthorization), time.Now(), 0); d.acct == nil {
				b.Fatal("real key refused")
			}
		}
		if cpu := threadCPU() - cpu; cpu > 0 {
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
	b.Run("quiet", decide)
	// beside runs decide while work runs in a loop on another goroutine,
	// and reports work's rate as unit.
	beside := func(b *testing.B, unit string, work func(i int)) {
		var n atomic.Int64
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				work(i)
				n.Add(1)
			}
		}()
		start := time.Now()
		decide(b)
		close(stop)
		<-done
		b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), unit)
	}
	b.Run("flood", func(b *testing.B) {
		ctx := newCtx("")
		key := make([]byte, 0, 128)
		beside(b, "guesses/s", func(i int) {
			key = append(key[:0], "Bearer sk-guess-"...)
			key = strconv.AppendInt(key, int64(i), 10)
			key = append(key, "-0123456789abcdef"...)
			if s := serveOnce(g, ctx, key); s != 401 {
				panic("unknown key answered " + strconv.Itoa(s))
			}
		})
	})
	// The baseline for "flood": the other goroutine hashes keys of the
	// same size (a guess's main cost) and touches nothing of the gateway,
	// so what it changes in a decision's cost comes from sharing the
	// machine (a hyperthread's sibling, caches), not from the gateway.
	b.Run("busy", func(b *testing.B) {
		var sum [sha256.Size]byte
		beside(b, "hashes/s", func(i int) {
			var key [40]byte
			copy(key[:], sum[:])
			key[len(key)-1] = byte(i)
			sum = sha256.Sum256(key[:])
		})
	})
}
