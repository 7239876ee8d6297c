package main

import (
	"context"

	"github.com/authgate/authgate/bench/internal/report"
)

// logPairs is the number of log-on, log-off pairs of runs logCost makes
// for each path.
const logPairs = 6

// logCost measures what the access log costs ((g)): for the reject and the
// proxy path, logPairs pairs of runs of the gateway with its log (A) and
// without (B, bench/cmd/nolog), one right after the other, in alternating
// order (runPairs). Each pair gives a cost; the report takes their median.
// The closed loop's (g) rows are one run of each per repeat, always in the
// same order, which a drift of the machine's speed within a repeat biases.
func (b *bench) logCost(ctx context.Context) error {
	on, off := b.targets["authgate"], b.targets["authgate-nolog"]
	for _, pp := range pairPaths {
		var pairs []report.LogPair
		err := b.runPairs(ctx, "log cost", pp, on, off, logPairs, func(i int, ron, roff report.ClosedRun) {
			p := report.LogPair{On: ron, Off: roff, OnFirst: aFirst(i)}
			b.logf("log cost %-6s pair %d: log on %9.0f req/s, off %9.0f req/s: %.1f%%", pp.kind, i+1, p.On.RPS, p.Off.RPS, p.Cost())
			pairs = append(pairs, p)
		})
		if err != nil {
			return err
		}
		b.rep.AddLogCost(pp.kind, pairs)
	}
	return nil
}
