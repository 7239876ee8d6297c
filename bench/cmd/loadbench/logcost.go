package main

import (
	"context"
	"fmt"
	"time"

	"github.com/authgate/authgate/bench/internal/keyset"
	"github.com/authgate/authgate/bench/internal/report"
)

// logPairs is the number of log-on, log-off pairs of runs logCost makes
// for each path.
const logPairs = 6

// logRunTimes are the warm-up and the measured time of each of logCost's
// runs: half the closed loop's, and at least a second.
func logRunTimes(o options) (warmup, duration time.Duration) {
	return max(o.warmup/2, time.Second), max(o.duration/2, time.Second)
}

// logOnFirst reports whether the pair i of logCost runs the gateway with
// its log first: pairs alternate, so that a machine whose speed drifts
// during the run favours neither side.
func logOnFirst(i int) bool { return i%2 == 0 }

// logCost measures what the access log costs ((g)): for the reject and the
// proxy path, logPairs pairs of runs of the gateway with its log and
// without (bench/cmd/nolog), one right after the other, in alternating
// order. Each pair gives a cost; the report takes their median. The
// closed loop's (g) rows are one run of each per repeat, always in the
// same order, which a drift of the machine's speed within a repeat biases.
func (b *bench) logCost(ctx context.Context) error {
	on, off := b.targets["authgate"], b.targets["authgate-nolog"]
	warmup, duration := logRunTimes(b.o)
	for _, path := range []struct {
		kind, key string
		status    int
	}{{"reject", keyset.Unknown, 401}, {"proxy", keyset.Valid, 200}} {
		sOn := &scenario{Kind: path.kind, Server: "authgate", Status: path.status, target: on, key: path.key}
		sOff := &scenario{Kind: path.kind, Server: "authgate-nolog", Status: path.status, target: off, key: path.key}
		var pairs []report.LogPair
		for i := range logPairs {
			order := []*scenario{sOn, sOff}
			if !logOnFirst(i) {
				order = []*scenario{sOff, sOn}
			}
			var p report.LogPair
			p.OnFirst = logOnFirst(i)
			for _, s := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				cr, err := b.closedLoopFor(ctx, s, warmup, duration)
				if err != nil {
					return fmt.Errorf("log cost, %s, pair %d: %w", s.id(), i+1, err)
				}
				if s == sOn {
					p.On = cr
				} else {
					p.Off = cr
				}
			}
			b.logf("log cost %-6s pair %d: log on %9.0f req/s, off %9.0f req/s: %.1f%%", path.kind, i+1, p.On.RPS, p.Off.RPS, p.Cost())
			pairs = append(pairs, p)
		}
		b.rep.AddLogCost(path.kind, pairs)
	}
	return nil
}
