package server_test

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkReload1M reloads a keys file of 1,000,000 keys over 1000 key_ids,
// alternating between two files so that each reload swaps in a different
// set, while 16 clients send authorised requests through the gateway on
// loopback. It reports the median duration of Reload (reload-ms), the
// requests that failed or got another status than 200 (failed: must be 0),
// and the p99 latency of requests before (p99-idle-ms) and during
// (p99-reload-ms) the reloads. ns/op is the time of one reload.
func BenchmarkReload1M(b *testing.B) {
	r := startReloadRig(b, 1_000_000, 1000)
	// A baseline as long as one reload, without reloading.
	r.phase.Store(2)
	reloadOnce := r.reload(b)
	r.phase.Store(0)
	idle := time.NewTimer(reloadOnce)
	<-idle.C

	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	r.phase.Store(1)
	for i := 0; i < b.N; i++ {
		durs = append(durs, r.reload(b))
	}
	r.phase.Store(2)
	b.StopTimer()
	lat := r.finish()

	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)/2])/float64(time.Millisecond), "reload-ms")
	b.ReportMetric(float64(r.failed.Load()), "failed")
	b.ReportMetric(float64(quantile(lat[0], 0.99))/float64(time.Millisecond), "p99-idle-ms")
	b.ReportMetric(float64(quantile(lat[1], 0.99))/float64(time.Millisecond), "p99-reload-ms")
	b.ReportMetric(float64(len(lat[1]))/durationSum(durs).Seconds(), "req/s-reload")
	if n := r.failed.Load(); n > 0 {
		b.Errorf("%d requests failed during reloads; first: %s", n, *r.firstErr.Load())
	}
}

func durationSum(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum
}
