// Package report is what one run of the load benchmark measured, and its
// renderings: the markdown table printed and kept in latest.md, the
// figures in latest.json, the chart in latest.svg. bench/README.md
// describes the method and the figures.
package report

import (
	"runtime"
	"strings"
	"time"

	"github.com/authgate/authgate/bench/internal/loadgen"
)

// Report is everything one run measured, as written to latest.json. Start
// begins it, the Add methods fill it as the run goes, Finish computes the
// ratios and Write writes it. It is not safe for concurrent use.
type Report struct {
	started   time.Time
	Generated string         `json:"generated"`
	Machine   MachineInfo    `json:"machine"`
	Settings  Settings       `json:"settings"`
	Closed    []ClosedResult `json:"closed_loop"`
	Streams   []StreamSum    `json:"streaming"`
	FixedRate float64        `json:"fixed_rate"`
	Fixed     []OpenSum      `json:"fixed_rate_runs"`
	Bounds    []BoundSum     `json:"latency_bounds,omitempty"`
	LogCost   []CostSum      `json:"log_cost,omitempty"`
	Routing   *CostSum       `json:"routing_cost,omitempty"`  // proxy path, routed (on) against one pool (off)
	Metering  *CostSum       `json:"metering_cost,omitempty"` // proxy path, token metering on against off
	Ratios    []Ratio        `json:"ratios"`
	AB        *ABRun         `json:"ab,omitempty"`               // an A/B run's (StartAB), which has nothing else
	PeerPairs *PeerPairs     `json:"peer_pairs,omitempty"`       // a -streams-pairs run's (StartPeerPairs), which has nothing else
	Scale     *ScaleReport   `json:"streams_at_scale,omitempty"` // the streams-at-scale and idle-clients scenarios
}

// Scenario names a closed-loop scenario: the path (Kind), the server
// under test, and the status every response must have.
type Scenario struct {
	Kind   string // ceiling, reject, direct, proxy, limit
	Server string // ceiling, authgate, authgate-nolog, mock, nginx, haproxy
	Label  string
	Status int
}

// ID is the scenario's identifier in the report: kind/server.
func (s Scenario) ID() string { return s.Kind + "/" + s.Server }

// ClosedRun is one closed-loop measurement.
type ClosedRun struct {
	RPS         float64 `json:"rps"`
	P50         float64 `json:"p50_us"`
	P90         float64 `json:"p90_us"`
	P99         float64 `json:"p99_us"`
	Max         float64 `json:"max_us"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`                // socket errors and timeouts
	WrongStatus int64   `json:"wrong_status"`          // responses without the scenario's status
	ServerCPU   float64 `json:"server_cpu"`            // cores used by the server under test
	UpstreamCPU float64 `json:"upstream_cpu"`          // cores used by the upstream behind it
	LoadCPU     float64 `json:"load_cpu"`              // cores used by wrk
	CPUPerReq   float64 `json:"server_cpu_us_per_req"` // server CPU time per response, µs
	Logged      int64   `json:"logged"`                // access-log lines (warm-up included), -1 without a log
	Sent        int64   `json:"sent"`                  // requests wrk completed, warm-up included
}

// CostPair is one pair of runs that measures what a feature costs: the
// gateway doing it (On) and not (Off), one right after the other. The log
// cost's pairs turn the access log on and off; the routing cost's route
// by model between two pools (On) or proxy to one (Off).
type CostPair struct {
	On      ClosedRun `json:"on"`
	Off     ClosedRun `json:"off"`
	OnFirst bool      `json:"on_first"` // the run with the feature on came first
}

// Cost is the throughput lost with the feature on, in %.
func (p CostPair) Cost() float64 { return 100 * (1 - p.On.RPS/p.Off.RPS) }

// cpuCost is the server CPU time per request added by the feature, in %.
func (p CostPair) cpuCost() float64 { return 100 * (p.On.CPUPerReq/p.Off.CPUPerReq - 1) }

