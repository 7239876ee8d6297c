package report

import (
	"testing"
	"time"

	"github.com/authgate/authgate/bench/internal/loadgen"
)

// TestPeerPairs: a -streams-pairs run's pairs give each count's median
// ratio of CPU per event and its range; the report goes to BASE.md and
// .json, with nothing of the whole benchmark's and no chart.
func TestPeerPairs(t *testing.T) {
	run := func(target string, cpu float64, failed int64) ScaleRun {
		return ScaleRun{Target: target, Asked: 9800, CPUPerEvent: cpu, ServerCPU: 0.5, IdleRSS: 10 << 20, PeakRSS: 10<<20 + 9800*14<<10,
			Streams: loadgen.StreamsResult{Conns: 9800, Errors: failed, EventsPerSec: 24500, TTFE50: 700, Transit99: 5000}}
	}
	pair := func(a, n float64, aFirst bool) PeerPair {
		return PeerPair{Authgate: run("authgate", a, 0), Nginx: run("nginx", n, 1), AuthgateFirst: aFirst}
	}
	r := &Report{started: time.Now()}
	r.Settings = Settings{ServerCPU: "0", LoadCPU: "1", Peers: true}
	r.StartPeerPairs(ScaleSettings{Events: 50, Interval: "400ms", EventBytes: 233, Ramp: "20s", Plateau: "10s", ServerCPU: "0", LoadCPU: "1"})
	// Ratios 1.1, 0.9, 1.2, 1.0: median 1.05, range 0.9 to 1.2, two at most 1.
	r.AddPeerPairs(10000, 9800, []PeerPair{pair(22, 20, true), pair(18, 20, false), pair(24, 20, true), pair(20, 20, false)})
	r.Finish()

	c := r.PeerPairs.Counts[0]
	near := func(got, want float64) bool { return got-want < 1e-9 && want-got < 1e-9 }
	if !near(c.Median, 1.05) || !near(c.Min, 0.9) || !near(c.Max, 1.2) {
		t.Errorf("ratio median %v, range %v to %v; want 1.05, 0.9 to 1.2", c.Median, c.Min, c.Max)
	}
	back := sideReport(t, r, "streams-pairs",
		"# authgate beside nginx, streams at scale, in alternating pairs",
		"(50 events 400ms apart, 233 bytes each; the streams open over 20s, then 10s measured)",
		"| 9800 (10000 asked) | 4 | 21.0 µs | 20.0 µs | 1.05 | 0.90–1.20 | 2 | 14.0 KiB | 14.0 KiB | 0, 4 |",
		"## 9800 (10000 asked) streams: every pair",
		"| 2 | nginx | 18.0 µs | 20.0 µs | 0.90 | 0.50 | 0.50 | 24500 | 24500 | 700 µs | 700 µs | 5000 µs | 5000 µs |",
	)
	if back.PeerPairs == nil || len(back.PeerPairs.Counts) != 1 || back.PeerPairs.Counts[0].Median != c.Median {
		t.Fatal("the JSON does not hold the pairs")
	}
}
