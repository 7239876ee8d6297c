package report

import (
	"slices"

	"github.com/authgate/authgate/bench/internal/loadgen"
)

// spread returns the median, the lowest and the highest of the values f
// picks from runs (zeros for none).
func spread[T any](runs []T, f func(T) float64) (med, lo, hi float64) {
	if len(runs) == 0 {
		return 0, 0, 0
	}
	lo, hi = f(runs[0]), f(runs[0])
	for _, r := range runs[1:] {
		lo, hi = min(lo, f(r)), max(hi, f(r))
	}
	return median(runs, f), lo, hi
}

// median returns the median of the values f picks from runs (the mean of
// the two middle ones for an even count).
func median[T any](runs []T, f func(T) float64) float64 {
	if len(runs) == 0 {
		return 0
	}
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func medianClosed(runs []ClosedRun) ClosedRun {
	m := func(f func(ClosedRun) float64) float64 { return median(runs, f) }
	return ClosedRun{
		RPS:         m(func(r ClosedRun) float64 { return r.RPS }),
		P50:         m(func(r ClosedRun) float64 { return r.P50 }),
		P90:         m(func(r ClosedRun) float64 { return r.P90 }),
		P99:         m(func(r ClosedRun) float64 { return r.P99 }),
		Max:         m(func(r ClosedRun) float64 { return r.Max }),
		Requests:    int64(m(func(r ClosedRun) float64 { return float64(r.Requests) })),
		Errors:      int64(m(func(r ClosedRun) float64 { return float64(r.Errors) })),
		WrongStatus: int64(m(func(r ClosedRun) float64 { return float64(r.WrongStatus) })),
		ServerCPU:   m(func(r ClosedRun) float64 { return r.ServerCPU }),
		UpstreamCPU: m(func(r ClosedRun) float64 { return r.UpstreamCPU }),
		LoadCPU:     m(func(r ClosedRun) float64 { return r.LoadCPU }),
		CPUPerReq:   m(func(r ClosedRun) float64 { return r.CPUPerReq }),
		Logged:      int64(m(func(r ClosedRun) float64 { return float64(r.Logged) })),
		Sent:        int64(m(func(r ClosedRun) float64 { return float64(r.Sent) })),
	}
}

func medianStream(runs []loadgen.StreamResult) loadgen.StreamResult {
	m := func(f func(loadgen.StreamResult) float64) float64 { return median(runs, f) }
	return loadgen.StreamResult{
		Streams: int(m(func(r loadgen.StreamResult) float64 { return float64(r.Streams) })),
		TTFE50:  m(func(r loadgen.StreamResult) float64 { return r.TTFE50 }),
		TTFE99:  m(func(r loadgen.StreamResult) float64 { return r.TTFE99 }),
		Gap50:   m(func(r loadgen.StreamResult) float64 { return r.Gap50 }),
		Gap99:   m(func(r loadgen.StreamResult) float64 { return r.Gap99 }),
		Events:  int(m(func(r loadgen.StreamResult) float64 { return float64(r.Events) })),
	}
}

func medianOpen(runs []loadgen.OpenLoopResult) loadgen.OpenLoopResult {
	m := func(f func(loadgen.OpenLoopResult) float64) float64 { return median(runs, f) }
	return loadgen.OpenLoopResult{
		Rate:     m(func(r loadgen.OpenLoopResult) float64 { return r.Rate }),
		Achieved: m(func(r loadgen.OpenLoopResult) float64 { return r.Achieved }),
		Requests: int64(m(func(r loadgen.OpenLoopResult) float64 { return float64(r.Requests) })),
		Errors:   int64(m(func(r loadgen.OpenLoopResult) float64 { return float64(r.Errors) })),
		Late:     int64(m(func(r loadgen.OpenLoopResult) float64 { return float64(r.Late) })),
		P50:      m(func(r loadgen.OpenLoopResult) float64 { return r.P50 }),
		P90:      m(func(r loadgen.OpenLoopResult) float64 { return r.P90 }),
		P99:      m(func(r loadgen.OpenLoopResult) float64 { return r.P99 }),
		Max:      m(func(r loadgen.OpenLoopResult) float64 { return r.Max }),
		GenCPU:   m(func(r loadgen.OpenLoopResult) float64 { return r.GenCPU }),
	}
}