// CostSum is a feature's cost on one path, from its pairs.
type CostSum struct {
	Kind      string     `json:"kind"` // reject or proxy
	Pairs     []CostPair `json:"pairs"`
	Median    float64    `json:"median_pct"`     // median of the pairs' costs
	Min       float64    `json:"min_pct"`        // the lowest pair's
	Max       float64    `json:"max_pct"`        // the highest pair's
	CPUMedian float64    `json:"cpu_median_pct"` // median of the pairs' cpuCost
}

// MachineInfo is the machine the run ran on, and its load.
type MachineInfo struct {
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

// Settings are the run's settings, as loadbench's flags set them.
type Settings struct {
	Duration    string `json:"duration"`
	Warmup      string `json:"warmup"`
	Repeats     int    `json:"repeats"`
	Conns       int    `json:"conns"`
	ServerCPU   string `json:"server_cpu"`
	LoadCPU     string `json:"load_cpu"`
	StreamDelay string `json:"stream_delay"`
	Peers       bool   `json:"peers"`
}

// ClosedResult is one closed-loop scenario's runs and their median.
type ClosedResult struct {
	ID     string      `json:"id"`
	Kind   string      `json:"kind"`
	Server string      `json:"server"`
	Label  string      `json:"label"`
	Status int         `json:"status"`
	Conns  int         `json:"conns"`
	Runs   []ClosedRun `json:"runs"`
	Median ClosedRun   `json:"median"`
	RPSMin float64     `json:"rps_min"`
	RPSMax float64     `json:"rps_max"`
}

// StreamSum is one streaming target's runs and their median.
type StreamSum struct {
	Target string                 `json:"target"`
	Runs   []loadgen.StreamResult `json:"runs"`
	Median loadgen.StreamResult   `json:"median"`
}

// OpenSum is one target's fixed-rate runs and their median.
type OpenSum struct {
	Target string                   `json:"target"`
	Runs   []loadgen.OpenLoopResult `json:"runs"`
	Median loadgen.OpenLoopResult   `json:"median"`
}

// BoundSum is the highest rate found under one p99 bound for one target,
// in each repeat, and their median.
type BoundSum struct {
	Target  string    `json:"target"`
	BoundUS float64   `json:"p99_bound_us"`
	Rates   []float64 `json:"rates"`
	Median  float64   `json:"median_rate"`
}

// Ratio is one derived figure, with the bar for it if it has one.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"` // "x", "µs" or "%"
	Bar   string  `json:"bar,omitempty"`
	Met   *bool   `json:"met,omitempty"`
}

// Start records the machine and s at the start of a run; wrk is the wrk
// command, whose version it records (nginx's and HAProxy's too if
// s.Peers).
func (r *Report) Start(s Settings, wrk string) {
	r.started = time.Now()
	r.Machine = MachineInfo{
		CPU:       cpuModel(),
		Cores:     cpuCores(),
		Kernel:    strings.TrimSpace(readString("/proc/sys/kernel/osrelease")),
		MemGiB:    memGiB(),
		Go:        runtime.Version(),
		Commit:    gitCommit(),
		LoadStart: loadAvg(),
		Versions:  map[string]string{"wrk": version(wrk, "-v")},
	}
	if s.Peers {
		r.Machine.Versions["nginx"] = version("nginx", "-v")
		r.Machine.Versions["haproxy"] = version("haproxy", "-v")
	}
	r.Settings = s
}

// Started returns when Start was called.
func (r *Report) Started() time.Time { return r.started }

// AddClosed adds scenario s's closed-loop runs, at least one, made with
// conns connections.
func (r *Report) AddClosed(s Scenario, conns int, runs []ClosedRun) {
	cr := ClosedResult{ID: s.ID(), Kind: s.Kind, Server: s.Server, Label: s.Label, Status: s.Status, Conns: conns,
		Runs: runs, Median: medianClosed(runs)}
	cr.RPSMin, cr.RPSMax = runs[0].RPS, runs[0].RPS
	for _, run := range runs {
		cr.RPSMin, cr.RPSMax = min(cr.RPSMin, run.RPS), max(cr.RPSMax, run.RPS)
	}
	r.Closed = append(r.Closed, cr)
}

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

