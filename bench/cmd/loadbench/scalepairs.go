package main

import (
	"context"
	"fmt"
	"os"

	"github.com/authgate/authgate/bench/internal/report"
)

// runStreamsPairs is -streams-pairs N: at each count of streams, N pairs
// of streams-at-scale runs (scaleRun) of authgate and nginx, one right
// after the other, authgate first in every other pair (aFirst), reported
// in OUT/streams-pairs.{md,json}. The whole scenario runs each server once
// per count, minutes from the other, and this machine's speed drifts by a
// quarter between such runs; a pair sets the two side by side.
func (b *bench) runStreamsPairs(ctx context.Context) error {
	o := b.o
	b.rep.Start(report.Settings{ServerCPU: o.serverCPU, LoadCPU: o.loadCPU, Peers: true}, o.wrk)
	settings, err := b.scaleSetup(ctx)
	if err != nil {
		return err
	}
	b.rep.StartPeerPairs(settings)
	b.logf("streams pairs: %v streams, %d pairs of authgate and nginx each", o.streamCounts, o.streamsPairs)
	for _, asked := range o.streamCounts {
		n := min(asked, b.maxStreams())
		var pairs []report.PeerPair
		for i := range o.streamsPairs {
			p := report.PeerPair{AuthgateFirst: aFirst(i)}
			sides := [2]*report.ScaleRun{&p.Authgate, &p.Nginx}
			names := [2]string{"authgate", "nginx"}
			order := [2]int{0, 1}
			if !p.AuthgateFirst {
				order = [2]int{1, 0}
			}
			for _, k := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				run, err := b.scaleRun(ctx, names[k], asked, n)
				if err != nil {
					return fmt.Errorf("streams pairs, %d through %s, pair %d: %w", n, names[k], i+1, err)
				}
				*sides[k] = run
			}
			b.logf("streams pairs %5d pair %d: authgate %.1f µs/event, nginx %.1f: ratio %.2f; failed %d, %d",
				n, i+1, p.Authgate.CPUPerEvent, p.Nginx.CPUPerEvent, p.Ratio(), p.Authgate.Streams.Failed(), p.Nginx.Streams.Failed())
			pairs = append(pairs, p)
		}
		b.rep.AddPeerPairs(asked, n, pairs)
	}
	b.rep.Finish()
	return b.rep.Write(o.out, "streams-pairs", os.Stdout)
}
