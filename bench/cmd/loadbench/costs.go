package main

import (
	"context"
	"os"

	"github.com/authgate/authgate/bench/internal/report"
)

// logCost measures what the access log costs ((g)): for the reject and the
// proxy path, -cost-pairs pairs of runs of the gateway with its log (A) and
// without (B, bench/cmd/nolog), one right after the other, in alternating
// order (runPairs). Each pair gives a cost; the report takes their median.
// The closed loop's (g) rows are one run of each per repeat, always in the
// same order, which a drift of the machine's speed within a repeat biases.
func (b *bench) logCost(ctx context.Context) error {
	for _, pp := range pairPaths {
		pairs, err := b.costPairs(ctx, "log cost", pp, "authgate", "authgate-nolog")
		if err != nil {
			return err
		}
		b.rep.AddLogCost(pp.kind, pairs)
	}
	return nil
}

// routingCost measures what routing by model costs ((i)): -cost-pairs
// pairs of proxy runs of the gateway routing between two declared pools
// (authgate-routed) and of the gateway in front of one (authgate), one
// right after the other, in alternating order (runPairs). The closed
// loop's (i) row alone compares medians of runs minutes apart, which this
// machine's drift of speed outweighs.
func (b *bench) routingCost(ctx context.Context) error {
	pairs, err := b.costPairs(ctx, "routing cost", proxyPath, "authgate-routed", "authgate")
	if err == nil {
		b.rep.SetRoutingCost(pairs)
	}
	return err
}

// meteringCost measures what token metering costs: -cost-pairs pairs of
// proxy runs of the gateway with metering on (authgate) and off
// (authgate-nometer, TOKEN_METERING=false), back to back, in alternating
// order. Its bar: on at least 0.9 of off's throughput.
func (b *bench) meteringCost(ctx context.Context) error {
	pairs, err := b.costPairs(ctx, "metering cost", proxyPath, "authgate", "authgate-nometer")
	if err == nil {
		b.rep.SetMeteringCost(pairs)
	}
	return err
}

// costPairs runs -cost-pairs pairs (runPairs) on path pp of the targets
// named on (the feature on) and off, logging each pair as what.
func (b *bench) costPairs(ctx context.Context, what string, pp pairPath, on, off string) ([]report.CostPair, error) {
	var pairs []report.CostPair
	err := b.runPairs(ctx, what, pp, b.targets[on], b.targets[off], b.o.costPairs, func(i int, ron, roff report.ClosedRun) {
		p := report.CostPair{On: ron, Off: roff, OnFirst: aFirst(i)}
		b.logf("%s %-6s pair %d: %s %9.0f req/s, %s %9.0f req/s: %.1f%%", what, pp.kind, i+1, on, p.On.RPS, off, p.Off.RPS, p.Cost())
		pairs = append(pairs, p)
	})
	return pairs, err
}

// runCost is the whole run with -cost NAME: that cost's pairs alone,
// reported in OUT/cost-NAME.{md,json}.
func (b *bench) runCost(ctx context.Context) error {
	if err := b.check(b.scenarios()); err != nil {
		return err
	}
	warmup, duration := pairRunTimes(b.o)
	b.logf("%s cost only: %d pairs, %v each (+%v warm-up)", b.o.costOnly, b.o.costPairs, duration, warmup)
	run := map[string]func(context.Context) error{"log": b.logCost, "routing": b.routingCost, "metering": b.meteringCost}[b.o.costOnly]
	if err := run(ctx); err != nil {
		return err
	}
	b.rep.Finish()
	return b.rep.Write(b.o.out, "cost-"+b.o.costOnly, os.Stdout)
}
