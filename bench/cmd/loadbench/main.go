// Command loadbench is authgate's load benchmark: `make bench`
// and `make bench-peers` run it through bench/load.sh, which installs wrk
// (and nginx and HAProxy) and builds the binaries first.
//
// It starts, on loopback, the built authgate binary (`authgate serve` and
// `authgate mock-upstream`), a bare fasthttp server answering 401 (the
// ceiling, bench/cmd/ceiling), the gateway without an access log
// (bench/cmd/nolog) and, with -peers, nginx and HAProxy configured from
// bench/peers/ to do the gateway's job. The servers under test are pinned to
// one core, the load (wrk, and this process's own fixed-rate and streaming
// clients) and the upstream the proxies use to the other. It runs every
// scenario -repeats times, round-robin, each after a warm-up, and reports
// the median: a markdown table on stdout and in OUT/latest.md, the figures
// in OUT/latest.json, a chart in OUT/latest.svg. It stops every process it
// started, on success, on failure and on SIGINT/SIGTERM. bench/README.md
// describes the method.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command line's settings.
type options struct {
	bin, ceiling, nolog, wrk string
	peersDir, out            string
	duration, warmup         time.Duration
	repeats, conns           int
	serverCPU, loadCPU       string
	peers, profile, keep     bool
	redis                    bool
	streamDelay              time.Duration
	fixedShare               float64
	bounds                   []time.Duration
	skipBounds               bool
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// lookupOr is envOr for settings where an empty value means something
// (no pinning).
func lookupOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func main() {
	var o options
	dur, err := time.ParseDuration(envOr("BENCH_DURATION", "10s"))
	if err != nil || dur < time.Second {
		fmt.Fprintf(os.Stderr, "loadbench: BENCH_DURATION %q: want a duration of at least 1s, e.g. 10s\n", os.Getenv("BENCH_DURATION"))
		os.Exit(2)
	}
	repeats, err := strconv.Atoi(envOr("BENCH_REPEATS", "3"))
	if err != nil || repeats < 1 {
		fmt.Fprintf(os.Stderr, "loadbench: BENCH_REPEATS %q: want a positive number\n", os.Getenv("BENCH_REPEATS"))
		os.Exit(2)
	}
	conns, err := strconv.Atoi(envOr("BENCH_CONNS", "64"))
	if err != nil || conns < 1 {
		fmt.Fprintf(os.Stderr, "loadbench: BENCH_CONNS %q: want a positive number\n", os.Getenv("BENCH_CONNS"))
		os.Exit(2)
	}
	flag.StringVar(&o.bin, "bin", "bin/authgate", "the authgate binary")
	flag.StringVar(&o.ceiling, "ceiling", "bin/bench-ceiling", "the ceiling server (bench/cmd/ceiling)")
	flag.StringVar(&o.nolog, "nolog", "bin/bench-nolog", "the gateway without access log (bench/cmd/nolog)")
	flag.StringVar(&o.wrk, "wrk", "wrk", "the wrk load generator")
	flag.StringVar(&o.peersDir, "peers-dir", "bench/peers", "nginx and HAProxy configuration templates")
	flag.StringVar(&o.out, "out", "bench/results", "where latest.md, latest.json and latest.svg go")
	flag.DurationVar(&o.duration, "duration", dur, "measured time per scenario and repeat (env BENCH_DURATION)")
	flag.DurationVar(&o.warmup, "warmup", 0, "warm-up before each measured run (0: a fifth of -duration, 1s to 2s)")
	flag.IntVar(&o.repeats, "repeats", repeats, "repeats of each scenario; the median is reported (env BENCH_REPEATS)")
	flag.IntVar(&o.conns, "conns", conns, "connections of the closed-loop and fixed-rate loads (env BENCH_CONNS)")
	flag.StringVar(&o.serverCPU, "server-cpu", lookupOr("BENCH_SERVER_CPU", "0"), "taskset CPU list of the server under test (empty: no pinning)")
	flag.StringVar(&o.loadCPU, "load-cpu", lookupOr("BENCH_LOAD_CPU", "1"), "taskset CPU list of the load and of the upstream behind the proxies (empty: no pinning)")
	flag.BoolVar(&o.peers, "peers", false, "also run nginx and HAProxy doing the same job")
	flag.BoolVar(&o.redis, "redis", os.Getenv("BENCH_REDIS") != "", "also run the gateway with its limits in a redis-server on the load's core (env BENCH_REDIS)")
	flag.BoolVar(&o.profile, "profile", os.Getenv("BENCH_PROFILE") != "", "also take CPU profiles of the gateway under the reject and proxy loads (OUT/profiles/)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configurations, logs)")
	flag.DurationVar(&o.streamDelay, "stream-delay", 2*time.Millisecond, "the mock upstream's pause between streamed events")
	flag.Float64Var(&o.fixedShare, "fixed-share", 0.25, "the fixed-rate comparison's rate, as a share of the gateway's proxied throughput")
	flag.BoolVar(&o.skipBounds, "skip-bounds", false, "skip the search for the highest rate under each p99 bound")
	render := flag.String("render", "", "run nothing: read this latest.json and write latest.md and latest.svg from it into -out")
	flag.Parse()
	if *render != "" {
		if err := renderReport(*render, o.out); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		return
	}
	if o.warmup == 0 {
		o.warmup = min(max(o.duration/5, time.Second), 2*time.Second)
	}
	o.bounds = []time.Duration{time.Millisecond, 10 * time.Millisecond}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	b := &bench{o: o}
	err = b.run(ctx)
	b.stopAll()
	if ctx.Err() != nil {
		err = errors.New("interrupted; every process it started is stopped")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		if b.dir != "" && !o.keep {
			fmt.Fprintln(os.Stderr, "loadbench: (rerun with -keep to keep the servers' logs)")
		}
		os.Exit(1)
	}
}

// target is a server the load is sent to.
type target struct {
	name      string
	addr      string
	procs     []*proc // whose CPU counts as the server's
	proxies   bool    // it proxies to the upstream, whose CPU is counted apart
	accessLog string  // its access log, "" if none
	admin     string  // its admin listener, "" if none
	// lossyLog: its access log may drop lines by design (HAProxy's log to
	// a pipe does not block); lines lost are reported, not a failure.
	lossyLog bool
}

// cpu returns the CPU time the target's processes have used so far.
func (t *target) cpu() time.Duration {
	var d time.Duration
	for _, p := range t.procs {
		d += procCPU(p.pid())
	}
	return d
}

// scenario is one closed-loop load: wrk with conns connections sending key
// to target, every response expected to have status.
type scenario struct {
	Kind   string `json:"kind"`   // ceiling, reject, direct, proxy, limit
	Server string `json:"server"` // ceiling, authgate, authgate-nolog, mock, nginx, haproxy
	Label  string `json:"label"`
	Status int    `json:"status"`
	target *target
	key    string
}

func (s *scenario) id() string { return s.Kind + "/" + s.Server }

// bench is one run of the benchmark.
type bench struct {
	o        options
	dir      string
	procs    []*proc
	targets  map[string]*target
	upstream *target // the mock upstream the proxies use, on the load's core
	rep      report
}

func (b *bench) start(name, cpus string, env []string, stdin, stdout *os.File, argv ...string) (*proc, error) {
	p, err := startProc(b.dir, name, cpus, env, stdin, stdout, argv...)
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
		p.stop()
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

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadbench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) error {
	o := b.o
	for _, path := range []string{o.bin, o.ceiling, o.nolog} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%v (bench/load.sh builds it)", err)
		}
	}
	need := []string{o.wrk}
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
	b.rep.start(o)
	if err := b.startServers(); err != nil {
		return err
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
	runs := make([][]closedRun, len(scenarios))
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
		b.rep.addClosed(s, o.conns, runs[i])
	}

	if err := b.logCost(ctx); err != nil {
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
	b.rep.finish()
	return b.rep.write(o.out, os.Stdout)
}

