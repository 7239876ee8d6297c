package report

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// serverName is how the tables name a server.
var serverName = map[string]string{
	"ceiling":         "bare fasthttp",
	"ceiling-gw":      "fasthttp, gateway's settings",
	"authgate":        "authgate",
	"authgate-nolog":  "authgate, log off",
	"authgate-redis":  "authgate, Redis",
	"authgate-routed": "authgate, routed by model",
	"mock":            "mock upstream",
	"direct":          "mock upstream",
	"nginx":           "nginx",
	"haproxy":         "HAProxy",
}

// num formats a CPU figure with two significant decimals below 10, one
// below 100, none above.
func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// machineLines writes the report's first lines: when, which commit, the
// machine and its load.
func (r *Report) machineLines(b *strings.Builder) {
	m := r.Machine
	fmt.Fprintf(b, "%s, commit %s. %s, %d cores, %.0f GiB, Linux %s, %s.\n", r.Generated, m.Commit, m.CPU, m.Cores, m.MemGiB, m.Kernel, m.Go)
	var vers []string
	for _, k := range slices.Sorted(maps.Keys(m.Versions)) {
		vers = append(vers, k+" "+m.Versions[k])
	}
	fmt.Fprintf(b, "Load average (1, 5, 15 min) at the start %.2f %.2f %.2f, at the end %.2f %.2f %.2f. %s.\n\n",
		m.LoadStart[0], m.LoadStart[1], m.LoadStart[2], m.LoadEnd[0], m.LoadEnd[1], m.LoadEnd[2], strings.Join(vers, ", "))
}

