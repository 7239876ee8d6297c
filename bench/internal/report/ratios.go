package report

import (
	"fmt"
	"time"
)

func bar(met bool) *bool { return &met }

// ratios computes the ratios and differences the issue asks for, each
// with its bar where the issue sets one.
func (r *Report) ratios() []Ratio {
	var out []Ratio
	add := func(name string, value float64, unit, barText string, met *bool) {
		out = append(out, Ratio{Name: name, Value: value, Unit: unit, Bar: barText, Met: met})
	}
	a, b, bn := r.closed("ceiling/ceiling"), r.closed("reject/authgate"), r.closed("reject/authgate-nolog")
	c, d, dn := r.closed("direct/mock"), r.closed("proxy/authgate"), r.closed("proxy/authgate-nolog")
	e := r.closed("limit/authgate")
	if a != nil && b != nil {
		v := b.Median.RPS / a.Median.RPS
		add("reject / ceiling, throughput", v, "x", "≥ 0.95", bar(v >= 0.95))
	}
	if a != nil && b != nil && b.Median.CPUPerReq > 0 {
		add("ceiling / reject, server CPU per request (the throughput ratio if the load generator were free)", a.Median.CPUPerReq/b.Median.CPUPerReq, "x", "", nil)
	}
	if a != nil && bn != nil {
		add("reject with access log off / ceiling, throughput", bn.Median.RPS/a.Median.RPS, "x", "", nil)
	}
	if ag := r.closed("ceiling/ceiling-gw"); a != nil && ag != nil {
		add("ceiling with the gateway's server settings / ceiling, throughput (what those settings cost fasthttp)", ag.Median.RPS/a.Median.RPS, "x", "", nil)
		if b != nil {
			add("reject / ceiling with the gateway's server settings, throughput", b.Median.RPS/ag.Median.RPS, "x", "", nil)
		}
	}
	if a != nil && e != nil {
		add("429 / ceiling, throughput", e.Median.RPS/a.Median.RPS, "x", "", nil)
	}
	if h := r.closed("proxy/authgate-redis"); d != nil && h != nil {
		v := h.Median.RPS / d.Median.RPS
		add("proxied with limits in Redis / in-process limiter, throughput", v, "x", "≥ 0.5", bar(v >= 0.5))
		add("p99 added by the Redis round trip", h.Median.P99-d.Median.P99, "µs", "", nil)
	}
	// The bar goes with the alternating pairs (routingCost) when the run
	// has them, as the log cost's does.
	if rc := r.Routing; rc != nil {
		add(fmt.Sprintf("routing by model between two pools, throughput lost against one pool (median of %d alternating pairs, %.1f%% to %.1f%%)", len(rc.Pairs), rc.Min, rc.Max),
			rc.Median, "%", "≤ 5%", bar(rc.Median <= 5))
		add("routing by model, server CPU per request added (median of the pairs)", rc.CPUMedian, "%", "", nil)
	}
	if mc := r.Metering; mc != nil {
		v := 1 - mc.Median/100
		add(fmt.Sprintf("token metering on / off, proxied throughput (median of %d alternating pairs; cost %.1f%% to %.1f%%)", len(mc.Pairs), mc.Min, mc.Max),
			v, "x", "≥ 0.9", bar(v >= 0.9))
	}
	if rt := r.closed("proxy/authgate-routed"); d != nil && rt != nil {
		v := 100 * (1 - rt.Median.RPS/d.Median.RPS)
		if r.Routing != nil {
			add("routing by model, throughput lost, from the closed loop's medians", v, "%", "", nil)
		} else {
			add("routing by model between two pools, throughput lost against one pool", v, "%", "≤ 5%", bar(v <= 5))
		}
	}
	if c != nil && d != nil {
		add("proxied / direct, throughput", d.Median.RPS/c.Median.RPS, "x", "", nil)
		v := d.Median.P50 - c.Median.P50
		add(fmt.Sprintf("overhead at p50, closed loop (%d connections, each at its own saturation)", d.Conns), v, "µs", "≤ 50 µs", bar(v <= 50))
		add("overhead at p99, closed loop", d.Median.P99-c.Median.P99, "µs", "", nil)
	}
	if fd, fm := r.fixed("authgate"), r.fixed("mock"); fd != nil && fm != nil {
		v := fd.Median.P50 - fm.Median.P50
		add(fmt.Sprintf("overhead at p50, open loop at %.0f req/s (the same load on both)", r.FixedRate), v, "µs", "≤ 50 µs", bar(v <= 50))
		add(fmt.Sprintf("overhead at p99, open loop at %.0f req/s", r.FixedRate), fd.Median.P99-fm.Median.P99, "µs", "", nil)
	}
	if sg, sd := r.stream("authgate"), r.stream("direct"); sg != nil && sd != nil {
		v := sg.Median.TTFE50 - sd.Median.TTFE50
		add("streaming: time to first event, gateway − direct (p50)", v, "µs", "≤ 1000 µs", bar(v <= 1000))
		add("streaming: delay between events, gateway − direct (p50)", sg.Median.Gap50-sd.Median.Gap50, "µs", "", nil)
	}
	for _, p := range []struct {
		kind     string
		on, off  *ClosedResult
		pathName string
	}{{"reject", b, bn, "reject path"}, {"proxy", d, dn, "proxy path"}} {
		// The bar goes with the alternating pairs (logCost) when the run
		// has them; a report from before them has the closed loop's only.
		lc := r.logCost(p.kind)
		if lc != nil {
			add(fmt.Sprintf("access log cost, %s (throughput lost with the log on; median of %d alternating pairs, %.1f%% to %.1f%%)", p.pathName, len(lc.Pairs), lc.Min, lc.Max),
				lc.Median, "%", "≤ 5%", bar(lc.Median <= 5))
			add(fmt.Sprintf("access log cost, %s, server CPU per request (median of the pairs)", p.pathName), lc.CPUMedian, "%", "", nil)
		}
		if p.on != nil && p.off != nil {
			v := 100 * (1 - p.on.Median.RPS/p.off.Median.RPS)
			if lc != nil {
				add(fmt.Sprintf("access log cost, %s, from the closed loop's medians (log on, then off, in every repeat)", p.pathName), v, "%", "", nil)
			} else {
				add(fmt.Sprintf("access log cost, %s (throughput lost with the log on)", p.pathName), v, "%", "≤ 5%", bar(v <= 5))
			}
		}
	}
	for _, peer := range []string{"nginx", "haproxy"} {
		pd := r.closed("proxy/" + peer)
		if pd == nil || d == nil {
			continue
		}
		v := d.Median.RPS / pd.Median.RPS
		add("proxied throughput, authgate / "+peer, v, "x", "≥ 1.2", bar(v >= 1.2))
		v = d.Median.P99 / pd.Median.P99
		add("proxied p99 (closed loop), authgate / "+peer, v, "x", "< 1 (lower p99)", bar(v < 1))
		if fd, fp := r.fixed("authgate"), r.fixed(peer); fd != nil && fp != nil {
			v = fd.Median.P99 / fp.Median.P99
			add(fmt.Sprintf("proxied p99 at %.0f req/s (open loop), authgate / %s", r.FixedRate, peer), v, "x", "< 1 (lower p99)", bar(v < 1))
		}
		if pb := r.closed("reject/" + peer); pb != nil && b != nil {
			add("reject throughput, authgate / "+peer, b.Median.RPS/pb.Median.RPS, "x", "", nil)
		}
		if pe := r.closed("limit/" + peer); pe != nil && e != nil {
			add("429 throughput, authgate / "+peer, e.Median.RPS/pe.Median.RPS, "x", "", nil)
		}
		for _, us := range []float64{1000, 10000} {
			if ga, gp := r.bound("authgate", us), r.bound(peer, us); ga != nil && gp != nil && gp.Median > 0 {
				add(fmt.Sprintf("highest rate with p99 ≤ %s, authgate / %s", fmtBound(us), peer), ga.Median/gp.Median, "x", "", nil)
			}
		}
	}
	return out
}

func fmtBound(us float64) string {
	return (time.Duration(us) * time.Microsecond).String()
}
