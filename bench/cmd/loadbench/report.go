package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is everything one run measured, as written to latest.json.
type report struct {
	started   time.Time
	Generated string         `json:"generated"`
	Machine   machineInfo    `json:"machine"`
	Settings  settings       `json:"settings"`
	Closed    []closedResult `json:"closed_loop"`
	Streams   []streamSum    `json:"streaming"`
	FixedRate float64        `json:"fixed_rate"`
	Fixed     []openSum      `json:"fixed_rate_runs"`
	Bounds    []boundSum     `json:"latency_bounds,omitempty"`
	LogCost   []logCostSum   `json:"log_cost,omitempty"`
	Ratios    []ratio        `json:"ratios"`
}

// logPair is one of logCost's pairs: the gateway with its access log and
// without, run one right after the other.
type logPair struct {
	On      closedRun `json:"on"`
	Off     closedRun `json:"off"`
	OnFirst bool      `json:"on_first"` // the run with the log came first
}

// cost is the throughput lost with the log on, in %.
func (p logPair) cost() float64 { return 100 * (1 - p.On.RPS/p.Off.RPS) }

// cpuCost is the server CPU time per request added by the log, in %.
func (p logPair) cpuCost() float64 { return 100 * (p.On.CPUPerReq/p.Off.CPUPerReq - 1) }

// logCostSum is the access log's cost on one path, from logCost's pairs.
type logCostSum struct {
	Kind      string    `json:"kind"` // reject or proxy
	Pairs     []logPair `json:"pairs"`
	Median    float64   `json:"median_pct"`     // median of the pairs' costs
	Min       float64   `json:"min_pct"`        // the lowest pair's
	Max       float64   `json:"max_pct"`        // the highest pair's
	CPUMedian float64   `json:"cpu_median_pct"` // median of the pairs' cpuCost
}

type machineInfo struct {
	CPU       string            `json:"cpu"`
	Cores     int               `json:"cores"`
	Kernel    string            `json:"kernel"`
	MemGiB    float64           `json:"mem_gib"`
	Go        string            `json:"go"`
	Commit    string            `json:"commit"`
	LoadStart [3]float64        `json:"loadavg_start"`
	LoadEnd   [3]float64        `json:"loadavg_end"`
	Versions  map[string]string `json:"versions"`
}

type settings struct {
	Duration    string `json:"duration"`
	Warmup      string `json:"warmup"`
	Repeats     int    `json:"repeats"`
	Conns       int    `json:"conns"`
	ServerCPU   string `json:"server_cpu"`
	LoadCPU     string `json:"load_cpu"`
	StreamDelay string `json:"stream_delay"`
	Peers       bool   `json:"peers"`
}

// closedResult is one closed-loop scenario's runs and their median.
type closedResult struct {
	ID     string      `json:"id"`
	Kind   string      `json:"kind"`
	Server string      `json:"server"`
	Label  string      `json:"label"`
	Status int         `json:"status"`
	Conns  int         `json:"conns"`
	Runs   []closedRun `json:"runs"`
	Median closedRun   `json:"median"`
	RPSMin float64     `json:"rps_min"`
	RPSMax float64     `json:"rps_max"`
}

type streamSum struct {
	Target string         `json:"target"`
	Runs   []streamResult `json:"runs"`
	Median streamResult   `json:"median"`
}

type openSum struct {
	Target string           `json:"target"`
	Runs   []openLoopResult `json:"runs"`
	Median openLoopResult   `json:"median"`
}

type boundSum struct {
	Target  string    `json:"target"`
	BoundUS float64   `json:"p99_bound_us"`
	Rates   []float64 `json:"rates"`
	Median  float64   `json:"median_rate"`
}

// ratio is one derived figure, with the bar for it if it has one.
type ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"` // "x", "µs" or "%"
	Bar   string  `json:"bar,omitempty"`
	Met   *bool   `json:"met,omitempty"`
}