// closed returns the closed-loop result with id, or nil.
func (r *Report) closed(id string) *ClosedResult {
	return find(r.Closed, func(c *ClosedResult) bool { return c.ID == id })
}

// ClosedMedian returns the median run of the closed-loop result id (zero
// if there is none).
func (r *Report) ClosedMedian(id string) ClosedRun {
	if c := r.closed(id); c != nil {
		return c.Median
	}
	return ClosedRun{}
}

// AddStreams adds the streaming runs: runs[i] are names[i]'s.
func (r *Report) AddStreams(names []string, runs [][]loadgen.StreamResult) {
	for i, name := range names {
		r.Streams = append(r.Streams, StreamSum{Target: name, Runs: runs[i], Median: medianStream(runs[i])})
	}
}

// AddOpen adds the open-loop runs: fixed[i] are names[i]'s fixed-rate
// runs, rates[i][k] the highest rates it held under bounds[k] (none if
// skipBounds).
func (r *Report) AddOpen(names []string, fixed [][]loadgen.OpenLoopResult, bounds []time.Duration, rates [][][]float64, skipBounds bool) {
	for i, name := range names {
		r.Fixed = append(r.Fixed, OpenSum{Target: name, Runs: fixed[i], Median: medianOpen(fixed[i])})
	}
	if skipBounds {
		return
	}
	for i, name := range names {
		for k, bound := range bounds {
			rs := rates[i][k]
			r.Bounds = append(r.Bounds, BoundSum{Target: name, BoundUS: float64(bound / time.Microsecond), Rates: rs,
				Median: median(rs, func(v float64) float64 { return v })})
		}
	}
}

// costSum sums up the pairs of a feature's cost on path kind.
func costSum(kind string, pairs []CostPair) CostSum {
	cs := CostSum{Kind: kind, Pairs: pairs, CPUMedian: median(pairs, CostPair.cpuCost)}
	cs.Median, cs.Min, cs.Max = spread(pairs, CostPair.Cost)
	return cs
}

// AddLogCost adds the log cost's pairs on path kind (reject or proxy).
func (r *Report) AddLogCost(kind string, pairs []CostPair) {
	r.LogCost = append(r.LogCost, costSum(kind, pairs))
}

// SetMeteringCost sets the metering cost's pairs, on the proxy path.
func (r *Report) SetMeteringCost(pairs []CostPair) {
	cs := costSum("proxy", pairs)
	r.Metering = &cs
}

// SetRoutingCost sets the routing cost's pairs, on the proxy path.
func (r *Report) SetRoutingCost(pairs []CostPair) {
	cs := costSum("proxy", pairs)
	r.Routing = &cs
}

func (r *Report) logCost(kind string) *CostSum {
	return find(r.LogCost, func(c *CostSum) bool { return c.Kind == kind })
}

func (r *Report) fixed(target string) *OpenSum {
	return find(r.Fixed, func(c *OpenSum) bool { return c.Target == target })
}

func (r *Report) stream(target string) *StreamSum {
	return find(r.Streams, func(c *StreamSum) bool { return c.Target == target })
}

func (r *Report) bound(target string, us float64) *BoundSum {
	return find(r.Bounds, func(c *BoundSum) bool { return c.Target == target && c.BoundUS == us })
}

// FinishScale records the load at the end of the streams-at-scale
// scenarios, which StartScale began.
func (r *Report) FinishScale() { r.Scale.finish() }

// Finish records the load at the end and computes the ratios.
func (r *Report) Finish() {
	r.Machine.LoadEnd = loadAvg()
	r.Generated = time.Now().UTC().Format(time.RFC3339)
	r.Ratios = r.ratios()
}
