package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/authgate/authgate/bench/internal/report"
)

// runAB is the whole run with -ab: o.abPairs pairs of runs of two gateway
// binaries, -bin (A) and -ab (B), on each of pairPaths. Each pair gives A's
// gain over B; the report takes their median and range
// (bench/README.md#comparing-two-builds).
func (b *bench) runAB(ctx context.Context) error {
	o := b.o
	a, bt := b.targets["authgate"], b.targets["authgate-b"]
	var checks []*scenario
	for _, pp := range pairPaths {
		checks = append(checks, pp.scenario(a), pp.scenario(bt))
	}
	if err := b.check(checks); err != nil {
		return err
	}
	warmup, duration := pairRunTimes(o)
	total := time.Duration(len(pairPaths)*2*o.abPairs) * (warmup + duration + time.Second)
	b.logf("A/B: A %s, B %s: %d pairs x %d paths, %v each (+%v warm-up); about %v in all",
		o.bin, o.ab, o.abPairs, len(pairPaths), duration, warmup, total.Round(time.Second))
	b.rep.StartAB(o.bin, o.ab, warmup, duration)
	for _, pp := range pairPaths {
		var pairs []report.ABPair
		err := b.runPairs(ctx, "A/B", pp, a, bt, o.abPairs, func(i int, ra, rb report.ClosedRun) {
			p := report.ABPair{A: ra, B: rb, AFirst: aFirst(i)}
			b.logf("A/B %-6s pair %d: A %9.0f req/s %6.2f µs/req, B %9.0f req/s %6.2f µs/req: gain %+.1f%%, CPU saved %+.1f%%",
				pp.kind, i+1, ra.RPS, ra.CPUPerReq, rb.RPS, rb.CPUPerReq, p.Gain(), p.CPUSaved())
			pairs = append(pairs, p)
		})
		if err != nil {
			return err
		}
		b.rep.AddAB(pp.kind, pairs)
	}
	b.rep.Finish()
	return b.rep.Write(o.out, abReportName(o.ab), os.Stdout)
}

// abReportName is the base name of an -ab run's report files: ab-NAME,
// NAME being B's file name.
func abReportName(binB string) string { return "ab-" + filepath.Base(binB) }
