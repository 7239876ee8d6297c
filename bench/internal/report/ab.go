package report

import (
	"fmt"
	"strings"
	"time"
)

// ABRun is an A/B run (loadbench -ab): two gateway binaries compared by
// alternating pairs of closed-loop runs on each path.
type ABRun struct {
	A        string  `json:"a"` // A's binary (-bin)
	B        string  `json:"b"` // B's binary (-ab)
	Duration string  `json:"run_duration"`
	Warmup   string  `json:"run_warmup"`
	Paths    []ABSum `json:"paths"`
}

// ABPair is one of an A/B run's pairs: A and B run one right after the
// other.
type ABPair struct {
	A      ClosedRun `json:"a"`
	B      ClosedRun `json:"b"`
	AFirst bool      `json:"a_first"`
}

// Gain is A's throughput over B's, in %.
func (p ABPair) Gain() float64 { return 100 * (p.A.RPS/p.B.RPS - 1) }

// CPUSaved is the server CPU time per request A saves over B, in % of B's.
func (p ABPair) CPUSaved() float64 { return 100 * (1 - p.A.CPUPerReq/p.B.CPUPerReq) }

// ABSum is one path's pairs and their gains.
type ABSum struct {
	Kind      string   `json:"kind"` // reject or proxy
	Pairs     []ABPair `json:"pairs"`
	Median    float64  `json:"gain_median_pct"` // median of the pairs' gains
	Min       float64  `json:"gain_min_pct"`
	Max       float64  `json:"gain_max_pct"`
	CPUMedian float64  `json:"cpu_saved_median_pct"` // median of the pairs' CPUSaved
	CPUMin    float64  `json:"cpu_saved_min_pct"`
	CPUMax    float64  `json:"cpu_saved_max_pct"`
}

// spread is the gains' range, max − min, in points.
func (s ABSum) spread() float64 { return s.Max - s.Min }

// beatsSpread reports whether the median gain exceeds the gains' spread:
// A is faster than B by more than the pairs disagree among themselves.
func (s ABSum) beatsSpread() bool { return s.Median > s.spread() }

// lagsSpread reports whether the median gain is below minus the spread: B
// is faster than A by more than the pairs disagree.
func (s ABSum) lagsSpread() bool { return -s.Median > s.spread() }

// StartAB makes r an A/B run's report: binaries a (A) and b (B), each run
// warmup then duration long. Start is called first, for the machine and
// the settings.
func (r *Report) StartAB(a, b string, warmup, duration time.Duration) {
	r.AB = &ABRun{A: a, B: b, Duration: duration.String(), Warmup: warmup.String()}
}

// AddAB adds an A/B run's pairs on path kind (reject or proxy).
func (r *Report) AddAB(kind string, pairs []ABPair) {
	s := ABSum{Kind: kind, Pairs: pairs}
	s.Median, s.Min, s.Max = spread(pairs, ABPair.Gain)
	s.CPUMedian, s.CPUMin, s.CPUMax = spread(pairs, ABPair.CPUSaved)
	r.AB.Paths = append(r.AB.Paths, s)
}

// abMarkdown renders an A/B run's report: per path, the summary, then
// every pair.
func (r *Report) abMarkdown() string {
	var b strings.Builder
	ab, s := r.AB, r.Settings
	fmt.Fprintf(&b, "# authgate A/B: %s (A) against %s (B)\n\n", ab.A, ab.B)
	r.machineLines(&b)
	pin := "no pinning"
	if s.ServerCPU != "" || s.LoadCPU != "" {
		pin = fmt.Sprintf("the gateway under test on CPU %s; wrk and the upstream on CPU %s", s.ServerCPU, s.LoadCPU)
	}
	fmt.Fprintf(&b, "Pairs of closed-loop runs (wrk, %d connections) of A and B, one right after the other, A first in pairs 1, 3, 5…; each run %s after a %s warm-up; %s. "+
		"Gain: A's throughput over B's. CPU saved: B's server CPU per request less A's, as a share of B's. "+
		"A is faster than B beyond the noise if the median gain exceeds the spread (max − min) of the pairs' gains; "+
		"B is, if the median gain is below minus the spread.\n\n",
		s.Conns, ab.Duration, ab.Warmup, pin)
	b.WriteString("| path | pairs | A req/s (median) | B req/s (median) | gain, median | (min–max) | spread | median > spread | CPU saved, median | (min–max) |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n")
	for _, p := range ab.Paths {
		verdict := "no"
		switch {
		case p.beatsSpread():
			verdict = "yes"
		case p.lagsSpread():
			verdict = "no: B faster beyond the spread"
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %+.1f%% | %+.1f%%–%+.1f%% | %.1f | %s | %+.1f%% | %+.1f%%–%+.1f%% |\n",
			p.Kind, len(p.Pairs), median(p.Pairs, func(q ABPair) float64 { return q.A.RPS }), median(p.Pairs, func(q ABPair) float64 { return q.B.RPS }),
			p.Median, p.Min, p.Max, p.spread(), verdict, p.CPUMedian, p.CPUMin, p.CPUMax)
	}
	for _, p := range ab.Paths {
		fmt.Fprintf(&b, "\n## %s: every pair\n\n", p.Kind)
		b.WriteString("| pair | first | A req/s | B req/s | gain | A server CPU | B server CPU | A CPU µs/req | B CPU µs/req | CPU saved | A p99 | B p99 |\n")
		b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for i, q := range p.Pairs {
			first := "B"
			if q.AFirst {
				first = "A"
			}
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.0f | %+.1f%% | %s | %s | %s | %s | %+.1f%% | %.0f | %.0f |\n",
				i+1, first, q.A.RPS, q.B.RPS, q.Gain(), num(q.A.ServerCPU), num(q.B.ServerCPU), num(q.A.CPUPerReq), num(q.B.CPUPerReq), q.CPUSaved(), q.A.P99, q.B.P99)
		}
	}
	b.WriteString("\nA run whose server CPU is under 0.9 was short of its core (another process took it): its pair says less.\n")
	return b.String()
}