// median returns the median of the values f picks from runs (the mean of
// the two middle ones for an even count).
func median[T any](runs []T, f func(T) float64) float64 {
	if len(runs) == 0 {
		return 0
	}
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func medianClosed(runs []closedRun) closedRun {
	m := func(f func(closedRun) float64) float64 { return median(runs, f) }
	return closedRun{
		RPS:         m(func(r closedRun) float64 { return r.RPS }),
		P50:         m(func(r closedRun) float64 { return r.P50 }),
		P90:         m(func(r closedRun) float64 { return r.P90 }),
		P99:         m(func(r closedRun) float64 { return r.P99 }),
		Max:         m(func(r closedRun) float64 { return r.Max }),
		Requests:    int64(m(func(r closedRun) float64 { return float64(r.Requests) })),
		Errors:      int64(m(func(r closedRun) float64 { return float64(r.Errors) })),
		WrongStatus: int64(m(func(r closedRun) float64 { return float64(r.WrongStatus) })),
		ServerCPU:   m(func(r closedRun) float64 { return r.ServerCPU }),
		UpstreamCPU: m(func(r closedRun) float64 { return r.UpstreamCPU }),
		LoadCPU:     m(func(r closedRun) float64 { return r.LoadCPU }),
		CPUPerReq:   m(func(r closedRun) float64 { return r.CPUPerReq }),
		Logged:      int64(m(func(r closedRun) float64 { return float64(r.Logged) })),
		Sent:        int64(m(func(r closedRun) float64 { return float64(r.Sent) })),
	}
}

func medianStream(runs []streamResult) streamResult {
	m := func(f func(streamResult) float64) float64 { return median(runs, f) }
	return streamResult{
		Streams: int(m(func(r streamResult) float64 { return float64(r.Streams) })),
		TTFE50:  m(func(r streamResult) float64 { return r.TTFE50 }),
		TTFE99:  m(func(r streamResult) float64 { return r.TTFE99 }),
		Gap50:   m(func(r streamResult) float64 { return r.Gap50 }),
		Gap99:   m(func(r streamResult) float64 { return r.Gap99 }),
		Events:  int(m(func(r streamResult) float64 { return float64(r.Events) })),
	}
}

func medianOpen(runs []openLoopResult) openLoopResult {
	m := func(f func(openLoopResult) float64) float64 { return median(runs, f) }
	return openLoopResult{
		Rate:     m(func(r openLoopResult) float64 { return r.Rate }),
		Achieved: m(func(r openLoopResult) float64 { return r.Achieved }),
		Requests: int64(m(func(r openLoopResult) float64 { return float64(r.Requests) })),
		Errors:   int64(m(func(r openLoopResult) float64 { return float64(r.Errors) })),
		Late:     int64(m(func(r openLoopResult) float64 { return float64(r.Late) })),
		P50:      m(func(r openLoopResult) float64 { return r.P50 }),
		P90:      m(func(r openLoopResult) float64 { return r.P90 }),
		P99:      m(func(r openLoopResult) float64 { return r.P99 }),
		Max:      m(func(r openLoopResult) float64 { return r.Max }),
		GenCPU:   m(func(r openLoopResult) float64 { return r.GenCPU }),
	}
}

// start records the machine and the settings at the start of a run.
func (r *report) start(o options) {
	r.started = time.Now()
	r.Machine = machineInfo{
		CPU:       cpuModel(),
		Cores:     cpuCores(),
		Kernel:    strings.TrimSpace(readString("/proc/sys/kernel/osrelease")),
		MemGiB:    memGiB(),
		Go:        runtime.Version(),
		Commit:    gitCommit(),
		LoadStart: loadAvg(),
		Versions:  map[string]string{"wrk": version(o.wrk, "-v")},
	}
	if o.peers {
		r.Machine.Versions["nginx"] = version("nginx", "-v")
		r.Machine.Versions["haproxy"] = version("haproxy", "-v")
	}
	r.Settings = settings{
		Duration: o.duration.String(), Warmup: o.warmup.String(), Repeats: o.repeats, Conns: o.conns,
		ServerCPU: o.serverCPU, LoadCPU: o.loadCPU, StreamDelay: o.streamDelay.String(), Peers: o.peers,
	}
}

func (r *report) addClosed(s *scenario, conns int, runs []closedRun) {
	cr := closedResult{ID: s.id(), Kind: s.Kind, Server: s.Server, Label: s.Label, Status: s.Status, Conns: conns,
		Runs: runs, Median: medianClosed(runs)}
	cr.RPSMin, cr.RPSMax = runs[0].RPS, runs[0].RPS
	for _, run := range runs {
		cr.RPSMin, cr.RPSMax = min(cr.RPSMin, run.RPS), max(cr.RPSMax, run.RPS)
	}
	r.Closed = append(r.Closed, cr)
}

// closed returns the closed-loop result with id, or nil.
// find returns a pointer to the first element of s that match accepts, or
// nil.
func find[T any](s []T, match func(*T) bool) *T {
	for i := range s {
		if match(&s[i]) {
			return &s[i]
		}
	}
	return nil
}

func (r *report) closed(id string) *closedResult {
	return find(r.Closed, func(c *closedResult) bool { return c.ID == id })
}

// closedMedian returns the median run of the closed-loop result id (zero
// if there is none).
func (r *report) closedMedian(id string) closedRun {
	if c := r.closed(id); c != nil {
		return c.Median
	}
	return closedRun{}
}

func (r *report) addStreams(names []string, runs [][]streamResult, _ time.Duration) {
	for i, name := range names {
		r.Streams = append(r.Streams, streamSum{Target: name, Runs: runs[i], Median: medianStream(runs[i])})
	}
}

func (r *report) addOpen(names []string, fixed [][]openLoopResult, bounds []time.Duration, rates [][][]float64, skipBounds bool) {
	for i, name := range names {
		r.Fixed = append(r.Fixed, openSum{Target: name, Runs: fixed[i], Median: medianOpen(fixed[i])})
	}
	if skipBounds {
		return
	}
	for i, name := range names {
		for k, bound := range bounds {
			rs := rates[i][k]
			r.Bounds = append(r.Bounds, boundSum{Target: name, BoundUS: float64(bound / time.Microsecond), Rates: rs,
				Median: median(rs, func(v float64) float64 { return v })})
		}
	}
}

func (r *report) addLogCost(kind string, pairs []logPair) {
	lc := logCostSum{Kind: kind, Pairs: pairs,
		Median:    median(pairs, logPair.cost),
		CPUMedian: median(pairs, logPair.cpuCost),
	}
	if len(pairs) > 0 {
		lc.Min, lc.Max = pairs[0].cost(), pairs[0].cost()
		for _, p := range pairs {
			lc.Min, lc.Max = min(lc.Min, p.cost()), max(lc.Max, p.cost())
		}
	}
	r.LogCost = append(r.LogCost, lc)
}

func (r *report) logCost(kind string) *logCostSum {
	return find(r.LogCost, func(c *logCostSum) bool { return c.Kind == kind })
}

func (r *report) fixed(target string) *openSum {
	return find(r.Fixed, func(c *openSum) bool { return c.Target == target })
}

func (r *report) stream(target string) *streamSum {
	return find(r.Streams, func(c *streamSum) bool { return c.Target == target })
}

func (r *report) bound(target string, us float64) *boundSum {
	return find(r.Bounds, func(c *boundSum) bool { return c.Target == target && c.BoundUS == us })
}

// finish records the load at the end and computes the ratios.
func (r *report) finish() {
	r.Machine.LoadEnd = loadAvg()
	r.Generated = time.Now().UTC().Format(time.RFC3339)
	r.Ratios = r.ratios()
}

func bar(met bool) *bool { return &met }

// ratios computes the ratios and differences the issue asks for, each
// with its bar where the issue sets one.
func (r *report) ratios() []ratio {
	var out []ratio
	add := func(name string, value float64, unit, barText string, met *bool) {
		out = append(out, ratio{Name: name, Value: value, Unit: unit, Bar: barText, Met: met})
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
		on, off  *closedResult
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

// write writes latest.md, latest.json and latest.svg into dir and the
// markdown to stdout.
func (r *report) write(dir string, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	md := r.markdown()
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"latest.md":   []byte(md),
		"latest.json": append(js, '\n'),
		"latest.svg":  []byte(r.svg()),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	_, err = io.WriteString(stdout, md)
	return err
}

// renderReport rewrites latest.md and latest.svg in dir from the report in
// the JSON file at path (after a change to how they are drawn).
func renderReport(path, dir string) error {
	js, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(js, &r); err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.svg"), []byte(r.svg()), 0o644)
}

// serverName is how the tables name a server.
var serverName = map[string]string{
	"ceiling":        "bare fasthttp",
	"ceiling-gw":     "fasthttp, gateway's settings",
	"authgate":       "authgate",
	"authgate-nolog": "authgate, log off",
	"authgate-redis": "authgate, Redis",
	"mock":           "mock upstream",
	"direct":         "mock upstream",
	"nginx":          "nginx",
	"haproxy":        "HAProxy",
}

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

// markdown renders the report as the table printed and kept in latest.md.
func (r *report) markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# authgate load benchmark\n\n")
	fmt.Fprintf(&b, "%s, commit %s. %s, %d cores, %.0f GiB, Linux %s, %s.\n", r.Generated, m.Commit, m.CPU, m.Cores, m.MemGiB, m.Kernel, m.Go)
	var vers []string
	for _, k := range slices.Sorted(maps.Keys(m.Versions)) {
		vers = append(vers, k+" "+m.Versions[k])
	}
	fmt.Fprintf(&b, "Load average (1, 5, 15 min) at the start %.2f %.2f %.2f, at the end %.2f %.2f %.2f. %s.\n\n",
		m.LoadStart[0], m.LoadStart[1], m.LoadStart[2], m.LoadEnd[0], m.LoadEnd[1], m.LoadEnd[2], strings.Join(vers, ", "))
	s := r.Settings
	pin := "no pinning"
	if s.ServerCPU != "" || s.LoadCPU != "" {
		pin = fmt.Sprintf("the server under test on CPU %s; the load generator, the streaming and fixed-rate clients and the upstream behind the proxies on CPU %s (the direct-upstream scenario's mock on CPU %s)", s.ServerCPU, s.LoadCPU, s.ServerCPU)
	}
	fmt.Fprintf(&b, "Each figure is the median of %d repeats, run round-robin, each %s after a %s warm-up, at %d connections; %s. Latencies in µs. CPU in cores used (1.00 = one core busy).\n\n",
		s.Repeats, s.Duration, s.Warmup, s.Conns, pin)

	fmt.Fprintf(&b, "## Closed loop (wrk, %d connections)\n\n", s.Conns)
	b.WriteString("| scenario | server | req/s | (min–max) | p50 | p90 | p99 | max | server CPU | server CPU µs/req | upstream CPU | wrk CPU |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range r.Closed {
		md := c.Median
		up := "–"
		if md.UpstreamCPU > 0 {
			up = num(md.UpstreamCPU)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f–%.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s |\n",
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
		fmt.Fprintf(&b, "\nRuns in which the server under test used less than 0.9 of its core (another process took the core, or something else was the limit): %s.\n", strings.Join(starved, ", "))
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
		fmt.Fprintf(&b, "\nRuns whose access log lost lines (only a server whose log may drop them by design, HAProxy's to a pipe, is let through): %s.\n", strings.Join(lost, ", "))
	}

	if len(r.Streams) > 0 {
		fmt.Fprintf(&b, "\n## (f) Streaming (one stream at a time; the upstream pauses %s between events)\n\n", s.StreamDelay)
		b.WriteString("| path | streams | events each | first event p50 | p99 | between events p50 | p99 |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, st := range r.Streams {
			md := st.Median
			name := "direct to the upstream"
			if st.Target != "direct" {
				name = "through " + serverName[st.Target]
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %.0f | %.0f | %.0f |\n", name, md.Streams, md.Events, md.TTFE50, md.TTFE99, md.Gap50, md.Gap99)
		}
	}

	if len(r.Fixed) > 0 {
		fmt.Fprintf(&b, "\n## Fixed rate (open loop, %.0f req/s, %d connections, proxied 200s)\n\n", r.FixedRate, s.Conns)
		b.WriteString("| server | achieved req/s | p50 | p90 | p99 | max | late sends | generator CPU |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, f := range r.Fixed {
			md := f.Median
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %d | %s |\n", serverName[f.Target], md.Achieved, md.P50, md.P90, md.P99, md.Max, md.Late, num(md.GenCPU))
		}
	}

	if len(r.Bounds) > 0 {
		fmt.Fprintf(&b, "\n## Highest rate under a p99 bound (open loop, %d connections, proxied 200s)\n\n", s.Conns)
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
			fmt.Fprintf(&b, " p99 ≤ %s, req/s | (runs) |", fmtBound(us))
		}
		b.WriteString("\n| --- |" + strings.Repeat(" ---: | ---: |", len(bounds)) + "\n")
		for _, t := range targets {
			fmt.Fprintf(&b, "| %s |", serverName[t])
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
				fmt.Fprintf(&b, " %s | %s |", med, strings.Join(runs, ", "))
			}
			b.WriteString("\n")
		}
	}

	if len(r.LogCost) > 0 {
		b.WriteString("\n## (g) Access log cost, alternating pairs\n\n")
		b.WriteString("Pairs of closed-loop runs of authgate with its access log and without, one right after the other, the log-on run first in every other pair; each pair's cost is the throughput it lost with the log on.\n\n")
		b.WriteString("| path | pairs | log on, req/s (median) | log off, req/s (median) | cost, median | (min–max) | cost by server CPU per request, median |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, lc := range r.LogCost {
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.1f%% | %.1f%%–%.1f%% | %.1f%% |\n", lc.Kind, len(lc.Pairs),
				median(lc.Pairs, func(p logPair) float64 { return p.On.RPS }), median(lc.Pairs, func(p logPair) float64 { return p.Off.RPS }),
				lc.Median, lc.Min, lc.Max, lc.CPUMedian)
		}
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

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func cpuModel() string {
	for _, line := range strings.Split(readString("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// cpuCores counts the machine's processors (runtime.NumCPU counts those
// this process may run on, one when pinned).
func cpuCores() int {
	n := strings.Count(readString("/proc/cpuinfo"), "\nprocessor")
	if strings.HasPrefix(readString("/proc/cpuinfo"), "processor") {
		n++
	}
	return max(n, runtime.NumCPU())
}

func memGiB() float64 {
	for _, line := range strings.Split(readString("/proc/meminfo"), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / (1 << 20)
		}
	}
	return 0
}

func loadAvg() [3]float64 {
	var l [3]float64
	f := strings.Fields(readString("/proc/loadavg"))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

// version returns the first line a program prints with flag (nginx
// prints its version on stderr).
func version(prog, flag string) string {
	out, _ := exec.Command(prog, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	for _, prefix := range []string{"nginx version: ", "HAProxy version "} {
		line = strings.TrimPrefix(line, prefix)
	}
	if f := strings.Fields(line); len(f) > 0 && prog != "wrk" {
		return f[0]
	}
	if f := strings.Fields(line); len(f) > 1 {
		return f[1]
	}
	return line
}
