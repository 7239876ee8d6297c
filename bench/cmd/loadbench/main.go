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
//
// Then, unless -skip-streams, the streams-at-scale scenario (thousands of
// event streams at once through each server, each server and its upstream
// started afresh for each run) and the idle-clients one (scale.go); with
// -streams-only it runs only these two and adds them to OUT/latest.json's
// report.
//
// With -ab BIN_B it runs only an A/B comparison of two gateway binaries,
// -bin (A) and BIN_B (B), such as two revisions bench/scripts/ab.sh
// builds: alternating pairs of runs on the reject and proxy paths,
// reported in OUT/ab-NAME.{md,json}, NAME being BIN_B's file name.
//
// This package is the orchestration; the parts that stand on their own are
// in bench/internal: the processes and their CPU time (proc), wrk (wrk),
// the fixed-rate and streaming clients (loadgen, latency, rawhttp), the key
// set (keyset), nginx's and HAProxy's configurations (peers) and the
// report with its renderings (report).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authgate/authgate/bench/internal/proc"
	"github.com/authgate/authgate/bench/internal/report"
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
	ab                       string // -ab: B's binary; "" for the whole benchmark
	abPairs                  int
	costOnly                 string // -cost: run only this cost's pairs
	costPairs                int
	streamDelay              time.Duration
	replyBytes               int
	fixedShare               float64
	bounds                   []time.Duration
	skipBounds               bool

	// The streams-at-scale and idle-clients scenarios (scale.go).
	streamsOnly, skipStreams bool
	streamsPairs             int    // -streams-pairs: pairs of authgate and nginx per count; 0: none
	upstreamBin              string // -upstream-bin: the streams' upstream (bench/cmd/eventsrv)
	streamCounts             []int
	streamEvents             int
	streamInterval           time.Duration
	streamEventBytes         int
	streamsPlateau           time.Duration
	streamsRamp              time.Duration
	idleConns                int
}

// envInt is the number in the environment variable name, def if it is
// unset; a value that is not a number exits with an error.
func envInt(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadbench: %s %q: want a number\n", name, v)
		os.Exit(2)
	}
	return n
}

// envDuration is envInt for a duration.
func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadbench: %s %q: want a duration such as 40ms\n", name, v)
		os.Exit(2)
	}
	return d
}

