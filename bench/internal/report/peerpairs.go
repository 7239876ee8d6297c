package report

import (
	"fmt"
	"strings"
)

// PeerPairs is a run of loadbench -streams-pairs: at each count of
// streams, alternating pairs of streams-at-scale runs of authgate and
// nginx, compared by CPU per event within each pair.
type PeerPairs struct {
	Settings ScaleSettings `json:"settings"`
	Counts   []PeerPairSum `json:"counts"`
}

// PeerPair is two streams-at-scale runs, one right after the other, each
// server and its upstream started afresh.
type PeerPair struct {
	Authgate      ScaleRun `json:"authgate"`
	Nginx         ScaleRun `json:"nginx"`
	AuthgateFirst bool     `json:"authgate_first"`
}

// Ratio is authgate's CPU per event over nginx's.
func (p PeerPair) Ratio() float64 { return p.Authgate.CPUPerEvent / p.Nginx.CPUPerEvent }

// PeerPairSum is one count's pairs and their ratios.
type PeerPairSum struct {
	Streams int        `json:"streams"` // run: the count asked within the open-files limit
	Asked   int        `json:"asked"`
	Pairs   []PeerPair `json:"pairs"`
	Median  float64    `json:"cpu_ratio_median"` // median of the pairs' Ratio
	Min     float64    `json:"cpu_ratio_min"`
	Max     float64    `json:"cpu_ratio_max"`
}

// StartPeerPairs makes r a -streams-pairs run's report, with the
// scenario's settings s. Start is called first, for the machine.
func (r *Report) StartPeerPairs(s ScaleSettings) { r.PeerPairs = &PeerPairs{Settings: s} }

// AddPeerPairs adds the pairs of one count: asked, of which n were run.
func (r *Report) AddPeerPairs(asked, n int, pairs []PeerPair) {
	s := PeerPairSum{Streams: n, Asked: asked, Pairs: pairs}
	s.Median, s.Min, s.Max = spread(pairs, PeerPair.Ratio)
	r.PeerPairs.Counts = append(r.PeerPairs.Counts, s)
}

// peerPairsMarkdown renders a -streams-pairs run's report: per count the
// summary, then every pair.
func (r *Report) peerPairsMarkdown() string {
	var b strings.Builder
	pp, s := r.PeerPairs, r.PeerPairs.Settings
	b.WriteString("# authgate beside nginx, streams at scale, in alternating pairs\n\n")
	r.machineLines(&b)
	fmt.Fprintf(&b, "Pairs of streams-at-scale runs of authgate and nginx (%d events %s apart, %d bytes each; the streams open over %s, then %s measured), "+
		"one right after the other, authgate first in pairs 1, 3, 5…; each server and its upstream started afresh; the server on CPU %s, the upstream and the load on CPU %s. "+
		"Ratio: authgate's CPU per event over nginx's in the same pair.\n\n",
		s.Events, s.Interval, s.EventBytes, s.Ramp, s.Plateau, s.ServerCPU, s.LoadCPU)
	b.WriteString("| streams | pairs | authgate CPU per event (median) | nginx | ratio, median | (min–max) | pairs at most 1 | authgate RSS per stream (median) | nginx | failed: authgate, nginx |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range pp.Counts {
		atMost1 := 0
		var failedA, failedN int64
		for _, p := range c.Pairs {
			if p.Ratio() <= 1 {
				atMost1++
			}
			failedA += p.Authgate.Streams.Failed()
			failedN += p.Nginx.Streams.Failed()
		}
		fmt.Fprintf(&b, "| %s | %d | %s µs | %s µs | %.2f | %.2f–%.2f | %d | %s KiB | %s KiB | %d, %d |\n",
			pairsCount(c), len(c.Pairs),
			num(median(c.Pairs, func(p PeerPair) float64 { return p.Authgate.CPUPerEvent })),
			num(median(c.Pairs, func(p PeerPair) float64 { return p.Nginx.CPUPerEvent })),
			c.Median, c.Min, c.Max, atMost1,
			kib(median(c.Pairs, func(p PeerPair) float64 { return p.Authgate.RSSPerStream() })),
			kib(median(c.Pairs, func(p PeerPair) float64 { return p.Nginx.RSSPerStream() })),
			failedA, failedN)
	}
	for _, c := range pp.Counts {
		fmt.Fprintf(&b, "\n## %s streams: every pair\n\n", pairsCount(c))
		b.WriteString("| pair | first | authgate CPU per event | nginx | ratio | authgate server CPU | nginx | authgate events/s | nginx | first event p50, authgate | nginx | on its way p99, authgate | nginx |\n")
		b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for i, p := range c.Pairs {
			first := "nginx"
			if p.AuthgateFirst {
				first = "authgate"
			}
			a, n := p.Authgate, p.Nginx
			fmt.Fprintf(&b, "| %d | %s | %s µs | %s µs | %.2f | %s | %s | %.0f | %.0f | %.0f µs | %.0f µs | %.0f µs | %.0f µs |\n",
				i+1, first, num(a.CPUPerEvent), num(n.CPUPerEvent), p.Ratio(), num(a.ServerCPU), num(n.ServerCPU),
				a.Streams.EventsPerSec, n.Streams.EventsPerSec, a.Streams.TTFE50, n.Streams.TTFE50, a.Streams.Transit99, n.Streams.Transit99)
		}
	}
	b.WriteString("\nServer CPU is in cores over the measured window. The times are the servers' own, not less the upstream's directly (no direct run is made).\n")
	return b.String()
}

// pairsCount is a count's streams, and the count asked for when the
// open-files limit made it fewer.
func pairsCount(c PeerPairSum) string {
	if c.Streams < c.Asked {
		return fmt.Sprintf("%d (%d asked)", c.Streams, c.Asked)
	}
	return fmt.Sprint(c.Streams)
}
