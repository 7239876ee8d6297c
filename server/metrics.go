package server

// Metrics, as the admin listener's /metrics shows them (shared/SPEC.md
// section 6). Every Gateway has its own metrics.Set: two gateways in one
// process never share a series, and nothing is registered globally.
//
// Design. The request path writes metrics once per request, in logRequest
// (requests by key_id and status, latency), plus once on a 401 (its reason)
// and once on a 429 (its key_id). It allocates nothing and looks nothing
// up by name:
//
//   - Counters are resolved once. Each account (key_id) carries a small
//     table of counters by status code: eight slots filled on a code's
//     first use with CompareAndSwap, and a further block of eight chained
//     on when those are taken, so that steady state is a load, a compare
//     and an atomic add. 401 reasons index a fixed array.
//   - No counter is shared by every request on every core. The counters of
//     the pseudo key_ids ("-", "auth-disabled", "no-keys-configured"), the
//     401 reasons and the latency histogram are split into numShards
//     cache-line-padded shards, and a scrape sums the shards. A request
//     adds to the shard of its client connection (shardOf: the
//     connection's id modulo numShards): a connection's requests are served
//     one after another, mostly on the same core, so its shard's line tends
//     to stay in that core's cache, while connections spread over the
//     shards. A shard drawn at random for each request (math/rand/v2's
//     Uint32) was measured and rejected: the line it picks was most often
//     last written by another core. BenchmarkMetrics, 2 cores, in parallel:
//     3.0 ns an increment on the connection's shard, 17.7 ns on a random
//     shard, 24.6 ns on one shared counter.
//   - A real key_id's counters start as one cache line each (a key_id's
//     requests mostly come one at a time) and are sharded like the others
//     the first time an increment finds its line contended (a failed
//     compare-and-swap): memory grows with the key_ids in use, not with
//     numShards times them, and a key_id hammered from every core (a
//     client far over its limit, say) stops bouncing a line after its
//     first collision.
//   - The histogram has fixed bounds (latencyBounds, 100 µs to 10 min) and
//     an atomic count per bucket per shard; no lock on the request path.
//   - Gauges (upstream health and load, keys loaded, access-log counters)
//     are read by callback at scrape time, from state the gateway keeps
//     anyway; they cost the request path nothing.
//
// A key_id dropped by a reload loses its account and with it its series;
// if it comes back, its counters start again from zero, which Prometheus
// reads as a counter reset.

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/proxy"
)

// numShards is the number of shards of a hot counter; a power of two.
const numShards = 16

// shardOf returns the shard key of ctx's request: its connection's id.
func shardOf(ctx *fasthttp.RequestCtx) uint32 {
	return uint32(ctx.ConnID())
}

// paddedCount is a counter alone on its cache line.
type paddedCount struct {
	n atomic.Uint64
	_ [56]byte
}

// shardArray is a sharded counter's shards.
type shardArray [numShards]paddedCount

// counter is a monotonic counter, one cache line until it is sharded: a
// counter of a pseudo key_id from the start (newCounter), any other the
// first time an increment finds its word contended, that is written by
// another core between its load and its compare-and-swap. So a key_id used
// from one connection at a time costs one line, and one hammered from
// every core spreads its writes like a pseudo key_id's.
type counter struct {
	n      atomic.Uint64
	shards atomic.Pointer[shardArray] // nil until sharded; then n stays as it is
	_      [48]byte
}

// newCounter returns a counter, sharded from the start if shared.
func newCounter(shared bool) *counter {
	c := new(counter)
	if shared {
		c.shards.Store(new(shardArray))
	}
	return c
}

// inc adds 1, to the shard of key (see shardOf) once c is sharded.
func (c *counter) inc(key uint32) {
	if s := c.shards.Load(); s != nil {
		s[key&(numShards-1)].n.Add(1)
		return
	}
	if n := c.n.Load(); c.n.CompareAndSwap(n, n+1) {
		return
	}
	// Contended: shard c from now on. This allocates once per counter.
	c.shards.CompareAndSwap(nil, new(shardArray))
	c.shards.Load()[key&(numShards-1)].n.Add(1)
}

// load returns c's value: its word plus its shards.
func (c *counter) load() uint64 {
	n := c.n.Load()
	if s := c.shards.Load(); s != nil {
		for i := range s {
			n += s[i].n.Load()
		}
	}
	return n
}

