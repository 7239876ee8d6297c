package main

import (
	"context"
	"fmt"
	"time"

	"github.com/authgate/authgate/bench/internal/keyset"
	"github.com/authgate/authgate/bench/internal/report"
)

// pairRunTimes are the warm-up and the measured time of each run of a pair
// (runPairs): half the closed loop's, and at least a second.
func pairRunTimes(o options) (warmup, duration time.Duration) {
	return max(o.warmup/2, time.Second), max(o.duration/2, time.Second)
}

// aFirst reports whether pair i of runPairs runs its A side first: pairs
// alternate, so that a machine whose speed drifts during the run favours
// neither side.
func aFirst(i int) bool { return i%2 == 0 }

// pairPath is a path runPairs compares two targets on: its kind, key and
// status.
type pairPath struct {
	kind, key string
	status    int
}

// proxyPath is the proxy path: a valid key, the upstream's 200.
var proxyPath = pairPath{"proxy", keyset.Valid, 200}

// pairPaths are the reject and the proxy path.
var pairPaths = []pairPath{{"reject", keyset.Unknown, 401}, proxyPath}

// scenario returns the closed-loop scenario of path pp on t.
func (pp pairPath) scenario(t *target) *scenario {
	return &scenario{Kind: pp.kind, Server: t.name, Status: pp.status, target: t, key: pp.key}
}

// runPairs runs n pairs of closed-loop runs on path pp, of target a and
// target bt, one right after the other, a first in every other pair
// (aFirst), each run pairRunTimes long. It calls done with each pair's
// runs as the pair ends; what names the comparison in errors.
func (b *bench) runPairs(ctx context.Context, what string, pp pairPath, a, bt *target, n int, done func(i int, ra, rb report.ClosedRun)) error {
	sides := [2]*scenario{pp.scenario(a), pp.scenario(bt)}
	warmup, duration := pairRunTimes(b.o)
	for i := range n {
		order := [2]int{0, 1}
		if !aFirst(i) {
			order = [2]int{1, 0}
		}
		var runs [2]report.ClosedRun
		for _, k := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			cr, err := b.closedLoopFor(ctx, sides[k], warmup, duration)
			if err != nil {
				return fmt.Errorf("%s, %s, pair %d: %w", what, sides[k].id(), i+1, err)
			}
			runs[k] = cr
		}
		done(i, runs[0], runs[1])
	}
	return nil
}
