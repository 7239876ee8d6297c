package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authgate/authgate/bench/internal/loadgen"
)

func TestMedian(t *testing.T) {
	id := func(v float64) float64 { return v }
	f := func(in []float64, want float64) {
		t.Helper()
		if got := median(in, id); got != want {
			t.Errorf("median(%v) = %v, want %v", in, got, want)
		}
	}
	f(nil, 0)
	f([]float64{3}, 3)
	f([]float64{5, 1, 3}, 3)
	f([]float64{4, 1, 3, 2}, 2.5)
}

// sampleReport is a report as a run with peers fills it.
func sampleReport() *Report {
	r := &Report{started: time.Now()}
	r.Settings = Settings{Duration: "10s", Warmup: "2s", Repeats: 3, Conns: 64, ServerCPU: "0", LoadCPU: "1", StreamDelay: "2ms", Peers: true}
	r.Machine = MachineInfo{CPU: "Test CPU", Cores: 2, Commit: "abc1234", Versions: map[string]string{"wrk": "4.1.0"}}
	run := func(rps, p50, p99 float64) []ClosedRun {
		return []ClosedRun{{RPS: rps * 0.98, P50: p50, P99: p99, CPUPerReq: 1e6 / rps}, {RPS: rps, P50: p50, P99: p99, CPUPerReq: 1e6 / rps}, {RPS: rps * 1.01, P50: p50, P99: p99, CPUPerReq: 1e6 / rps}}
	}
	for _, c := range []struct {
		kind, server  string
		rps, p50, p99 float64
	}{
		{"ceiling", "ceiling", 100000, 600, 900},
		{"reject", "authgate", 96000, 640, 950},
		{"reject", "authgate-nolog", 99000, 630, 940},
		{"direct", "mock", 80000, 800, 1200},
		{"proxy", "authgate", 50000, 1270, 2000},
		{"proxy", "authgate-nolog", 51000, 1250, 1900},
		{"limit", "authgate", 90000, 700, 1000},
		{"reject", "nginx", 80000, 700, 1500},
		{"proxy", "nginx", 40000, 1500, 3000},
		{"limit", "nginx", 85000, 700, 1500},
		{"reject", "haproxy", 90000, 650, 1000},
		{"proxy", "haproxy", 45000, 1400, 2100},
		{"limit", "haproxy", 88000, 700, 1100},
	} {
		r.AddClosed(Scenario{Kind: c.kind, Server: c.server, Label: c.kind, Status: 200}, 64, run(c.rps, c.p50, c.p99))
	}
	r.AddStreams([]string{"direct", "authgate"}, [][]loadgen.StreamResult{{{TTFE50: 100, Gap50: 2100}}, {{TTFE50: 180, Gap50: 2110}}})
	r.FixedRate = 12000
	names := []string{"mock", "authgate", "nginx", "haproxy"}
	fixed := [][]loadgen.OpenLoopResult{{{P50: 90, P99: 300}}, {{P50: 130, P99: 400}}, {{P50: 120, P99: 500}}, {{P50: 140, P99: 380}}}
	bounds := []time.Duration{time.Millisecond, 10 * time.Millisecond}
	rates := [][][]float64{{{20000}, {70000}}, {{15000}, {45000}}, {{14000}, {36000}}, {{10000}, {40000}}}
	r.AddOpen(names, fixed, bounds, rates, false)
	r.Finish()
	return r
}

func TestRatios(t *testing.T) {
	r := sampleReport()
	got := map[string]Ratio{}
	for _, ra := range r.Ratios {
		got[ra.Name] = ra
	}
	f := func(name string, want float64, met *bool) {
		t.Helper()
		ra, ok := got[name]
		if !ok {
			t.Fatalf("no ratio %q", name)
		}
		if d := ra.Value - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", name, ra.Value, want)
		}
		if (met == nil) != (ra.Met == nil) || met != nil && *met != *ra.Met {
			t.Errorf("%s: met %v, want %v", name, ra.Met, met)
		}
	}
	f("reject / ceiling, throughput", 0.96, bar(true))
	f("proxied / direct, throughput", 0.625, nil)
	f("overhead at p50, closed loop (64 connections, each at its own saturation)", 470, bar(false))
	f("overhead at p50, open loop at 12000 req/s (the same load on both)", 40, bar(true))
	f("streaming: time to first event, gateway − direct (p50)", 80, bar(true))
	f("access log cost, reject path (throughput lost with the log on)", 100*(1-96000.0/99000), bar(true))
	f("proxied throughput, authgate / nginx", 1.25, bar(true))
	f("proxied throughput, authgate / haproxy", 50000.0/45000, bar(false))
	f("proxied p99 (closed loop), authgate / haproxy", 2000.0/2100, bar(true))
	f("highest rate with p99 ≤ 1ms, authgate / haproxy", 1.5, nil)
}

