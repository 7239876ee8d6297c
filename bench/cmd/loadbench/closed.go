package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/authgate/authgate/bench/internal/keyset"
	"github.com/authgate/authgate/bench/internal/loadgen"
	"github.com/authgate/authgate/bench/internal/rawhttp"
	"github.com/authgate/authgate/bench/internal/report"
	"github.com/authgate/authgate/bench/internal/wrk"
)

// The request every scenario sends: the in-process benchmarks' small chat
// completion (bench/e2e_bench_test.go), and its streamed variant.
const (
	benchModel = "gpt-4o-mini"
	chatPath   = "/v1/chat/completions"
	chatBody   = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}]}`
	streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}]}`
)

// scenario is one closed-loop load: wrk with -conns connections sending
// key to target, every response expected to have Status.
type scenario struct {
	Kind   string // ceiling, reject, direct, proxy, limit
	Server string // ceiling, authgate, authgate-nolog, mock, nginx, haproxy
	Label  string
	Status int
	target *target
	key    string
}

// name is the scenario as the report names it.
func (s *scenario) name() report.Scenario {
	return report.Scenario{Kind: s.Kind, Server: s.Server, Label: s.Label, Status: s.Status}
}

// id is the scenario's identifier, kind/server.
func (s *scenario) id() string { return s.name().ID() }

// scenarios lists the closed-loop scenarios of this run.
func (b *bench) scenarios() []*scenario {
	t := b.targets
	list := []*scenario{
		{Kind: "ceiling", Server: "ceiling", Label: "(a) ceiling: bare fasthttp 401", Status: 401, target: t["ceiling"], key: keyset.Unknown},
		{Kind: "ceiling", Server: "ceiling-gw", Label: "(a) ceiling with the gateway's server settings (timeouts, streamed bodies, lazy request time)", Status: 401, target: t["ceiling-gw"], key: keyset.Unknown},
		{Kind: "reject", Server: "authgate", Label: "(b) reject unknown key, 401", Status: 401, target: t["authgate"], key: keyset.Unknown},
		{Kind: "reject", Server: "authgate-nolog", Label: "(g) reject, access log off", Status: 401, target: t["authgate-nolog"], key: keyset.Unknown},
		{Kind: "direct", Server: "mock", Label: "(c) mock upstream directly", Status: 200, target: t["mock"], key: keyset.Valid},
		{Kind: "proxy", Server: "authgate", Label: "(d) proxy chat completion, 200", Status: 200, target: t["authgate"], key: keyset.Valid},
		{Kind: "proxy", Server: "authgate-nolog", Label: "(g) proxy, access log off", Status: 200, target: t["authgate-nolog"], key: keyset.Valid},
		{Kind: "proxy", Server: "authgate-routed", Label: "(i) proxy, routed by model between two pools", Status: 200, target: t["authgate-routed"], key: keyset.Valid},
		{Kind: "limit", Server: "authgate", Label: "(e) key over its limit, 429", Status: 429, target: t["authgate"], key: keyset.Limited},
	}
	if b.o.redis {
		list = append(list, &scenario{Kind: "proxy", Server: "authgate-redis", Label: "(h) proxy, limits in Redis", Status: 200, target: t["authgate-redis"], key: keyset.Valid})
	}
	if b.o.peers {
		for _, peer := range []string{"nginx", "haproxy"} {
			list = append(list,
				&scenario{Kind: "reject", Server: peer, Label: "(b) reject unknown key, 401", Status: 401, target: t[peer], key: keyset.Unknown},
				&scenario{Kind: "proxy", Server: peer, Label: "(d) proxy chat completion, 200", Status: 200, target: t[peer], key: keyset.Valid},
				&scenario{Kind: "limit", Server: peer, Label: "(e) key over its limit, 429", Status: 429, target: t[peer], key: keyset.Limited},
			)
		}
	}
	return list
}

// check sends each scenario's request once (twice for the limited key,
// whose first request is admitted) and checks the status and the body, so
// that the load measures what the scenario claims.
func (b *bench) check(scenarios []*scenario) error {
	for _, s := range scenarios {
		req := rawhttp.Request(s.target.addr, chatPath, s.key, chatBody)
		tries := 1
		if s.Status == 429 {
			tries = 2
		}
		var r rawhttp.Response
		var err error
		for range tries {
			if r, err = rawhttp.RoundTrip(s.target.addr, req); err != nil {
				return fmt.Errorf("%s: check request: %w", s.id(), err)
			}
		}
		want := map[int]string{401: `"invalid_api_key"`, 429: `"rate_limit_exceeded"`, 200: `"chat.completion"`}[s.Status]
		if r.Status != s.Status || !strings.Contains(string(r.Body), want) {
			return fmt.Errorf("%s: check request: status %d, body %q; want %d with %s", s.id(), r.Status, r.Body, s.Status, want)
		}
	}
	// Streams, directly and through the gateway.
	for _, t := range []*target{b.upstream, b.targets["authgate"]} {
		res, err := loadgen.RunStreams(context.Background(), t.addr, rawhttp.Request(t.addr, chatPath, keyset.Valid, streamBody), time.Millisecond)
		if err != nil || res.Streams != 1 {
			return fmt.Errorf("stream check against %s: %v", t.name, err)
		}
	}
	return nil
}

