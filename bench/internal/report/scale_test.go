package report

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authgate/authgate/bench/internal/loadgen"
)

// addScale fills r's streams-at-scale part as a run of the upstream
// directly and authgate at 1,000 streams and at 10,000 asked (9,800 run),
// and two servers' idle clients.
func addScale(r *Report) {
	r.StartScale(ScaleSettings{Events: 50, Interval: "40ms", EventBytes: 202, Ramp: "2s", Plateau: "10s", FDLimit: 20000, ServerCPU: "0", LoadCPU: "1"})
	streams := func(conns int, ttfe, gap, transit float64) loadgen.StreamsResult {
		return loadgen.StreamsResult{Conns: conns, Completed: int64(conns) * 5, Truncated: 2, Errors: 1, EventsPerSec: float64(conns) * 25,
			ErrorKinds: map[string]int64{"status 502": 1}, FirstErr: "status 502, want 200",
			TTFE50: ttfe, TTFE99: 2 * ttfe, TTFEMax: 3 * ttfe, Gap50: gap, Gap99: gap + 1000, GapMax: gap + 5000, GenCPU: 0.2, GenCPUEvent: 5,
			Stamped: int64(conns) * 10, Transit50: transit, Transit99: 4 * transit, TransitMax: 10 * transit}
	}
	r.AddScale(ScaleRun{Target: "direct", Asked: 1000, Streams: streams(1000, 100, 40100, 20), IdleRSS: 10 << 20, PeakRSS: 10<<20 + 1000*8192, ServerCPU: 0.3, CPUPerEvent: 9})
	r.AddScale(ScaleRun{Target: "authgate", Asked: 1000, Streams: streams(1000, 350, 40150, 60), IdleRSS: 20 << 20, PeakRSS: 20<<20 + 1000*30720, ServerCPU: 0.5, CPUPerEvent: 18, UpstreamCPU: 0.3})
	r.AddScale(ScaleRun{Target: "direct", Asked: 10000, Streams: streams(9800, 200, 40500, 30), IdleRSS: 10 << 20, PeakRSS: 10<<20 + 9800*8192, ServerCPU: 0.9, CPUPerEvent: 4})
	r.AddScale(ScaleRun{Target: "authgate", Asked: 10000, Streams: streams(9800, 900, 41000, 100), IdleRSS: 20 << 20, PeakRSS: 20<<20 + 9800*20480, ServerCPU: 1, CPUPerEvent: 8, UpstreamCPU: 0.7})
	r.AddIdle(IdleRun{Target: "authgate", Path: "/healthz", Conns: 10000, Open: 10000, IdleRSS: 20 << 20, PeakRSS: 20<<20 + 10000*12288, HeldRSS: 20<<20 + 10000*4096})
	r.AddIdle(IdleRun{Target: "nginx", Path: "/healthz", Conns: 10000, Open: 9990, IdleRSS: 4 << 20, PeakRSS: 4<<20 + 10000*1024, HeldRSS: 4<<20 + 10000*1024})
	r.FinishScale()
}

func TestScaleAccounting(t *testing.T) {
	r := &Report{}
	addScale(r)
	f := func(got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("got %v, want %v", got, want)
		}
	}
	f(r.Scale.Runs[0].RSSPerStream(), 8192)
	f(r.Scale.Runs[3].RSSPerStream(), 20480) // over the 9,800 run, not the 10,000 asked
	f(r.Scale.Idle[0].RSSPerConn(), 4096)    // held, after the wait
	f(r.Scale.Idle[0].PeakPerConn(), 12288)
	f(IdleRun{Conns: 10, IdleRSS: 100, PeakRSS: 200}.RSSPerConn(), 10) // a report from before HeldRSS: the peak
	f(float64(r.Scale.Runs[1].Streams.Failed()), 3)
	if d := r.Scale.direct(&r.Scale.Runs[3]); d != &r.Scale.Runs[2] {
		t.Errorf("the direct run of 9,800 streams: %+v", d)
	}
}

