package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/authgate/authgate/bench/internal/keyset"
	"github.com/authgate/authgate/bench/internal/loadgen"
	"github.com/authgate/authgate/bench/internal/peers"
	"github.com/authgate/authgate/bench/internal/proc"
	"github.com/authgate/authgate/bench/internal/rawhttp"
	"github.com/authgate/authgate/bench/internal/report"
)

// fdReserve is the open files a process keeps for other uses than the
// streams (listeners, logs, its upstream's health checks, the runtime):
// of 20,000, a proxy then holds (20,000 - 400) / 2 = 9,800 streams.
const fdReserve = 400

// rssEvery is how often the servers' memory is sampled.
const rssEvery = 100 * time.Millisecond

// scaleServer is a server started for one streams-at-scale or idle run:
// the target and the processes to stop after it.
type scaleServer struct {
	t     *target
	procs []*proc.Process
}

// stop stops the server's processes.
func (s *scaleServer) stop() {
	for _, p := range s.procs {
		p.Stop()
	}
}

// rss returns the server's resident memory now, every process of it.
func (s *scaleServer) rss() int64 {
	var n int64
	for _, p := range s.t.procs {
		n += proc.RSS(p.Pid())
	}
	return n
}

// scaleTargets lists the servers of the streams-at-scale scenarios: the
// upstream directly, authgate, and the peers with -peers.
func (b *bench) scaleTargets() []string {
	names := []string{"direct", "authgate"}
	if b.o.peers {
		names = append(names, "nginx", "haproxy")
	}
	return names
}

// maxStreams is the most streams every server can hold within the
// open-files limit: a proxy holds two files per stream.
func (b *bench) maxStreams() int {
	return max(int(b.fdLimit)-fdReserve, 2) / 2
}

// runStreamsOnly is -streams-only: the streams-at-scale and idle-clients
// scenarios, added to the report in OUT/latest.json if there is one.
func (b *bench) runStreamsOnly(ctx context.Context) error {
	o := b.o
	prev, err := report.Read(filepath.Join(o.out, "latest.json"))
	switch {
	case err == nil:
		b.rep = *prev
		b.logf("adding the streams at scale to %s of %s", filepath.Join(o.out, "latest.json"), prev.Generated)
	case errors.Is(err, os.ErrNotExist):
		b.rep.Start(report.Settings{ServerCPU: o.serverCPU, LoadCPU: o.loadCPU, Peers: o.peers}, o.wrk)
		b.rep.Finish()
	default:
		return err
	}
	if err := b.scale(ctx); err != nil {
		return err
	}
	return b.rep.Write(o.out, "latest", os.Stdout)
}

// scale runs the streams-at-scale scenario, each count of streams through
// each server, then the idle-clients one, and adds them to the report.
func (b *bench) scale(ctx context.Context) error {
	o := b.o
	settings, err := b.scaleSetup(ctx)
	if err != nil {
		return err
	}
	b.rep.StartScale(settings)
	limit := b.maxStreams()
	targets := b.scaleTargets()
	b.logf("streams at scale: %v streams (at most %d within %d open files), %d events %v apart, %v ramp, %v measured; about %v",
		o.streamCounts, limit, b.fdLimit, o.streamEvents, o.streamInterval, o.streamsRamp, o.streamsPlateau,
		(time.Duration(len(o.streamCounts)*len(targets)) * (o.streamsRamp + o.streamsPlateau + time.Duration(o.streamEvents)*o.streamInterval + 3*time.Second)).Round(time.Second))
	for _, asked := range o.streamCounts {
		n := min(asked, limit)
		for _, name := range targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			run, err := b.scaleRun(ctx, name, asked, n)
			if err != nil {
				return fmt.Errorf("streams at scale, %d through %s: %w", n, name, err)
			}
			sr := run.Streams
			b.logf("streams %5d %-8s completed %6d failed %4d  %7.0f events/s  RSS/stream %5.1f KiB  CPU %.2f (%.1f µs/event)  first event p50 %6.0f µs  gap p99 %6.0f µs  on its way p50/p99 %.0f/%.0f µs  generator CPU %.2f (%.1f µs/event)",
				n, name, sr.Completed, sr.Failed(), sr.EventsPerSec, run.RSSPerStream()/1024, run.ServerCPU, run.CPUPerEvent,
				sr.TTFE50, sr.Gap99, sr.Transit50, sr.Transit99, sr.GenCPU, sr.GenCPUEvent)
			b.rep.AddScale(run)
		}
	}
	if o.idleConns > 0 {
		n := min(o.idleConns, int(b.fdLimit)-fdReserve)
		for _, name := range targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			run, err := b.idleRun(ctx, name, n)
			if err != nil {
				return fmt.Errorf("idle clients, %d to %s: %w", n, name, err)
			}
			b.logf("idle %5d %-8s open %5d  RSS %.1f -> %.1f MiB at the peak, %.1f held: %.1f KiB per connection at the peak, %.1f held",
				n, name, run.Open, float64(run.IdleRSS)/(1<<20), float64(run.PeakRSS)/(1<<20), float64(run.HeldRSS)/(1<<20),
				run.PeakPerConn()/1024, run.RSSPerConn()/1024)
			b.rep.AddIdle(run)
		}
	}
	b.rep.FinishScale()
	return nil
}