// codeCount counts one account's responses of one status code. Its size is
// a size class's, 128 bytes, so that its counter starts a cache line and its
// code, read by lookups of the account's other codes, is on another line.
type codeCount struct {
	counter
	code int
	_    [56]byte
}

// codeBlock is a lock-free table of codeCounts, filled slot by slot.
type codeBlock struct {
	slots [8]atomic.Pointer[codeCount]
	next  atomic.Pointer[codeBlock]
}

// accountStats are an account's counters. The zero value is ready, for a
// real key_id; shared marks a pseudo key_id, whose counters are sharded
// from the start.
type accountStats struct {
	shared  bool
	codes   codeBlock
	limited atomic.Pointer[counter]
}

// request counts a response with status code; key is the request's
// shard key.
func (s *accountStats) request(code int, key uint32) {
	b := &s.codes
	for {
		for i := range b.slots {
			c := b.slots[i].Load()
			if c == nil {
				// First use of this slot: claim it for code. Only this
				// path allocates, once per code per account.
				nc := &codeCount{code: code}
				if s.shared {
					nc.shards.Store(new(shardArray))
				}
				if b.slots[i].CompareAndSwap(nil, nc) {
					nc.inc(key)
					return
				}
				c = b.slots[i].Load()
			}
			if c.code == code {
				c.inc(key)
				return
			}
		}
		next := b.next.Load()
		if next == nil {
			b.next.CompareAndSwap(nil, new(codeBlock))
			next = b.next.Load()
		}
		b = next
	}
}

// rateLimited counts a 429 from the account's limiter; key is the
// request's shard key.
func (s *accountStats) rateLimited(key uint32) {
	c := s.limited.Load()
	if c == nil {
		s.limited.CompareAndSwap(nil, newCounter(s.shared))
		c = s.limited.Load()
	}
	c.inc(key)
}

// eachCode calls f for every status code counted so far.
func (s *accountStats) eachCode(f func(code int, n uint64)) {
	for b := &s.codes; b != nil; b = b.next.Load() {
		for i := range b.slots {
			if c := b.slots[i].Load(); c != nil {
				f(c.code, c.load())
			}
		}
	}
}

// newSharedAccount returns the account of a pseudo key_id, shared by many
// clients' requests: not rate-limited, with sharded counters.
func newSharedAccount(keyID string) *account {
	return &account{keyID: keyID, stats: accountStats{shared: true}}
}

// latencyBounds are the latency histogram's bucket upper bounds, from
// 100 µs (a refusal) to 10 min (UPSTREAM_TIMEOUT's default).
var latencyBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 25 * time.Second, 50 * time.Second,
	100 * time.Second, 250 * time.Second, 600 * time.Second,
}

// histShard is one shard of the latency histogram: the sum of latencies in
// nanoseconds and a count per bucket (the last is +Inf), padded to whole
// cache lines. The sum comes first, on the line of the fastest buckets.
type histShard struct {
	sum    atomic.Uint64
	counts [len(latencyBounds) + 1]atomic.Uint64
	_      [64 - (len(latencyBounds)+2)*8%64]byte
}

// latencyHistogram is a Prometheus histogram of request latencies. It is
// allocated on its own (3 KiB), so that its shards start on cache lines.
type latencyHistogram struct {
	shards [numShards]histShard
}

// observe counts a latency d in the shard of key (see shardOf).
func (h *latencyHistogram) observe(d time.Duration, key uint32) {
	d = max(d, 0)
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	s := &h.shards[key&(numShards-1)]
	s.counts[i].Add(1)
	s.sum.Add(uint64(d))
}

// gatewayMetrics are a Gateway's metrics: its registry and the counters
// that are not an account's.
type gatewayMetrics struct {
	set          *metrics.Set
	unauthorized [auth.ReasonUnknown + 1]*counter // by reason; ReasonOK unused
	latency      *latencyHistogram
	reloadsOK    *metrics.Counter
	reloadsError *metrics.Counter
	// limiterFallback counts requests decided by the failure mode because
	// Config.Limiter failed.
	limiterFallback *counter
}

