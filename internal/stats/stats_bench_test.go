package stats

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMetrics measures what a request adds to the request path for
// its metrics, in parallel on every core, each goroutine standing for a
// client connection with its own shard key: a sharded counter, the
// status-code table of a pseudo key_id and of one real key_id used by
// every goroutine, the latency histogram and the clock read for it. Two
// rejected designs run beside them: a shard drawn at random for each
// request, and one word shared by all (see the file comment of
// metrics.go).
func BenchmarkMetrics(b *testing.B) {
	var conns atomic.Uint32
	run := func(name string, f func(key uint32)) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				key := conns.Add(1)
				for pb.Next() {
					f(key)
				}
			})
		})
	}
	sharded := NewCounter(true)
	run("counter-sharded", sharded.Inc)
	var random shardArray
	run("rejected-random-shard", func(uint32) { random[rand.Uint32()&(NumShards-1)].n.Add(1) })
	var word atomic.Uint64
	run("rejected-one-word", func(uint32) { word.Add(1) })
	shared, keyed := &Requests{Shared: true}, &Requests{}
	for code := 200; code < 205; code++ {
		shared.Request(code, 0)
		keyed.Request(code, 0)
	}
	run("request-shared-5th-code", func(key uint32) { shared.Request(204, key) })
	run("request-key-5th-code", func(key uint32) { keyed.Request(204, key) })
	h := new(Histogram)
	run("histogram", func(key uint32) { h.Observe(3*time.Millisecond, key) })
	start := time.Now()
	run("time.Since", func(uint32) { _ = time.Since(start) })
}