// scaleSetup writes the keys file the streams' runs give authgate, and
// returns the scenario's settings, with the size of a content event as
// the upstream sends it.
func (b *bench) scaleSetup(ctx context.Context) (report.ScaleSettings, error) {
	o := b.o
	if err := keyset.WriteAuthgate(filepath.Join(b.dir, "api_keys.txt"), keyset.Keys()); err != nil {
		return report.ScaleSettings{}, err
	}
	size, err := b.eventSize(ctx)
	return report.ScaleSettings{
		Events: o.streamEvents, Interval: o.streamInterval.String(), EventBytes: size,
		Ramp: o.streamsRamp.String(), Plateau: o.streamsPlateau.String(), FDLimit: b.fdLimit,
		ServerCPU: o.serverCPU, LoadCPU: o.loadCPU,
	}, err
}

// startScaleUpstream starts the upstream (bench/cmd/eventsrv) for one run
// on the load's core, streaming as the scenario says with interval
// between events.
func (b *bench) startScaleUpstream(interval time.Duration) (*scaleServer, error) {
	o := b.o
	a := mustFreeAddr()
	p, err := b.start("scale-upstream", o.loadCPU, nil, nil, nil, o.upstreamBin, "-listen", a,
		"-events", strconv.Itoa(o.streamEvents), "-interval", interval.String(),
		"-event-bytes", strconv.Itoa(o.streamEventBytes))
	if err != nil {
		return nil, err
	}
	s := &scaleServer{t: &target{name: "direct", addr: a, procs: []*proc.Process{p}}, procs: []*proc.Process{p}}
	if err := proc.WaitListening(p, a, 15*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startScaleServer starts the server name in front of upstream for one
// run, pinned to the server's core: authgate as `authgate serve` with its
// defaults but MAX_CONNS (raised to the open-files limit, so that the
// count of connections is the scenario's), nginx and HAProxy from
// bench/peers with peers.Config.Scale.
func (b *bench) startScaleServer(name string, upstream *scaleServer) (*scaleServer, error) {
	o := b.o
	var t *target
	var err error
	switch name {
	case "authgate":
		accessLog := filepath.Join(b.dir, "authgate-scale-access.log")
		a := mustFreeAddr()
		// Its admin listener serves the profiles (-profile) and the
		// collections of idleRun.
		admin := mustFreeAddr()
		var p *proc.Process
		p, err = b.start("authgate-scale", o.serverCPU, []string{
			"DATA_DIR=" + b.dir,
			"AUTH_KEYS_FILE=" + filepath.Join(b.dir, "api_keys.txt"),
			"UPSTREAM_URL=http://" + upstream.t.addr,
			"ACCESS_LOG=" + accessLog,
			"ADMIN_ADDR=" + admin,
			"MAX_CONNS=" + strconv.FormatUint(b.fdLimit, 10),
			"SHUTDOWN_DRAIN=0s",
			"SHUTDOWN_GRACE=5s",
		}, nil, nil, o.bin, "serve", "--listen", a)
		if err != nil {
			return nil, err
		}
		t = &target{name: name, addr: a, procs: []*proc.Process{p}, proxies: true, accessLog: accessLog, admin: admin}
		if err = proc.WaitListening(p, a, 15*time.Second); err != nil {
			p.Stop()
			return nil, err
		}
	case "nginx", "haproxy":
		var cfg peers.Config
		var nginxMap string
		if cfg, nginxMap, err = b.peersConfig(keyset.Keys(), upstream.t.addr); err != nil {
			return nil, err
		}
		cfg.Scale, cfg.NoFile = true, int(b.fdLimit)
		cfg.MaxConns = max(b.maxStreams(), b.o.idleConns) + 100
		if name == "nginx" {
			t, err = b.startNginx("scale", cfg, nginxMap)
		} else {
			t, err = b.startHAProxy("scale", cfg)
		}
		if err != nil {
			// What it started is stopped with every process at the end.
			return nil, err
		}
	default:
		panic("BUG: no server " + name)
	}
	return &scaleServer{t: t, procs: t.procs}, nil
}

// startScalePair starts a fresh upstream and, unless name is "direct", a
// fresh server name in front of it; it returns the server under test and
// a function that stops both.
func (b *bench) startScalePair(name string) (srv, up *scaleServer, stop func(), err error) {
	up, err = b.startScaleUpstream(b.o.streamInterval)
	if err != nil {
		return nil, nil, nil, err
	}
	if name == "direct" {
		return up, up, up.stop, nil
	}
	srv, err = b.startScaleServer(name, up)
	if err != nil {
		up.stop()
		return nil, nil, nil, err
	}
	return srv, up, func() { srv.stop(); up.stop() }, nil
}

// scaleRun runs n streams at once through the server name (asked is the
// count the run was asked for), both started afresh, and measures it.
func (b *bench) scaleRun(ctx context.Context, name string, asked, n int) (report.ScaleRun, error) {
	o := b.o
	run := report.ScaleRun{Target: name, Asked: asked}
	srv, up, stop, err := b.startScalePair(name)
	if err != nil {
		return run, err
	}
	defer stop()
	req := rawhttp.Request(srv.t.addr, chatPath, keyset.Valid, streamBody)
	// One stream first: the server answers as the scenario expects (its
	// events and [DONE]), and has served once before its memory is taken.
	check, err := loadgen.RunStreams(ctx, srv.t.addr, req, time.Millisecond)
	if err != nil || check.Streams != 1 || check.Events != o.streamEvents+1 {
		return run, fmt.Errorf("check stream: %d streams of %d events (want 1 of %d and [DONE]): %v", check.Streams, check.Events, o.streamEvents, err)
	}
	run.IdleRSS = srv.rss()

	st := &loadgen.Streams{Addr: srv.t.addr, Request: req, Conns: n, Events: o.streamEvents,
		Start: time.Now().Add(200 * time.Millisecond), Ramp: o.streamsRamp, Plateau: o.streamsPlateau,
		StreamTimeout: 4*time.Duration(o.streamEvents)*o.streamInterval + 30*time.Second}
	from := st.Start.Add(st.Ramp)
	to := from.Add(st.Plateau)
	var s sample
	done := make(chan struct{})
	go func() {
		defer close(done)
		s = sampleWindow(ctx, srv, up, from, to)
	}()
	profiled := make(chan error, 1)
	go func() {
		if !loadgen.SleepUntil(ctx, from.Add(st.Plateau/2)) {
			profiled <- nil
			return
		}
		name := fmt.Sprintf("streams-%d-%s", n, name)
		if err := b.memProfile(ctx, srv.t, name); err != nil {
			profiled <- err
			return
		}
		profiled <- b.cpuProfile(ctx, srv.t, name, max(1, int(st.Plateau/time.Second)/2-1))
	}()
	res, err := st.Run(ctx)
	<-done
	if perr := <-profiled; err == nil {
		err = perr
	}
	if err != nil {
		return run, err
	}
	for _, p := range srv.procs {
		if p.Exited() {
			return run, fmt.Errorf("%s exited: %s", p.Name, p.Tail())
		}
	}
	secs := st.Plateau.Seconds()
	run.Streams = res
	run.PeakRSS = s.peakRSS
	run.ServerCPU = s.cpu.Seconds() / secs
	if res.Events > 0 {
		run.CPUPerEvent = float64(s.cpu) / float64(time.Microsecond) / float64(res.Events)
	}
	if up != srv {
		run.UpstreamCPU = s.upCPU.Seconds() / secs
	}
	return run, nil
}

// sample is what sampleWindow measured.
type sample struct {
	cpu, upCPU time.Duration // the server's and the upstream's CPU time in the window
	peakRSS    int64         // the server's largest memory sample in it
}

// sampleWindow samples the server's memory every rssEvery from from to to,
// and its and the upstream's CPU time at both ends.
func sampleWindow(ctx context.Context, srv, up *scaleServer, from, to time.Time) sample {
	var s sample
	if !loadgen.SleepUntil(ctx, from) {
		return s
	}
	cpu0, up0 := srv.t.cpu(), up.t.cpu()
	tick := time.NewTicker(rssEvery)
	defer tick.Stop()
	for now := time.Now(); now.Before(to); now = time.Now() {
		s.peakRSS = max(s.peakRSS, srv.rss())
		select {
		case <-ctx.Done():
			return s
		case <-tick.C:
		}
	}
	s.peakRSS = max(s.peakRSS, srv.rss())
	s.cpu, s.upCPU = srv.t.cpu()-cpu0, up.t.cpu()-up0
	return s
}

// idlePath is the request each idle client makes: the server's own
// cheapest answer (the upstream's model list; /healthz of the others).
func idlePath(name string) string {
	if name == "direct" {
		return "/v1/models"
	}
	return "/healthz"
}

// idleRun holds n idle keep-alive connections to the server name, started
// afresh, and measures its memory.
func (b *bench) idleRun(ctx context.Context, name string, n int) (report.IdleRun, error) {
	run := report.IdleRun{Target: name, Path: idlePath(name), Conns: n}
	srv, _, stop, err := b.startScalePair(name)
	if err != nil {
		return run, err
	}
	defer stop()
	req := []byte("GET " + run.Path + " HTTP/1.1\r\nHost: " + srv.t.addr + "\r\n\r\n")
	// One request first, as each client makes, before the memory is taken.
	if r, err := rawhttp.RoundTrip(srv.t.addr, req); err != nil || r.Status != 200 {
		return run, fmt.Errorf("check request GET %s: status %d, %v", run.Path, r.Status, err)
	}
	run.IdleRSS = srv.rss()
	ic, err := loadgen.OpenIdle(ctx, srv.t.addr, req, 200, n, 32)
	if err != nil {
		return run, err
	}
	defer ic.Close()
	// Held for IdleHold, sampled; then counted, and the memory taken again
	// once the server's garbage is collected.
	for end := time.Now().Add(report.IdleHold); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(rssEvery) {
		run.PeakRSS = max(run.PeakRSS, srv.rss())
	}
	run.PeakRSS = max(run.PeakRSS, srv.rss())
	run.Open = ic.Open()
	if err := collectGarbage(ctx, srv.t); err != nil {
		return run, err
	}
	run.HeldRSS = settledRSS(ctx, srv)
	if err := b.memProfile(ctx, srv.t, fmt.Sprintf("idle-%d-%s", n, name)); err != nil {
		return run, err
	}
	return run, ctx.Err()
}

// collectGarbage has a target with an admin listener (authgate) collect
// its garbage twice, through pprof's heap profile with gc=1: the buffers
// and request contexts of the connections' first requests, pooled, are
// freed by the second. Its next collections would do the same, but an
// idle Go process collects only every two minutes.
func collectGarbage(ctx context.Context, t *target) error {
	if t.admin == "" {
		return nil
	}
	for range 2 {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+t.admin+"/debug/pprof/heap?gc=1", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("garbage collection of %s: %w", t.name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("garbage collection of %s: status %d", t.name, resp.StatusCode)
		}
	}
	return nil
}

// settledRSS returns the server's memory once it has stopped falling: the
// runtime returns freed pages to the system in the background, paced to
// 1% of its CPU, which for 150 MiB on one core takes some 15 s, in bursts.
// It is the last sample once those of the last 4 s, rssEvery apart, are
// within 1% of each other, or after 40 s. A server without an admin
// listener (no collection asked of it) is sampled once.
func settledRSS(ctx context.Context, srv *scaleServer) int64 {
	if srv.t.admin == "" {
		return srv.rss()
	}
	const window = int(4 * time.Second / rssEvery)
	var samples []int64
	for end := time.Now().Add(40 * time.Second); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(rssEvery) {
		samples = append(samples, srv.rss())
		if len(samples) > window {
			last := samples[len(samples)-window:]
			if slices.Max(last)-slices.Min(last) <= slices.Max(last)/100 {
				break
			}
		}
	}
	if len(samples) == 0 {
		return srv.rss()
	}
	return samples[len(samples)-1]
}

// eventSize returns the size on the wire of a content event of the
// scenario's streams, read from one stream of an upstream started for it
// without pauses (a stream of 50 events 400 ms apart outlasts
// RoundTrip's deadline).
func (b *bench) eventSize(ctx context.Context) (int, error) {
	up, err := b.startScaleUpstream(0)
	if err != nil {
		return 0, err
	}
	defer up.stop()
	r, err := rawhttp.RoundTrip(up.t.addr, rawhttp.Request(up.t.addr, chatPath, keyset.Valid, streamBody))
	if err != nil || r.Status != 200 {
		return 0, fmt.Errorf("stream from the upstream: status %d, %v", r.Status, err)
	}
	return contentEventSize(r.Body), ctx.Err()
}

// contentEventSize returns the size of the first content event of a chat
// completion stream's body (its second event, after the role's), its
// blank line included; 0 if it has none.
func contentEventSize(body []byte) int {
	events := bytes.SplitAfter(body, []byte("\n\n"))
	if len(events) < 3 {
		return 0
	}
	return len(events[1])
}