// initMetrics creates g's metrics, registers its gauges and creates the
// accounts of the pseudo key_ids "-" and "no-keys-configured". It is called
// by New once g's proxy, keys and access log are set.
func (g *Gateway) initMetrics() {
	g.none = newSharedAccount(KeyIDNone)
	g.failOpen = newSharedAccount(KeyIDNoKeysConfigured)
	m := &gatewayMetrics{set: metrics.NewSet(), latency: new(latencyHistogram)}
	for r := auth.ReasonMissing; r <= auth.ReasonUnknown; r++ {
		m.unauthorized[r] = newCounter(true)
	}
	m.limiterFallback = newCounter(true)
	if g.cfg.Limiter != nil {
		m.set.NewGauge("authgate_limiter_up", func() float64 {
			if g.limiterErr() != nil {
				return 0
			}
			return 1
		})
	}
	m.reloadsOK = m.set.NewCounter(`authgate_key_reloads_total{result="ok"}`)
	m.reloadsError = m.set.NewCounter(`authgate_key_reloads_total{result="error"}`)
	// An upstream listed twice is one series: healthy while any of its
	// entries is, its requests in flight summed.
	byName := map[string][]proxy.Upstream{}
	var names []string
	for _, up := range g.proxy.Upstreams() {
		if byName[up.Name()] == nil {
			names = append(names, up.Name())
		}
		byName[up.Name()] = append(byName[up.Name()], up)
	}
	for _, name := range names {
		ups := byName[name]
		label := `{upstream="` + escapeLabel(name) + `"}`
		m.set.NewGauge("authgate_upstream_healthy"+label, func() float64 {
			for _, up := range ups {
				if up.Healthy() {
					return 1
				}
			}
			return 0
		})
		m.set.NewGauge("authgate_upstream_in_flight"+label, func() float64 {
			var n int64
			for _, up := range ups {
				n += up.InFlight()
			}
			return float64(n)
		})
	}
	m.set.NewGauge("authgate_keys_loaded", func() float64 {
		if s := g.keys.Load(); s != nil {
			return float64(s.keys.Len())
		}
		return 0
	})
	m.set.NewGauge("authgate_key_ids_loaded", func() float64 {
		if s := g.keys.Load(); s != nil {
			return float64(len(s.keys.Identities()))
		}
		return 0
	})
	m.set.NewGauge("authgate_connections_open", func() float64 {
		// fasthttp's count; -1 before Serve.
		return float64(max(g.srv.GetOpenConnectionsCount(), 0))
	})
	m.set.RegisterMetricsWriter(g.writeMetrics)
	g.metrics = m
}

// countReload records the outcome of a Reload.
func (m *gatewayMetrics) countReload(err error) {
	if err != nil {
		m.reloadsError.Inc()
	} else {
		m.reloadsOK.Inc()
	}
}

// WriteMetrics writes g's metrics to w in the Prometheus text format, as
// the admin listener's /metrics serves them. It never writes a key.
func (g *Gateway) WriteMetrics(w io.Writer) {
	g.metrics.set.WritePrometheus(w)
}

