package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/authgate/authgate/bench/internal/proc"
	"github.com/authgate/authgate/bench/internal/report"
)

// target is a server the load is sent to.
type target struct {
	name      string
	addr      string
	procs     []*proc.Process // whose CPU counts as the server's
	proxies   bool            // it proxies to the upstream, whose CPU is counted apart
	accessLog string          // its access log, "" if none
	admin     string          // its admin listener, "" if none
	// lossyLog: its access log may drop lines by design (HAProxy's log to
	// a pipe does not block); lines lost are reported, not a failure.
	lossyLog bool
}

// cpu returns the CPU time the target's processes have used so far.
func (t *target) cpu() time.Duration {
	var d time.Duration
	for _, p := range t.procs {
		d += proc.CPU(p.Pid())
	}
	return d
}

// bench is one run of the benchmark.
type bench struct {
	o        options
	dir      string
	procs    []*proc.Process
	targets  map[string]*target
	upstream *target // the mock upstream the proxies use, on the load's core
	rep      report.Report
	fdLimit  uint64 // open files per process, raised to the hard limit
}

// start starts a process (proc.Start) in the run's directory and keeps it
// for stopAll.
func (b *bench) start(name, cpus string, env []string, stdin, stdout *os.File, argv ...string) (*proc.Process, error) {
	p, err := proc.Start(b.dir, name, cpus, env, stdin, stdout, argv...)
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, p)
	return p, nil
}

// stopAll stops every process started, in reverse order, and removes the
// temporary directory unless -keep.
func (b *bench) stopAll() {
	for _, p := range slices.Backward(b.procs) {
		p.Stop()
	}
	b.procs = nil
	if b.dir != "" {
		if b.o.keep {
			fmt.Fprintln(os.Stderr, "loadbench: kept", b.dir)
		} else {
			os.RemoveAll(b.dir)
		}
	}
}

// logf writes a progress line to stderr.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadbench: "+format+"\n", args...)
}

// run is the whole run: it starts the servers, checks every scenario,
// runs them and writes the report. The caller stops the servers (stopAll),
// whatever it returns.
func (b *bench) run(ctx context.Context) error {
	o := b.o
	bins := []string{o.bin, o.ceiling, o.nolog}
	switch {
	case o.ab != "":
		bins = []string{o.bin, o.ab}
	case o.streamsOnly:
		bins = []string{o.bin}
	}
	for _, path := range bins {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%v (bench/load.sh or bench/scripts/ab.sh builds it)", err)
		}
	}
	need := []string{o.wrk}
	if o.streamsOnly {
		need = nil
	}
	if o.serverCPU != "" || o.loadCPU != "" {
		need = append(need, "taskset")
	}
	if o.peers {
		need = append(need, "nginx", "haproxy", "cat")
	}
	for _, cmd := range need {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("%s not found (bench/load.sh installs it)", cmd)
		}
	}
	var err error
	if b.dir, err = os.MkdirTemp("", "authgate-loadbench-"); err != nil {
		return err
	}
	if o.streamsPairs > 0 {
		return b.runStreamsPairs(ctx)
	}
	if o.streamsOnly {
		return b.runStreamsOnly(ctx)
	}
	b.rep.Start(report.Settings{
		Duration: o.duration.String(), Warmup: o.warmup.String(), Repeats: o.repeats, Conns: o.conns,
		ServerCPU: o.serverCPU, LoadCPU: o.loadCPU, StreamDelay: o.streamDelay.String(), Peers: o.peers,
	}, o.wrk)
	if err := b.startServers(); err != nil {
		return err
	}
	if o.ab != "" {
		return b.runAB(ctx)
	}
	if o.costOnly != "" {
		return b.runCost(ctx)
	}
	scenarios := b.scenarios()
	if err := b.check(scenarios); err != nil {
		return err
	}
	total := b.estimate(len(scenarios))
	b.logf("%d scenarios x %d repeats, %v each (+%v warm-up), %d connections; about %v in all",
		len(scenarios), o.repeats, o.duration, o.warmup, o.conns, total.Round(time.Minute))

	// Closed loop, round-robin so that a change in the machine's load
	// touches every scenario alike.
	runs := make([][]report.ClosedRun, len(scenarios))
	for r := range o.repeats {
		for i, s := range scenarios {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			cr, err := b.closedLoop(ctx, s)
			if err != nil {
				return fmt.Errorf("%s, repeat %d: %w", s.id(), r+1, err)
			}
			b.logf("repeat %d %-24s %9.0f req/s  p50 %6.0f µs  p99 %6.0f µs  server CPU %.2f  load CPU %.2f",
				r+1, s.id(), cr.RPS, cr.P50, cr.P99, cr.ServerCPU, cr.LoadCPU)
			runs[i] = append(runs[i], cr)
		}
	}
	for i, s := range scenarios {
		b.rep.AddClosed(s.name(), o.conns, runs[i])
	}

	if err := b.logCost(ctx); err != nil {
		return err
	}
	if err := b.routingCost(ctx); err != nil {
		return err
	}
	if err := b.meteringCost(ctx); err != nil {
		return err
	}
	if err := b.streaming(ctx); err != nil {
		return err
	}
	if err := b.openLoops(ctx); err != nil {
		return err
	}
	if o.profile {
		if err := b.profiles(ctx); err != nil {
			return err
		}
	}
	if !o.skipStreams {
		if err := b.scale(ctx); err != nil {
			return err
		}
	}
	b.rep.Finish()
	return b.rep.Write(o.out, "latest", os.Stdout)
}

// estimate is the run's expected length, for the log.
func (b *bench) estimate(nScenarios int) time.Duration {
	o := b.o
	closed := time.Duration(nScenarios*o.repeats) * (o.warmup + o.duration + 2*time.Second)
	logWarmup, logDuration := pairRunTimes(o)
	closed += time.Duration(2*4*o.costPairs) * (logWarmup + logDuration + time.Second)
	stream := time.Duration(2*o.repeats) * (o.duration / 2)
	nOpen := 2
	if o.peers {
		nOpen = 4
	}
	probe := max(time.Second, o.duration/5) + 300*time.Millisecond
	open := time.Duration(nOpen*o.repeats) * (max(time.Second, o.duration/2) + 500*time.Millisecond)
	if !o.skipBounds {
		open += time.Duration(nOpen*o.repeats*11) * probe
	}
	var scale time.Duration
	if !o.skipStreams {
		scale = time.Duration(len(o.streamCounts)*len(b.scaleTargets())) *
			(o.streamsRamp + o.streamsPlateau + time.Duration(o.streamEvents)*o.streamInterval + 3*time.Second)
	}
	return closed + stream + open + scale
}