// written writes r as base into a new temporary directory, and returns
// the directory and BASE.md, failing the test unless stdout got the same.
func written(t *testing.T, r *Report, base string) (dir string, md []byte) {
	t.Helper()
	dir = t.TempDir()
	var stdout bytes.Buffer
	if err := r.Write(dir, base, &stdout); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, base+".md"))
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != string(md) {
		t.Errorf("stdout and %s.md differ", base)
	}
	return dir, md
}

func TestWrite(t *testing.T) {
	r := sampleReport()
	dir, md := written(t, r, "latest")
	for _, want := range []string{"| scenario | server | req/s |", "## Ratios and the issue's bars", "| reject / ceiling, throughput | 0.96 | ≥ 0.95 | yes |", "p99 ≤ 10ms"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("latest.md lacks %q", want)
		}
	}

	js, err := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Closed) != len(r.Closed) || back.Closed[1].Median.RPS != 96000 {
		t.Errorf("latest.json: %d closed-loop results, reject median %v", len(back.Closed), back.Closed[1].Median.RPS)
	}
	if back.AB != nil || bytes.Contains(js, []byte(`"ab"`)) {
		t.Error("latest.json of the whole benchmark has an A/B section")
	}

	// The chart is well-formed XML with one bar per scenario and panel.
	svg, err := os.ReadFile(filepath.Join(dir, "latest.svg"))
	if err != nil {
		t.Fatal(err)
	}
	bars := svgBars(t, svg)
	if bars != 2*len(r.Closed) {
		t.Errorf("latest.svg has %d bars, want %d", bars, 2*len(r.Closed))
	}
}

// svgBars returns the coloured bars (rects not filled white) of an SVG
// chart, failing t if it is not well-formed XML.
func svgBars(t *testing.T, svg []byte) int {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	bars := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return bars
		}
		if err != nil {
			t.Fatalf("latest.svg: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			for _, a := range se.Attr {
				if a.Name.Local == "fill" && a.Value != "#ffffff" {
					bars++
				}
			}
		}
	}
}