// markdown renders the report as the table printed and kept in latest.md
// (an A/B run's: abMarkdown; a -streams-pairs run's: peerPairsMarkdown).
func (r *Report) markdown() string {
	if r.AB != nil {
		return r.abMarkdown()
	}
	if r.PeerPairs != nil {
		return r.peerPairsMarkdown()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# authgate load benchmark\n\n")
	r.machineLines(&b)
	if len(r.Closed) > 0 {
		r.closedMarkdown(&b)
	}
	if r.Scale != nil {
		r.Scale.scaleMarkdown(&b)
	}
	if len(r.Ratios) == 0 {
		return b.String()
	}
	b.WriteString("\n## Ratios and the issue's bars\n\n")
	b.WriteString("| measure | value | bar | met |\n| --- | ---: | --- | --- |\n")
	for _, ra := range r.Ratios {
		var v string
		switch ra.Unit {
		case "x":
			v = fmt.Sprintf("%.2f", ra.Value)
		case "%":
			v = fmt.Sprintf("%.1f%%", ra.Value)
		default:
			v = fmt.Sprintf("%.0f %s", ra.Value, ra.Unit)
		}
		met := ""
		if ra.Met != nil {
			met = "no"
			if *ra.Met {
				met = "yes"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", ra.Name, v, ra.Bar, met)
	}
	b.WriteString("\nThe issue's last bar, no allocation per request on the admit and reject paths, is measured by the in-process benchmarks: `make bench-go` (`-benchmem`).\n")
	return b.String()
}

// closedMarkdown writes the sections of the closed-loop, streaming,
// fixed-rate and cost scenarios.
func (r *Report) closedMarkdown(b *strings.Builder) {
	s := r.Settings
	pin := "no pinning"
	if s.ServerCPU != "" || s.LoadCPU != "" {
		pin = fmt.Sprintf("the server under test on CPU %s; the load generator, the streaming and fixed-rate clients and the upstream behind the proxies on CPU %s (the direct-upstream scenario's mock on CPU %s)", s.ServerCPU, s.LoadCPU, s.ServerCPU)
	}
	fmt.Fprintf(b, "Each figure is the median of %d repeats, run round-robin, each %s after a %s warm-up, at %d connections; %s. Latencies in µs. CPU in cores used (1.00 = one core busy).\n\n",
		s.Repeats, s.Duration, s.Warmup, s.Conns, pin)

	fmt.Fprintf(b, "## Closed loop (wrk, %d connections)\n\n", s.Conns)
	b.WriteString("| scenario | server | req/s | (min–max) | p50 | p90 | p99 | max | server CPU | server CPU µs/req | upstream CPU | wrk CPU |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range r.Closed {
		md := c.Median
		up := "–"
		if md.UpstreamCPU > 0 {
			up = num(md.UpstreamCPU)
		}
		fmt.Fprintf(b, "| %s | %s | %.0f | %.0f–%.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s |\n",
			c.Label, serverName[c.Server], md.RPS, c.RPSMin, c.RPSMax, md.P50, md.P90, md.P99, md.Max,
			num(md.ServerCPU), num(md.CPUPerReq), up, num(md.LoadCPU))
	}

	var starved []string
	for _, c := range r.Closed {
		for i, run := range c.Runs {
			if run.ServerCPU < 0.9 {
				starved = append(starved, fmt.Sprintf("%s repeat %d (%.2f)", c.ID, i+1, run.ServerCPU))
			}
		}
	}
	if len(starved) > 0 {
		fmt.Fprintf(b, "\nRuns in which the server under test used less than 0.9 of its core (another process took the core, or something else was the limit): %s.\n", strings.Join(starved, ", "))
	}
	var lost []string
	for _, c := range r.Closed {
		for i, run := range c.Runs {
			if run.Logged >= 0 && run.Logged < run.Sent {
				lost = append(lost, fmt.Sprintf("%s repeat %d (%d of %d)", c.ID, i+1, run.Sent-run.Logged, run.Sent))
			}
		}
	}
	if len(lost) > 0 {
		fmt.Fprintf(b, "\nRuns whose access log lost lines (only a server whose log may drop them by design, HAProxy's to a pipe, is let through): %s.\n", strings.Join(lost, ", "))
	}

	if len(r.Streams) > 0 {
		fmt.Fprintf(b, "\n## (f) Streaming (one stream at a time; the upstream pauses %s between events)\n\n", s.StreamDelay)
		b.WriteString("| path | streams | events each | first event p50 | p99 | between events p50 | p99 |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, st := range r.Streams {
			md := st.Median
			name := "direct to the upstream"
			if st.Target != "direct" {
				name = "through " + serverName[st.Target]
			}
			fmt.Fprintf(b, "| %s | %d | %d | %.0f | %.0f | %.0f | %.0f |\n", name, md.Streams, md.Events, md.TTFE50, md.TTFE99, md.Gap50, md.Gap99)
		}
	}

	if len(r.Fixed) > 0 {
		fmt.Fprintf(b, "\n## Fixed rate (open loop, %.0f req/s, %d connections, proxied 200s)\n\n", r.FixedRate, s.Conns)
		b.WriteString("| server | achieved req/s | p50 | p90 | p99 | max | late sends | generator CPU |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, f := range r.Fixed {
			md := f.Median
			fmt.Fprintf(b, "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %d | %s |\n", serverName[f.Target], md.Achieved, md.P50, md.P90, md.P99, md.Max, md.Late, num(md.GenCPU))
		}
	}

	if len(r.Bounds) > 0 {
		fmt.Fprintf(b, "\n## Highest rate under a p99 bound (open loop, %d connections, proxied 200s)\n\n", s.Conns)
		var bounds []float64
		var targets []string
		for _, bs := range r.Bounds {
			if !slices.Contains(bounds, bs.BoundUS) {
				bounds = append(bounds, bs.BoundUS)
			}
			if !slices.Contains(targets, bs.Target) {
				targets = append(targets, bs.Target)
			}
		}
		b.WriteString("| server |")
		for _, us := range bounds {
			fmt.Fprintf(b, " p99 ≤ %s, req/s | (runs) |", fmtBound(us))
		}
		b.WriteString("\n| --- |" + strings.Repeat(" ---: | ---: |", len(bounds)) + "\n")
		for _, t := range targets {
			fmt.Fprintf(b, "| %s |", serverName[t])
			for _, us := range bounds {
				bs := r.bound(t, us)
				var runs []string
				for _, v := range bs.Rates {
					runs = append(runs, fmt.Sprintf("%.0f", v))
				}
				med := fmt.Sprintf("%.0f", bs.Median)
				if bs.Median == 0 {
					med = "none found" // not even hi/64
				}
				fmt.Fprintf(b, " %s | %s |", med, strings.Join(runs, ", "))
			}
			b.WriteString("\n")
		}
	}

	if len(r.LogCost) > 0 {
		costTable(b, "(g) Access log cost", "Pairs of closed-loop runs of authgate with its access log and without, one right after the other, the log-on run first in every other pair; each pair's cost is the throughput it lost with the log on.",
			"log on", "log off", r.LogCost...)
	}
	if mc := r.Metering; mc != nil {
		costTable(b, "Token metering cost", "Pairs of closed-loop proxy runs of authgate with token metering on and off (`TOKEN_METERING=false`), one right after the other; each pair's cost is the throughput lost with metering on.",
			"on", "off", *mc)
	}
	if rc := r.Routing; rc != nil {
		costTable(b, "(i) Routing cost", "Pairs of closed-loop proxy runs of authgate routing by model between two declared pools and of authgate in front of one pool, one right after the other, the routed run first in every other pair; each pair's cost is the throughput the routed gateway lost.",
			"routed", "one pool", *rc)
	}

}

// costTable writes a cost's section: its title, what its pairs are, and
// a row per path of the pairs' medians (on and off, named so), the median
// cost and its range, and the cost by server CPU per request.
func costTable(b *strings.Builder, title, intro, on, off string, sums ...CostSum) {
	fmt.Fprintf(b, "\n## %s, alternating pairs\n\n%s\n\n", title, intro)
	fmt.Fprintf(b, "| path | pairs | %s, req/s (median) | %s, req/s (median) | cost, median | (min–max) | cost by server CPU per request, median |\n", on, off)
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, cs := range sums {
		fmt.Fprintf(b, "| %s | %d | %.0f | %.0f | %.1f%% | %.1f%%–%.1f%% | %.1f%% |\n", cs.Kind, len(cs.Pairs),
			median(cs.Pairs, func(p CostPair) float64 { return p.On.RPS }), median(cs.Pairs, func(p CostPair) float64 { return p.Off.RPS }),
			cs.Median, cs.Min, cs.Max, cs.CPUMedian)
	}
}