// logPairs is the number of log-on, log-off pairs of runs logCost makes
// for each path.
const logPairs = 6

// logRunTimes are the warm-up and the measured time of each of logCost's
// runs: half the closed loop's, and at least a second.
func logRunTimes(o options) (warmup, duration time.Duration) {
	return max(o.warmup/2, time.Second), max(o.duration/2, time.Second)
}

// logOnFirst reports whether the pair i of logCost runs the gateway with
// its log first: pairs alternate, so that a machine whose speed drifts
// during the run favours neither side.
func logOnFirst(i int) bool { return i%2 == 0 }

// logCost measures what the access log costs ((g)): for the reject and the
// proxy path, logPairs pairs of runs of the gateway with its log and
// without (bench/cmd/nolog), one right after the other, in alternating
// order. Each pair gives a cost; the report takes their median. The
// closed loop's (g) rows are one run of each per repeat, always in the
// same order, which a drift of the machine's speed within a repeat biases.
func (b *bench) logCost(ctx context.Context) error {
	on, off := b.targets["authgate"], b.targets["authgate-nolog"]
	warmup, duration := logRunTimes(b.o)
	for _, path := range []struct {
		kind, key string
		status    int
	}{{"reject", keyUnknown, 401}, {"proxy", keyValid, 200}} {
		sOn := &scenario{Kind: path.kind, Server: "authgate", Status: path.status, target: on, key: path.key}
		sOff := &scenario{Kind: path.kind, Server: "authgate-nolog", Status: path.status, target: off, key: path.key}
		var pairs []logPair
		for i := range logPairs {
			order := []*scenario{sOn, sOff}
			if !logOnFirst(i) {
				order = []*scenario{sOff, sOn}
			}
			var p logPair
			p.OnFirst = logOnFirst(i)
			for _, s := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				cr, err := b.closedLoopFor(ctx, s, warmup, duration)
				if err != nil {
					return fmt.Errorf("log cost, %s, pair %d: %w", s.id(), i+1, err)
				}
				if s == sOn {
					p.On = cr
				} else {
					p.Off = cr
				}
			}
			b.logf("log cost %-6s pair %d: log on %9.0f req/s, off %9.0f req/s: %.1f%%", path.kind, i+1, p.On.RPS, p.Off.RPS, p.cost())
			pairs = append(pairs, p)
		}
		b.rep.addLogCost(path.kind, pairs)
	}
	return nil
}