func TestNiceMaxAndShort(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0, 1}, {9, 10}, {36000, 40000}, {191243, 200000}, {1200, 1200}, {45000, 60000}} {
		if got := niceMax(c.in); got != c.want {
			t.Errorf("niceMax(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		in   float64
		want string
	}{{950, "950"}, {1000, "1k"}, {1250, "1.2k"}, {12500, "12.5k"}, {191243, "191k"}, {2.5e6, "2.5M"}} {
		if got := short(c.in); got != c.want {
			t.Errorf("short(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestReportLostLogLines: a run whose access log has fewer lines than
// requests (let through for HAProxy only) is named in the report.
func TestReportLostLogLines(t *testing.T) {
	r := sampleReport()
	if md := r.markdown(); strings.Contains(md, "lost lines") {
		t.Fatalf("a report without lost lines mentions them:\n%s", md)
	}
	for _, c := range r.Closed {
		if c.ID == "limit/haproxy" {
			c.Runs[1].Logged, c.Runs[1].Sent = 90, 100
		}
	}
	if md := r.markdown(); !strings.Contains(md, "lost lines") || !strings.Contains(md, "limit/haproxy repeat 2 (10 of 100)") {
		t.Fatalf("the report does not name the run that lost 10 of 100 lines:\n%s", md)
	}
}

// TestLogCost: with logCost's pairs, the log's bar goes with the median of
// the pairs' costs, and the closed loop's ratio stays, without a bar.
func TestLogCost(t *testing.T) {
	r := sampleReport()
	pair := func(on, off float64, onFirst bool) CostPair {
		return CostPair{On: ClosedRun{RPS: on, CPUPerReq: 1e6 / on}, Off: ClosedRun{RPS: off, CPUPerReq: 1e6 / off}, OnFirst: onFirst}
	}
	// Costs 2%, 10%, 4%, -1%, 3%: median 3%.
	r.AddLogCost("reject", []CostPair{pair(98, 100, true), pair(90, 100, false), pair(96, 100, true), pair(101, 100, false), pair(97, 100, true)})
	r.Finish()
	lc := r.logCost("reject")
	if d := lc.Median - 3; d > 1e-9 || d < -1e-9 {
		t.Errorf("median cost %v, want 3", lc.Median)
	}
	if lc.Min < -1.0001 || lc.Min > -0.9999 || lc.Max < 9.9999 || lc.Max > 10.0001 {
		t.Errorf("cost range %v to %v, want -1 to 10", lc.Min, lc.Max)
	}
	var barred, closedLoop *Ratio
	for i, ra := range r.Ratios {
		switch {
		case strings.HasPrefix(ra.Name, "access log cost, reject path (throughput lost with the log on; median of 5 alternating pairs"):
			barred = &r.Ratios[i]
		case strings.HasPrefix(ra.Name, "access log cost, reject path, from the closed loop's medians"):
			closedLoop = &r.Ratios[i]
		}
	}
	if barred == nil || barred.Met == nil || !*barred.Met || barred.Value != lc.Median {
		t.Fatalf("the log's bar is not the pairs' median: %+v", barred)
	}
	if closedLoop == nil || closedLoop.Met != nil {
		t.Fatalf("the closed loop's log cost is missing or still has a bar: %+v", closedLoop)
	}
	if md := r.markdown(); !strings.Contains(md, "## (g) Access log cost, alternating pairs") || !strings.Contains(md, "| reject | 5 | 97 | 100 | 3.0% | -1.0%–10.0% |") {
		t.Fatalf("latest.md lacks the pairs' table:\n%s", md)
	}
}

// TestRoutingCost: with routingCost's pairs, the routing bar goes with the
// median of the pairs' costs, not with the closed loop's medians, and a
// median over 5% misses it.
func TestRoutingCost(t *testing.T) {
	pair := func(on, off float64, onFirst bool) CostPair {
		return CostPair{On: ClosedRun{RPS: on, CPUPerReq: 1e6 / on}, Off: ClosedRun{RPS: off, CPUPerReq: 1e6 / off}, OnFirst: onFirst}
	}
	for _, tc := range []struct {
		pairs []CostPair
		met   bool
	}{
		// Costs 2%, 30%, 4%, -1%, 3%: median 3%, under the bar despite
		// one pair far over it.
		{[]CostPair{pair(98, 100, true), pair(70, 100, false), pair(96, 100, true), pair(101, 100, false), pair(97, 100, true)}, true},
		// Costs 6%, 7%, 1%: median 6%.
		{[]CostPair{pair(94, 100, true), pair(93, 100, false), pair(99, 100, true)}, false},
	} {
		r := sampleReport()
		r.SetRoutingCost(tc.pairs)
		r.Finish()
		var barred *Ratio
		for i, ra := range r.Ratios {
			if strings.HasPrefix(ra.Name, "routing by model between two pools") {
				if barred != nil {
					t.Fatalf("two routing bars: %q and %q", barred.Name, ra.Name)
				}
				barred = &r.Ratios[i]
			}
		}
		if barred == nil || barred.Met == nil || *barred.Met != tc.met || barred.Value != r.Routing.Median {
			t.Fatalf("routing bar %+v, want the pairs' median %v, met %v", barred, r.Routing.Median, tc.met)
		}
		if md := r.markdown(); !strings.Contains(md, "## (i) Routing cost, alternating pairs") {
			t.Fatalf("latest.md lacks the routing pairs' table:\n%s", md)
		}
	}
}

// TestMeteringCost: the metering bar is on ≥ 0.9 × off, by the pairs'
// median cost.
func TestMeteringCost(t *testing.T) {
	pair := func(on, off float64) CostPair {
		return CostPair{On: ClosedRun{RPS: on, CPUPerReq: 1e6 / on}, Off: ClosedRun{RPS: off, CPUPerReq: 1e6 / off}}
	}
	for _, tc := range []struct {
		pairs []CostPair
		met   bool
	}{
		{[]CostPair{pair(95, 100), pair(80, 100), pair(97, 100)}, true}, // median cost 5%
		{[]CostPair{pair(85, 100), pair(88, 100), pair(95, 100)}, false},
	} {
		r := sampleReport()
		r.SetMeteringCost(tc.pairs)
		r.Finish()
		var got *Ratio
		for i, ra := range r.Ratios {
			if strings.HasPrefix(ra.Name, "token metering on / off") {
				got = &r.Ratios[i]
			}
		}
		if got == nil || got.Met == nil || *got.Met != tc.met {
			t.Fatalf("metering bar %+v, want met %v", got, tc.met)
		}
		if !strings.Contains(r.markdown(), "## Token metering cost, alternating pairs") {
			t.Fatal("latest.md lacks the metering pairs' table")
		}
	}
}
