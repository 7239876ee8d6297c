package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAB: an A/B run's pairs give each path's median gain, its range and
// spread, and whether the median exceeds the spread either way; the report
// goes to BASE.md and .json, with nothing of the whole benchmark's.
func TestAB(t *testing.T) {
	pair := func(a, b, aCPU, bCPU float64, aFirst bool) ABPair {
		return ABPair{A: ClosedRun{RPS: a, CPUPerReq: aCPU, ServerCPU: 1}, B: ClosedRun{RPS: b, CPUPerReq: bCPU, ServerCPU: 1}, AFirst: aFirst}
	}
	near := func(got, want float64) bool { return got-want < 1e-9 && want-got < 1e-9 }
	r := &Report{started: time.Now()}
	r.Settings = Settings{Conns: 64, ServerCPU: "0", LoadCPU: "1"}
	r.StartAB("bin/authgate-ab-1111111", "bin/authgate-ab-2222222", time.Second, 5*time.Second)
	// Gains 3, 1, 5, -1, 4, 2 %: median 2.5, range -1 to 5, spread 6.
	// CPU saved 10, 0, 20, -10, 5, 5 %: median 5.
	r.AddAB("reject", []ABPair{
		pair(103, 100, 90, 100, true), pair(101, 100, 100, 100, false), pair(105, 100, 80, 100, true),
		pair(99, 100, 110, 100, false), pair(104, 100, 95, 100, true), pair(102, 100, 95, 100, false),
	})
	// Gains 4, 3, 5, 4 %: median 4, spread 2.
	r.AddAB("proxy", []ABPair{pair(104, 100, 50, 52, true), pair(103, 100, 50, 52, false), pair(105, 100, 50, 52, true), pair(104, 100, 50, 52, false)})
	// Gains -4, -3, -5, -4 %: median -4, spread 2: B is faster.
	r.AddAB("limit", []ABPair{pair(96, 100, 52, 50, true), pair(97, 100, 52, 50, false), pair(95, 100, 52, 50, true), pair(96, 100, 52, 50, false)})
	r.Finish()

	f := func(kind string, med, lo, hi, spread float64, beats, lags bool, cpuMed float64) {
		t.Helper()
		s := find(r.AB.Paths, func(s *ABSum) bool { return s.Kind == kind })
		if s == nil {
			t.Fatalf("no %s path", kind)
		}
		if !near(s.Median, med) || !near(s.Min, lo) || !near(s.Max, hi) || !near(s.spread(), spread) {
			t.Errorf("%s: gain median %v, range %v to %v, spread %v; want %v, %v to %v, %v", kind, s.Median, s.Min, s.Max, s.spread(), med, lo, hi, spread)
		}
		if s.beatsSpread() != beats || s.lagsSpread() != lags {
			t.Errorf("%s: median above the spread %v, below minus it %v; want %v, %v", kind, s.beatsSpread(), s.lagsSpread(), beats, lags)
		}
		if !near(s.CPUMedian, cpuMed) {
			t.Errorf("%s: CPU saved median %v, want %v", kind, s.CPUMedian, cpuMed)
		}
	}
	f("reject", 2.5, -1, 5, 6, false, false, 5)
	f("proxy", 4, 3, 5, 2, true, false, 100*(1-50.0/52))
	f("limit", -4, -5, -3, 2, false, true, 100*(1-52.0/50))

	back := sideReport(t, r, "ab-x",
		"# authgate A/B: bin/authgate-ab-1111111 (A) against bin/authgate-ab-2222222 (B)",
		"each run 5s after a 1s warm-up",
		"| reject | 6 | 102 | 100 | +2.5% | -1.0%–+5.0% | 6.0 | no | +5.0% | -10.0%–+20.0% |",
		"| proxy | 4 | 104 | 100 | +4.0% | +3.0%–+5.0% | 2.0 | yes |",
		"| limit | 4 | 96 | 100 | -4.0% | -5.0%–-3.0% | 2.0 | no: B faster beyond the spread |",
		"| 4 | B | 99 | 100 | -1.0% |",
	)
	if back.AB == nil || len(back.AB.Paths) != 3 || back.AB.Paths[1].Median != r.AB.Paths[1].Median {
		t.Fatal("the JSON does not hold the A/B run")
	}
}

// sideReport writes r, a run's report with nothing of the whole
// benchmark's (an A/B or a -streams-pairs run), as base; checks that its
// markdown has each of want and none of the whole benchmark's sections,
// and that no chart was written; and returns the report read back from
// its JSON.
func sideReport(t *testing.T, r *Report, base string, want ...string) Report {
	t.Helper()
	dir, md := written(t, r, base)
	for _, w := range want {
		if !strings.Contains(string(md), w) {
			t.Errorf("the markdown lacks %q:\n%s", w, md)
		}
	}
	if strings.Contains(string(md), "Closed loop") || strings.Contains(string(md), "Ratios") {
		t.Error("the report has the whole benchmark's sections")
	}
	if _, err := os.Stat(filepath.Join(dir, base+".svg")); err == nil {
		t.Error("the report has a chart")
	}
	back, err := Read(filepath.Join(dir, base+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return *back
}