// writeMetrics writes the counters the metrics.Set cannot hold: sharded
// ones, per-account tables and the access log's counters.
func (g *Gateway) writeMetrics(w io.Writer) {
	var bb bytes.Buffer
	m := g.metrics

	accts := []*account{g.none}
	if g.open != nil {
		accts = append(accts, g.open)
	}
	if g.failOpen != nil {
		accts = append(accts, g.failOpen)
	}
	g.accounts.each(func(a *account) { accts = append(accts, a) })
	slices.SortFunc(accts, func(a, b *account) int {
		switch {
		case a.keyID < b.keyID:
			return -1
		case a.keyID > b.keyID:
			return 1
		}
		return 0
	})

	type codeN struct {
		code int
		n    uint64
	}
	var codes []codeN
	metrics.WriteMetadataIfNeeded(&bb, "authgate_requests_total", "counter")
	for _, a := range accts {
		codes = codes[:0]
		a.stats.eachCode(func(code int, n uint64) { codes = append(codes, codeN{code, n}) })
		slices.SortFunc(codes, func(x, y codeN) int { return x.code - y.code })
		for _, c := range codes {
			bb.WriteString(`authgate_requests_total{key_id="`)
			bb.WriteString(escapeLabel(a.keyID))
			bb.WriteString(`",code="`)
			bb.WriteString(strconv.Itoa(c.code))
			bb.WriteString(`"} `)
			bb.WriteString(strconv.FormatUint(c.n, 10))
			bb.WriteByte('\n')
		}
	}

	metrics.WriteMetadataIfNeeded(&bb, "authgate_rate_limited_total", "counter")
	for _, a := range accts {
		if c := a.stats.limited.Load(); c != nil {
			bb.WriteString(`authgate_rate_limited_total{key_id="`)
			bb.WriteString(escapeLabel(a.keyID))
			bb.WriteString(`"} `)
			bb.WriteString(strconv.FormatUint(c.load(), 10))
			bb.WriteByte('\n')
		}
	}

	metrics.WriteMetadataIfNeeded(&bb, "authgate_unauthorized_total", "counter")
	for r := auth.ReasonMissing; r <= auth.ReasonUnknown; r++ {
		bb.WriteString(`authgate_unauthorized_total{reason="`)
		bb.WriteString(r.String())
		bb.WriteString(`"} `)
		bb.WriteString(strconv.FormatUint(m.unauthorized[r].load(), 10))
		bb.WriteByte('\n')
	}

	metrics.WriteCounterUint64(&bb, "authgate_connections_rejected_total", g.conns.Refused()+uint64(g.srv.GetRejectedConnectionsCount()))

	m.latency.write(&bb, "authgate_request_duration_seconds")

	if g.cfg.Limiter != nil {
		metrics.WriteMetadataIfNeeded(&bb, "authgate_limiter_fallback_total", "counter")
		bb.WriteString(`authgate_limiter_fallback_total{mode="`)
		bb.WriteString(string(g.cfg.LimiterFailureMode))
		bb.WriteString(`"} `)
		bb.WriteString(strconv.FormatUint(m.limiterFallback.load(), 10))
		bb.WriteByte('\n')
		if w, ok := g.cfg.Limiter.(interface{ WriteMetrics(io.Writer) }); ok {
			w.WriteMetrics(&bb)
		}
	}

	st := g.AccessLogStats()
	metrics.WriteCounterUint64(&bb, `authgate_access_log_lines_total{result="written"}`, st.Written)
	metrics.WriteCounterUint64(&bb, `authgate_access_log_lines_total{result="failed"}`, st.Failed)
	metrics.WriteCounterUint64(&bb, "authgate_access_log_waits_total", st.Waited)
	metrics.WriteCounterUint64(&bb, "authgate_access_log_write_errors_total", st.WriteErrors)
	metrics.WriteGaugeUint64(&bb, "authgate_access_log_pending_lines", st.Pending)
	metrics.WriteCounterUint64(&bb, "authgate_access_log_reopens_total", st.Reopened)

	w.Write(bb.Bytes())
}

// write writes h as the Prometheus histogram name: cumulative buckets,
// _sum in seconds and _count.
func (h *latencyHistogram) write(bb *bytes.Buffer, name string) {
	var counts [len(latencyBounds) + 1]uint64
	var sum uint64
	for i := range h.shards {
		s := &h.shards[i]
		for j := range s.counts {
			counts[j] += s.counts[j].Load()
		}
		sum += s.sum.Load()
	}
	metrics.WriteMetadataIfNeeded(bb, name, "histogram")
	var cum uint64
	for i, c := range counts {
		cum += c
		bb.WriteString(name)
		bb.WriteString(`_bucket{le="`)
		if i < len(latencyBounds) {
			bb.WriteString(strconv.FormatFloat(latencyBounds[i].Seconds(), 'g', -1, 64))
		} else {
			bb.WriteString("+Inf")
		}
		bb.WriteString(`"} `)
		bb.WriteString(strconv.FormatUint(cum, 10))
		bb.WriteByte('\n')
	}
	bb.WriteString(name)
	bb.WriteString("_sum ")
	bb.WriteString(strconv.FormatFloat(time.Duration(sum).Seconds(), 'g', -1, 64))
	bb.WriteByte('\n')
	bb.WriteString(name)
	bb.WriteString("_count ")
	bb.WriteString(strconv.FormatUint(cum, 10))
	bb.WriteByte('\n')
}

// escapeLabel escapes s for a Prometheus label value.
func escapeLabel(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' && c != '"' && c != '\n' {
			if b != nil {
				b = append(b, c)
			}
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, len(s)+8), s[:i]...)
		}
		switch c {
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, '\\', c)
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}