// estimate is the run's expected length, for the log.
func (b *bench) estimate(nScenarios int) time.Duration {
	o := b.o
	closed := time.Duration(nScenarios*o.repeats) * (o.warmup + o.duration + 2*time.Second)
	logWarmup, logDuration := logRunTimes(o)
	closed += time.Duration(2*2*logPairs) * (logWarmup + logDuration + time.Second)
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
	return closed + stream + open
}

// startServers starts every server and waits until each listens.
func (b *bench) startServers() error {
	o := b.o
	keys := keySet()
	keysFile := filepath.Join(b.dir, "api_keys.txt")
	if err := writeAuthgateKeys(keysFile, keys); err != nil {
		return err
	}
	b.targets = map[string]*target{}
	addr := func() string {
		a, err := freeAddr()
		if err != nil {
			panic("BUG: no free loopback port: " + err.Error())
		}
		return a
	}
	launch := func(name, cpus string, env []string, argv func(addr string) []string) (*target, error) {
		a := addr()
		p, err := b.start(name, cpus, env, nil, nil, argv(a)...)
		if err != nil {
			return nil, err
		}
		if err := waitListening(p, a, 15*time.Second); err != nil {
			return nil, err
		}
		t := &target{name: name, addr: a, procs: []*proc{p}}
		b.targets[name] = t
		return t, nil
	}

	// The upstream the proxies use, on the load's core; it also answers
	// the streaming client directly.
	up, err := launch("upstream", o.loadCPU, nil, func(a string) []string {
		return []string{o.bin, "mock-upstream", "--listen", a, "--chunk-delay", o.streamDelay.String()}
	})
	if err != nil {
		return err
	}
	b.upstream = up
	if _, err := launch("mock", o.serverCPU, nil, func(a string) []string {
		return []string{o.bin, "mock-upstream", "--listen", a, "--chunk-delay", o.streamDelay.String()}
	}); err != nil {
		return err
	}
	adminAddr := func() string {
		if o.profile {
			return addr()
		}
		return ""
	}
	admin := adminAddr()
	ceiling, err := launch("ceiling", o.serverCPU, nil, func(a string) []string {
		return []string{o.ceiling, "-listen", a, "-pprof", admin}
	})
	if err != nil {
		return err
	}
	ceiling.admin = admin
	if _, err := launch("ceiling-gw", o.serverCPU, nil, func(a string) []string {
		return []string{o.ceiling, "-listen", a, "-gateway-settings"}
	}); err != nil {
		return err
	}

	// serveEnv is `authgate serve`'s environment, with extra settings.
	serveEnv := func(accessLog, admin string, extra ...string) []string {
		return append([]string{
			"DATA_DIR=" + b.dir,
			"AUTH_KEYS_FILE=" + keysFile,
			"UPSTREAM_URL=http://" + up.addr,
			"ACCESS_LOG=" + accessLog,
			"ADMIN_ADDR=" + admin,
			"SHUTDOWN_DRAIN=0s",
			"SHUTDOWN_GRACE=5s",
		}, extra...)
	}
	accessLog := filepath.Join(b.dir, "authgate-access.log")
	admin = adminAddr()
	gw, err := launch("authgate", o.serverCPU, serveEnv(accessLog, admin),
		func(a string) []string { return []string{o.bin, "serve", "--listen", a} })
	if err != nil {
		return err
	}
	gw.proxies, gw.accessLog, gw.admin = true, accessLog, admin

	admin = adminAddr()
	argv := []string{o.nolog, "-upstream", "http://" + up.addr, "-keys", keysFile, "-admin-listen", admin}
	nl, err := launch("authgate-nolog", o.serverCPU, nil, func(a string) []string { return append(argv, "-listen", a) })
	if err != nil {
		return err
	}
	nl.proxies, nl.admin = true, admin

	if o.redis {
		// Redis on the load's core, as it would be on another machine
		// than the gateway's; failure mode closed, so that a decision
		// Redis did not make shows as a 503 (a wrong status), never as a
		// request the in-process fallback admitted.
		redis, err := launch("redis", o.loadCPU, nil, func(a string) []string {
			_, port, _ := net.SplitHostPort(a)
			return []string{"redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
				"--protected-mode", "no", "--dir", b.dir, "--logfile", filepath.Join(b.dir, "redis.log")}
		})
		if err != nil {
			return err
		}
		redisLog := filepath.Join(b.dir, "authgate-redis-access.log")
		admin = adminAddr()
		gr, err := launch("authgate-redis", o.serverCPU,
			serveEnv(redisLog, admin, "REDIS_URL=redis://"+redis.addr, "REDIS_FAILURE_MODE=closed"),
			func(a string) []string { return []string{o.bin, "serve", "--listen", a} })
		if err != nil {
			return err
		}
		gr.proxies, gr.accessLog, gr.admin = true, redisLog, admin
	}

	if o.peers {
		if err := b.startPeers(keys, up.addr); err != nil {
			return err
		}
	}
	return nil
}

