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
	o := b.o
	on, off := b.targets["authgate"], b.targets["authgate-nolog"]
	for _, pp := range pairPaths {
		var pairs []report.CostPair
		err := b.runPairs(ctx, "log cost", pp, on, off, o.costPairs, func(i int, ron, roff report.ClosedRun) {
			p := report.CostPair{On: ron, Off: roff, OnFirst: aFirst(i)}
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

// routingCost measures what routing by model costs ((i)): -cost-pairs
// pairs of proxy runs of the gateway routing between two declared pools
// (authgate-routed) and of the gateway in front of one (authgate), one
// right after the other, in alternating order (runPairs). The closed
// loop's (i) row alone compares medians of runs minutes apart, which this
// machine's drift of speed outweighs.
func (b *bench) routingCost(ctx context.Context) error {
	o := b.o
	routed, one := b.targets["authgate-routed"], b.targets["authgate"]
	var pairs []report.CostPair
	err := b.runPairs(ctx, "routing cost", proxyPath, routed, one, o.costPairs, func(i int, rr, ro report.ClosedRun) {
		p := report.CostPair{On: rr, Off: ro, OnFirst: aFirst(i)}
		b.logf("routing cost pair %d: routed %9.0f req/s, one pool %9.0f req/s: %.1f%%", i+1, p.On.RPS, p.Off.RPS, p.Cost())
		pairs = append(pairs, p)
	})
	if err != nil {
		return err
	}
	b.rep.SetRoutingCost(pairs)
	return nil
}

// meteringCost measures what token metering costs: -cost-pairs pairs of
// proxy runs of the gateway with metering on (authgate) and off
// (authgate-nometer, TOKEN_METERING=false), back to back, in alternating
// order. Its bar: on at least 0.9 of off's throughput.
func (b *bench) meteringCost(ctx context.Context) error {
	on, off := b.targets["authgate"], b.targets["authgate-nometer"]
	var pairs []report.CostPair
	err := b.runPairs(ctx, "metering cost", proxyPath, on, off, b.o.costPairs, func(i int, ron, roff report.ClosedRun) {
		p := report.CostPair{On: ron, Off: roff, OnFirst: aFirst(i)}
		b.logf("metering cost pair %d: on %9.0f req/s, off %9.0f req/s: %.1f%%", i+1, p.On.RPS, p.Off.RPS, p.Cost())
		pairs = append(pairs, p)
	})
	if err != nil {
		return err
	}
	b.rep.SetMeteringCost(pairs)
	return nil
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