func TestScaleWrite(t *testing.T) {
	f := func(r *Report, want, absent []string, wantBars int) {
		t.Helper()
		dir := t.TempDir()
		if err := r.Write(dir, "latest", io.Discard); err != nil {
			t.Fatal(err)
		}
		md, _ := os.ReadFile(filepath.Join(dir, "latest.md"))
		for _, w := range want {
			if !strings.Contains(string(md), w) {
				t.Errorf("latest.md lacks %q", w)
			}
		}
		for _, a := range absent {
			if strings.Contains(string(md), a) {
				t.Errorf("latest.md has %q", a)
			}
		}

		// The figures survive latest.json, and -render draws the same.
		js, _ := os.ReadFile(filepath.Join(dir, "latest.json"))
		var back Report
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatal(err)
		}
		if back.Scale == nil || len(back.Scale.Runs) != 4 || back.Scale.Runs[3].Streams.Conns != 9800 || len(back.Scale.Idle) != 2 {
			t.Fatalf("latest.json's streams at scale: %+v", back.Scale)
		}
		again := t.TempDir()
		if err := Render(filepath.Join(dir, "latest.json"), again); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"latest.md", "latest.svg"} {
			a, _ := os.ReadFile(filepath.Join(dir, name))
			b, _ := os.ReadFile(filepath.Join(again, name))
			if !bytes.Equal(a, b) {
				t.Errorf("%s rendered from latest.json differs", name)
			}
		}

		// The chart is well-formed XML with a bar per figure.
		svg, _ := os.ReadFile(filepath.Join(dir, "latest.svg"))
		bars := svgBars(t, svg)
		if bars != wantBars {
			t.Errorf("latest.svg has %d bars, want %d", bars, wantBars)
		}
		// Events timed on their way: the third panel is that time.
		if !bytes.Contains(svg, []byte("p99 of each event on its way")) {
			t.Errorf("latest.svg's delay panel is not the time on the way")
		}
	}
	rows := []string{
		"## Streams at scale",
		"| 1000 | authgate | 5000 | 3 (2) | 25000 | 30.0 | 0.50 | 18.0 | 0.30 | 0.20 | 5.00 |",
		"| 9800 (10000 asked¹) | direct to the upstream |",
		"¹ Fewer than asked",
		// Added: through authgate less directly, at the same count.
		"| 1000 | authgate | 350 | 700 | 1050 | +250 | +500 | +750 | 40150 | 41150 | 45150 | +50 | +50 | +50 |",
		"| 9800 (10000 asked¹) | authgate | 900 | 1800 | 2700 | +700 | +1400 | +2100 |",
		// Each event on its way, and what the server adds to it.
		"| 1000 | direct to the upstream | 10000 | 20 | 80 | 200 |  |  |  |",
		"| 9800 (10000 asked¹) | authgate | 98000 | 100 | 400 | 1000 | +70 | +280 | +700 |",
		"Errors by kind: direct to the upstream at 1000: status 502 1 (the first: status 502, want 200); authgate at 1000:",
		"## Idle clients",
		"| nginx | `GET /healthz` | 10000 | 9990 | 4.0 | 13.8 | 13.8 | 1.0 | 1.0 |",
		"| authgate | `GET /healthz` | 10000 | 10000 | 20.0 | 137.2 | 59.1 | 12.0 | 4.0 |",
	}
	// With the other scenarios: theirs, then these; the closed-loop chart,
	// then this one (three panels per run, one per idle server).
	full := sampleReport()
	addScale(full)
	f(full, append(rows, "## Closed loop", "## Ratios and the issue's bars"), nil, 2*len(full.Closed)+3*4+2)
	// Alone (loadbench -streams-only without an earlier report).
	alone := &Report{}
	alone.Machine.Versions = map[string]string{}
	addScale(alone)
	alone.Finish()
	f(alone, rows, []string{"## Closed loop", "## Ratios", "Each figure is the median"}, 3*4+2)
}