// parseCounts parses a comma-separated list of positive numbers.
func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
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
	flag.StringVar(&o.upstreamBin, "upstream-bin", "bin/bench-eventsrv", "the upstream of the streams at scale (bench/cmd/eventsrv)")
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
	flag.BoolVar(&o.profile, "profile", os.Getenv("BENCH_PROFILE") != "", "also take CPU profiles of the gateway under the reject and proxy loads, and its memory and CPU at the streams-at-scale and idle-clients plateaus (OUT/profiles/)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configurations, logs)")
	flag.DurationVar(&o.streamDelay, "stream-delay", 2*time.Millisecond, "the mock upstream's pause between streamed events")
	flag.IntVar(&o.replyBytes, "reply-bytes", envInt("BENCH_REPLY_BYTES", 0), "pad the mock upstream's chat completions to this many bytes; 0: its own, about 330 (env BENCH_REPLY_BYTES)")
	flag.Float64Var(&o.fixedShare, "fixed-share", 0.25, "the fixed-rate comparison's rate, as a share of the gateway's proxied throughput")
	flag.BoolVar(&o.skipBounds, "skip-bounds", false, "skip the search for the highest rate under each p99 bound")
	flag.StringVar(&o.ab, "ab", os.Getenv("BENCH_AB"), "run only an A/B comparison of -bin (A) and this gateway binary (B): alternating pairs on the reject and proxy paths (env BENCH_AB)")
	flag.IntVar(&o.abPairs, "ab-pairs", 6, "pairs of runs per path with -ab (at least 2)")
	flag.StringVar(&o.costOnly, "cost", "", "run only one cost's alternating pairs, log, routing or metering, into OUT/cost-NAME.{md,json}")
	flag.IntVar(&o.costPairs, "cost-pairs", 6, "pairs of runs per path of the log and routing costs (at least 2)")
	flag.BoolVar(&o.streamsOnly, "streams-only", false, "run only the streams-at-scale and idle-clients scenarios, and add them to OUT/latest.json's report (if any)")
	flag.BoolVar(&o.skipStreams, "skip-streams", false, "skip the streams-at-scale and idle-clients scenarios")
	flag.IntVar(&o.streamsPairs, "streams-pairs", envInt("BENCH_STREAMS_PAIRS", 0), "with -streams-only and -peers, run instead this many alternating pairs of authgate and nginx at each count of streams, into OUT/streams-pairs.{md,json}; 0: none (env BENCH_STREAMS_PAIRS)")
	streams := flag.String("streams", envOr("BENCH_STREAMS", "1000,5000,10000"), "streams at once of the streams-at-scale runs, comma-separated (env BENCH_STREAMS)")
	flag.IntVar(&o.streamEvents, "stream-events", envInt("BENCH_STREAM_EVENTS", 50), "events per stream at scale, [DONE] not counted; at least 3 (env BENCH_STREAM_EVENTS)")
	flag.DurationVar(&o.streamInterval, "stream-interval", envDuration("BENCH_STREAM_INTERVAL", 40*time.Millisecond), "pause between two events of a stream at scale (env BENCH_STREAM_INTERVAL)")
	flag.IntVar(&o.streamEventBytes, "stream-event-bytes", envInt("BENCH_STREAM_EVENT_BYTES", 0), "pad content events at scale to this many bytes; 0: the mock's own, about 200 (env BENCH_STREAM_EVENT_BYTES)")
	flag.DurationVar(&o.streamsPlateau, "streams-duration", envDuration("BENCH_STREAMS_DURATION", 10*time.Second), "measured time of each streams-at-scale run, once every stream is open (env BENCH_STREAMS_DURATION)")
	flag.DurationVar(&o.streamsRamp, "streams-ramp", 0, "time over which the streams at scale open (0: one stream's length, at least 1s)")
	flag.IntVar(&o.idleConns, "idle-conns", envInt("BENCH_IDLE_CONNS", 10000), "idle keep-alive connections of the idle-clients runs; 0: none (env BENCH_IDLE_CONNS)")
	render := flag.String("render", "", "run nothing: read this latest.json and write latest.md and latest.svg from it into -out")
	flag.Parse()
	if *render != "" {
		if err := report.Render(*render, o.out); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		return
	}
	if o.warmup == 0 {
		o.warmup = min(max(o.duration/5, time.Second), 2*time.Second)
	}
	if o.costOnly != "" && o.costOnly != "log" && o.costOnly != "routing" && o.costOnly != "metering" {
		fmt.Fprintf(os.Stderr, "loadbench: -cost %q: want log, routing or metering\n", o.costOnly)
		os.Exit(2)
	}
	if o.costPairs < 2 {
		fmt.Fprintf(os.Stderr, "loadbench: -cost-pairs %d: want at least 2\n", o.costPairs)
		os.Exit(2)
	}
	if o.ab != "" && o.abPairs < 2 {
		// One pair has no spread to set its gain against.
		fmt.Fprintf(os.Stderr, "loadbench: -ab-pairs %d: want at least 2\n", o.abPairs)
		os.Exit(2)
	}
	o.bounds = []time.Duration{time.Millisecond, 10 * time.Millisecond}
	if o.streamCounts, err = parseCounts(*streams); err != nil {
		fmt.Fprintf(os.Stderr, "loadbench: -streams %q: %v\n", *streams, err)
		os.Exit(2)
	}
	if o.streamEvents < 3 || o.streamInterval < 0 || o.streamsPlateau < time.Second || o.idleConns < 0 {
		fmt.Fprintln(os.Stderr, "loadbench: streams at scale: want at least 3 events, an interval of 0 or more, a duration of at least 1s, idle connections 0 or more")
		os.Exit(2)
	}
	if o.streamsPairs != 0 && (o.streamsPairs < 2 || !o.streamsOnly || !o.peers) {
		fmt.Fprintf(os.Stderr, "loadbench: -streams-pairs %d: want at least 2, with -streams-only and -peers\n", o.streamsPairs)
		os.Exit(2)
	}
	if o.streamsRamp == 0 {
		o.streamsRamp = max(time.Duration(o.streamEvents)*o.streamInterval, time.Second)
	}

	// Room for the streams at scale, in this process and those it starts.
	fdLimit, err := proc.RaiseFDLimit()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	b := &bench{o: o, fdLimit: fdLimit}
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