// startPeers starts nginx and HAProxy from the templates in -peers-dir.
func (b *bench) startPeers(keys []benchKey, upstream string) error {
	o := b.o
	cfg := peerConfig{Dir: b.dir, Upstream: upstream, Workers: cpuCount(o.serverCPU), DefaultRPM: defaultRPM}
	var err error
	var nginxMap string
	if nginxMap, cfg.KeysMap, cfg.LimitsMap, err = writePeerMaps(b.dir, keys, &cfg); err != nil {
		return err
	}
	for _, d := range []string{"nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi"} {
		if err := os.MkdirAll(filepath.Join(b.dir, d), 0o755); err != nil {
			return err
		}
	}

	// nginx.
	nc := cfg
	nc.KeysMap = nginxMap
	nc.Listen = mustFreeAddr()
	nc.AccessLog = filepath.Join(b.dir, "nginx-access.log")
	conf, err := renderPeerConfig(filepath.Join(o.peersDir, "nginx.conf.tmpl"), b.dir, "nginx.conf", nc)
	if err != nil {
		return err
	}
	if out, err := exec.Command("nginx", "-t", "-q", "-c", conf).CombinedOutput(); err != nil {
		return fmt.Errorf("nginx -t %s: %v: %s", conf, err, out)
	}
	p, err := b.start("nginx", o.serverCPU, nil, nil, nil, "nginx", "-c", conf, "-g", "daemon off;")
	if err != nil {
		return err
	}
	if err := waitListening(p, nc.Listen, 15*time.Second); err != nil {
		return err
	}
	b.targets["nginx"] = &target{name: "nginx", addr: nc.Listen, procs: []*proc{p}, proxies: true, accessLog: nc.AccessLog}

	// HAProxy, its log piped to cat, which appends it to the file.
	hc := cfg
	hc.Listen = mustFreeAddr()
	hc.AccessLog = filepath.Join(b.dir, "haproxy-access.log")
	conf, err = renderPeerConfig(filepath.Join(o.peersDir, "haproxy.cfg.tmpl"), b.dir, "haproxy.cfg", hc)
	if err != nil {
		return err
	}
	if out, err := exec.Command("haproxy", "-c", "-q", "-f", conf).CombinedOutput(); err != nil {
		return fmt.Errorf("haproxy -c %s: %v: %s", conf, err, out)
	}
	logFile, err := os.OpenFile(hc.AccessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	// HAProxy's writes to the pipe do not block: a line that does not fit
	// is dropped. cat shares HAProxy's core, so the pipe gets Linux's
	// largest default size (1 MiB, /proc/sys/fs/pipe-max-size) rather than
	// 64 KiB, to carry the log over the moments cat waits for the core.
	// F_SETPIPE_SZ (1031) is Linux's; elsewhere the call just fails.
	syscall.Syscall(syscall.SYS_FCNTL, pw.Fd(), 1031, 1<<20)
	cat, err := b.start("haproxy-log", o.serverCPU, nil, pr, logFile, "cat")
	pr.Close()
	if err != nil {
		pw.Close()
		return err
	}
	p, err = b.start("haproxy", o.serverCPU, nil, nil, pw, "haproxy", "-db", "-f", conf)
	pw.Close()
	if err != nil {
		return err
	}
	if err := waitListening(p, hc.Listen, 15*time.Second); err != nil {
		return err
	}
	b.targets["haproxy"] = &target{name: "haproxy", addr: hc.Listen, procs: []*proc{p, cat}, proxies: true, accessLog: hc.AccessLog, lossyLog: true}
	return nil
}

func mustFreeAddr() string {
	a, err := freeAddr()
	if err != nil {
		panic("BUG: no free loopback port: " + err.Error())
	}
	return a
}

// cpuCount returns how many CPUs a taskset list such as "0", "0,1" or
// "0-3" names; for an empty list, all of them.
func cpuCount(list string) int {
	if list == "" {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			n++
			continue
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || h < l {
			n++
			continue
		}
		n += h - l + 1
	}
	return max(n, 1)
}

// scenarios lists the closed-loop scenarios of this run.
func (b *bench) scenarios() []*scenario {
	t := b.targets
	list := []*scenario{
		{Kind: "ceiling", Server: "ceiling", Label: "(a) ceiling: bare fasthttp 401", Status: 401, target: t["ceiling"], key: keyUnknown},
		{Kind: "ceiling", Server: "ceiling-gw", Label: "(a) ceiling with the gateway's server settings (timeouts, streamed bodies, lazy request time)", Status: 401, target: t["ceiling-gw"], key: keyUnknown},
		{Kind: "reject", Server: "authgate", Label: "(b) reject unknown key, 401", Status: 401, target: t["authgate"], key: keyUnknown},
		{Kind: "reject", Server: "authgate-nolog", Label: "(g) reject, access log off", Status: 401, target: t["authgate-nolog"], key: keyUnknown},
		{Kind: "direct", Server: "mock", Label: "(c) mock upstream directly", Status: 200, target: t["mock"], key: keyValid},
		{Kind: "proxy", Server: "authgate", Label: "(d) proxy chat completion, 200", Status: 200, target: t["authgate"], key: keyValid},
		{Kind: "proxy", Server: "authgate-nolog", Label: "(g) proxy, access log off", Status: 200, target: t["authgate-nolog"], key: keyValid},
		{Kind: "limit", Server: "authgate", Label: "(e) key over its limit, 429", Status: 429, target: t["authgate"], key: keyLimited},
	}
	if b.o.redis {
		list = append(list, &scenario{Kind: "proxy", Server: "authgate-redis", Label: "(h) proxy, limits in Redis", Status: 200, target: t["authgate-redis"], key: keyValid})
	}
	if b.o.peers {
		for _, peer := range []string{"nginx", "haproxy"} {
			list = append(list,
				&scenario{Kind: "reject", Server: peer, Label: "(b) reject unknown key, 401", Status: 401, target: t[peer], key: keyUnknown},
				&scenario{Kind: "proxy", Server: peer, Label: "(d) proxy chat completion, 200", Status: 200, target: t[peer], key: keyValid},
				&scenario{Kind: "limit", Server: peer, Label: "(e) key over its limit, 429", Status: 429, target: t[peer], key: keyLimited},
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
		req := rawRequest(s.target.addr, chatPath, s.key, chatBody)
		tries := 1
		if s.Status == 429 {
			tries = 2
		}
		var r response
		var err error
		for range tries {
			if r, err = roundTrip(s.target.addr, req); err != nil {
				return fmt.Errorf("%s: check request: %w", s.id(), err)
			}
		}
		want := map[int]string{401: `"invalid_api_key"`, 429: `"rate_limit_exceeded"`, 200: `"chat.completion"`}[s.Status]
		if r.status != s.Status || !strings.Contains(string(r.body), want) {
			return fmt.Errorf("%s: check request: status %d, body %q; want %d with %s", s.id(), r.status, r.body, s.Status, want)
		}
	}
	// Streams, directly and through the gateway.
	for _, t := range []*target{b.upstream, b.targets["authgate"]} {
		res, err := runStreams(context.Background(), t.addr, rawRequest(t.addr, chatPath, keyValid, streamBody), time.Millisecond)
		if err != nil || res.Streams != 1 {
			return fmt.Errorf("stream check against %s: %v", t.name, err)
		}
	}
	return nil
}

// closedRun is one closed-loop measurement.
type closedRun struct {
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

// closedLoop runs wrk against s for the warm-up, then for the measured
// time, and checks statuses, errors and access-log lines.
func (b *bench) closedLoop(ctx context.Context, s *scenario) (closedRun, error) {
	return b.closedLoopFor(ctx, s, b.o.warmup, b.o.duration)
}

// closedLoopFor is closedLoop with its own warm-up and measured time.
func (b *bench) closedLoopFor(ctx context.Context, s *scenario, warmup, duration time.Duration) (closedRun, error) {
	o := b.o
	t := s.target
	if t.accessLog != "" {
		if err := os.Truncate(t.accessLog, 0); err != nil {
			return closedRun{}, err
		}
	}
	script := filepath.Join(b.dir, "wrk.lua")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, wrkScript, 0o644); err != nil {
			return closedRun{}, err
		}
	}
	w := wrkRun{wrk: o.wrk, script: script, cpus: o.loadCPU, conns: o.conns, url: "http://" + t.addr + chatPath, key: s.key}
	w.d = warmup
	warm, _, err := w.run(ctx)
	if err != nil {
		return closedRun{}, err
	}
	w.d = duration
	cpu0, up0 := t.cpu(), b.upstream.cpu()
	t0 := time.Now()
	res, wrkCPU, err := w.run(ctx)
	wall := time.Since(t0).Seconds()
	cpu1, up1 := t.cpu(), b.upstream.cpu()
	if err != nil {
		return closedRun{}, err
	}
	for _, p := range t.procs {
		if p.exited() {
			return closedRun{}, fmt.Errorf("%s exited: %s", p.name, p.tail())
		}
	}
	secs := float64(res.DurationUS) / 1e6
	cr := closedRun{
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
			cr.WrongStatus = max(0, cr.WrongStatus-int64(time.Since(b.rep.started)/time.Minute)-1)
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

// streaming measures time to first event and the delay between events,
// directly from the upstream and through the gateway, one stream at a time.
func (b *bench) streaming(ctx context.Context) error {
	d := max(time.Second, b.o.duration/2)
	targets := []*target{b.upstream, b.targets["authgate"]}
	runs := make([][]streamResult, len(targets))
	for r := range b.o.repeats {
		for i, t := range targets {
			res, err := runStreams(ctx, t.addr, rawRequest(t.addr, chatPath, keyValid, streamBody), d)
			if err != nil {
				return fmt.Errorf("streaming through %s: %w", t.name, err)
			}
			b.logf("repeat %d stream/%-17s %5d streams  first event p50 %6.0f µs  gap p50 %6.0f µs",
				r+1, t.name, res.Streams, res.TTFE50, res.Gap50)
			runs[i] = append(runs[i], res)
		}
	}
	b.rep.addStreams([]string{"direct", "authgate"}, runs, b.o.streamDelay)
	return nil
}

// openLoops runs the fixed-rate comparison and the search for the highest
// rate under each p99 bound, for the upstream directly and each proxy.
func (b *bench) openLoops(ctx context.Context) error {
	o := b.o
	names := []string{"mock", "authgate"}
	if o.peers {
		names = append(names, "nginx", "haproxy")
	}
	gwRPS := b.rep.closedMedian("proxy/authgate").RPS
	rate := max(1000, float64(int(gwRPS*o.fixedShare/1000))*1000)
	b.rep.FixedRate = rate
	fixed := make([][]openLoopResult, len(names))
	bounds := make([][][]float64, len(names)) // [target][bound][repeat]
	for i := range names {
		bounds[i] = make([][]float64, len(o.bounds))
	}
	for r := range o.repeats {
		for i, name := range names {
			t := b.targets[name]
			ol := &openLoop{addr: t.addr, request: rawRequest(t.addr, chatPath, keyValid, chatBody), conns: o.conns,
				rate: rate, warmup: 500 * time.Millisecond, duration: max(time.Second, o.duration/2), status: 200}
			res := ol.run(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if res.Errors > 0 {
				return fmt.Errorf("fixed rate %.0f/s against %s: %d errors, first: %s", rate, name, res.Errors, res.FirstErr)
			}
			b.logf("repeat %d fixed/%-18s %7.0f req/s  p50 %6.0f µs  p99 %6.0f µs  generator CPU %.2f",
				r+1, name, res.Achieved, res.P50, res.P99, res.GenCPU)
			fixed[i] = append(fixed[i], res)
		}
		if o.skipBounds {
			continue
		}
		for i, name := range names {
			kind := "proxy/" + name
			if name == "mock" {
				kind = "direct/mock"
			}
			hi := b.rep.closedMedian(kind).RPS * 1.1
			for k := len(o.bounds) - 1; k >= 0; k-- {
				// The 10 ms search first; the 1 ms one below its result.
				if k < len(o.bounds)-1 && bounds[i][k+1] != nil {
					hi = max(bounds[i][k+1][len(bounds[i][k+1])-1], 1000)
				}
				best, err := b.searchRate(ctx, b.targets[name], o.bounds[k], hi)
				if err != nil {
					return err
				}
				b.logf("repeat %d bound/%-18s p99 <= %v: %7.0f req/s", r+1, name, o.bounds[k], best)
				bounds[i][k] = append(bounds[i][k], best)
			}
		}
	}
	b.rep.addOpen(names, fixed, o.bounds, bounds, o.skipBounds)
	return nil
}

// searchRate returns the highest rate, found by bisection between 0 and hi
// in 6 steps (so to hi/64), at which the p99 latency of an open-loop load
// on t stays within bound with no error.
func (b *bench) searchRate(ctx context.Context, t *target, bound time.Duration, hi float64) (float64, error) {
	lo := 0.0
	probe := max(time.Second, b.o.duration/5)
	for range 6 {
		mid := (lo + hi) / 2
		ol := &openLoop{addr: t.addr, request: rawRequest(t.addr, chatPath, keyValid, chatBody), conns: b.o.conns,
			rate: mid, warmup: 300 * time.Millisecond, duration: probe, status: 200}
		ok := false
		// A failed probe is tried again once: a stall of the shared
		// machine fails a probe, it seldom passes one.
		for try := 0; try < 2 && !ok; try++ {
			res := ol.run(ctx)
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			ok = res.Errors == 0 && res.P99 <= float64(bound/time.Microsecond) && res.Achieved >= 0.95*mid
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// profiles takes a CPU profile of the ceiling and of the gateway under the
// reject and proxy loads (log on and off) through their /debug/pprof/, and
// writes each with `go tool pprof -top` beside it in OUT/profiles/.
func (b *bench) profiles(ctx context.Context) error {
	o := b.o
	dir := filepath.Join(o.out, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	secs := max(2, int(o.duration/time.Second)-2)
	for _, p := range []struct {
		name, target, key string
	}{
		{"ceiling", "ceiling", keyUnknown},
		{"reject-authgate", "authgate", keyUnknown},
		{"reject-authgate-nolog", "authgate-nolog", keyUnknown},
		{"proxy-authgate", "authgate", keyValid},
		{"proxy-authgate-nolog", "authgate-nolog", keyValid},
	} {
		t := b.targets[p.target]
		w := wrkRun{wrk: o.wrk, script: filepath.Join(b.dir, "wrk.lua"), cpus: o.loadCPU, conns: o.conns,
			url: "http://" + t.addr + chatPath, key: p.key, d: time.Duration(secs+2) * time.Second}
		errc := make(chan error, 1)
		go func() { _, _, err := w.run(ctx); errc <- err }()
		time.Sleep(time.Second)
		path := filepath.Join(dir, p.name+".pprof")
		curl := exec.CommandContext(ctx, "curl", "-sf", "-o", path,
			fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.admin, secs))
		if out, err := curl.CombinedOutput(); err != nil {
			<-errc
			return fmt.Errorf("profile of %s: %v: %s", p.name, err, out)
		}
		if err := <-errc; err != nil {
			return err
		}
		bin := map[string]string{"ceiling": o.ceiling, "authgate": o.bin, "authgate-nolog": o.nolog}[p.target]
		top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", bin, path).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof %s: %v: %s", path, err, top)
		}
		if err := os.WriteFile(strings.TrimSuffix(path, ".pprof")+".top.txt", top, 0o644); err != nil {
			return err
		}
		b.logf("profile %s written", path)
	}
	return nil
}