// closedLoop runs wrk against s for the warm-up, then for the measured
// time, and checks statuses, errors and access-log lines.
func (b *bench) closedLoop(ctx context.Context, s *scenario) (report.ClosedRun, error) {
	return b.closedLoopFor(ctx, s, b.o.warmup, b.o.duration)
}

// closedLoopFor is closedLoop with its own warm-up and measured time.
func (b *bench) closedLoopFor(ctx context.Context, s *scenario, warmup, duration time.Duration) (report.ClosedRun, error) {
	o := b.o
	t := s.target
	if t.accessLog != "" {
		if err := os.Truncate(t.accessLog, 0); err != nil {
			return report.ClosedRun{}, err
		}
	}
	script := filepath.Join(b.dir, "wrk.lua")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, wrk.Script, 0o644); err != nil {
			return report.ClosedRun{}, err
		}
	}
	w := wrk.Config{Wrk: o.wrk, Script: script, CPUs: o.loadCPU, Conns: o.conns, URL: "http://" + t.addr + chatPath, Key: s.key}
	w.Duration = warmup
	warm, _, err := wrk.Run(ctx, w)
	if err != nil {
		return report.ClosedRun{}, err
	}
	w.Duration = duration
	cpu0, up0 := t.cpu(), b.upstream.cpu()
	t0 := time.Now()
	res, wrkCPU, err := wrk.Run(ctx, w)
	wall := time.Since(t0).Seconds()
	cpu1, up1 := t.cpu(), b.upstream.cpu()
	if err != nil {
		return report.ClosedRun{}, err
	}
	for _, p := range t.procs {
		if p.Exited() {
			return report.ClosedRun{}, fmt.Errorf("%s exited: %s", p.Name, p.Tail())
		}
	}
	secs := float64(res.DurationUS) / 1e6
	cr := report.ClosedRun{
		RPS:       float64(res.Requests) / secs,
		P50:       float64(res.P50),
		P90:       float64(res.P90),
		P99:       float64(res.P99),
		Max:       float64(res.Max),
		Requests:  res.Requests,
		Errors:    res.ConnectErrors + res.ReadErrors + res.WriteErrors + res.Timeouts,
		ServerCPU: (cpu1 - cpu0).Seconds() / wall,
		LoadCPU:   wrkCPU.Seconds() / wall,
		CPUPerReq: float64(cpu1-cpu0) / float64(time.Microsecond) / float64(max(res.Requests, 1)),
		Logged:    -1,
		Sent:      warm.Requests + res.Requests,
	}
	if t.proxies {
		cr.UpstreamCPU = (up1 - up0).Seconds() / wall
	}
	// wrk counts every response that is not 2xx or 3xx as a status error.
	if s.Status == 200 {
		cr.WrongStatus = res.StatusErrors
	} else {
		cr.WrongStatus = res.Requests - res.StatusErrors
		if s.Status == 429 {
			// The rpm=1 key is admitted once a minute.
			cr.WrongStatus = max(0, cr.WrongStatus-int64(time.Since(b.rep.Started())/time.Minute)-1)
		}
	}
	if cr.WrongStatus > 0 {
		return cr, fmt.Errorf("%d of %d responses without status %d", cr.WrongStatus, res.Requests, s.Status)
	}
	if cr.Errors*1000 > res.Requests {
		return cr, fmt.Errorf("%d socket errors or timeouts in %d requests", cr.Errors, res.Requests)
	}
	if t.accessLog != "" {
		// Every request is logged (within a second: authgate's batching
		// writer, nginx's flush=1s); wait for the lines.
		deadline := time.Now().Add(3 * time.Second)
		for {
			n, err := countLines(t.accessLog)
			if err != nil {
				return cr, err
			}
			cr.Logged = n
			if n >= cr.Sent || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if cr.Logged < cr.Sent && !t.lossyLog {
			return cr, fmt.Errorf("access log %s has %d lines for %d requests", t.accessLog, cr.Logged, cr.Sent)
		}
	}
	return cr, nil
}

// countLines returns the number of newlines in the file at path, 0 if
// there is no such file.
func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 1<<20)
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
