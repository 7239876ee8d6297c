package server

// Metrics, as the admin listener's /metrics shows them
// (docs/operations.md#metrics). Every Gateway has its own metrics.Set: two
// gateways in one process never share a series, and nothing is registered
// globally. The request path counts with internal/stats (no allocation, no
// lock, no shared cache line in steady state); gauges (upstream health and
// load, keys loaded, access-log counters) are read by callback at scrape
// time, from state the gateway keeps anyway. A key_id dropped by a reload
// loses its account and with it its series; if it comes back, its counters
// start again from zero, which Prometheus reads as a counter reset.

import (
	"bytes"
	"io"
	"slices"
	"strconv"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/internal/stats"
)

// newSharedAccount returns the account of a pseudo key_id, shared by many
// clients' requests: not rate-limited, with sharded counters.
func newSharedAccount(keyID string) *account {
	return &account{keyID: keyID, stats: stats.Requests{Shared: true}}
}

// shardOf returns the shard key of ctx's request: its connection's id.
func shardOf(ctx *fasthttp.RequestCtx) uint32 {
	return uint32(ctx.ConnID())
}

// gatewayMetrics are a Gateway's metrics: its registry and the counters
// that are not an account's.
type gatewayMetrics struct {
	set          *metrics.Set
	unauthorized [auth.ReasonUnknown + 1]*stats.Counter // by reason; ReasonOK unused
	expired      *stats.Counter                         // 401s of expired keys
	latency      *stats.Histogram
	reloadsOK    *metrics.Counter
	reloadsError *metrics.Counter
	// limiterFallback counts requests decided by the failure mode because
	// Config.Limiter failed.
	limiterFallback *stats.Counter
}

// initMetrics creates g's metrics, registers its gauges and creates the
// accounts of the pseudo key_ids "-" and "no-keys-configured". It is called
// by New once g's proxy, keys and access log are set.
func (g *Gateway) initMetrics() {
	g.none = newSharedAccount(KeyIDNone)
	g.failOpen = newSharedAccount(KeyIDNoKeysConfigured)
	m := &gatewayMetrics{set: metrics.NewSet(), latency: new(stats.Histogram)}
	for r := auth.ReasonMissing; r <= auth.ReasonUnknown; r++ {
		m.unauthorized[r] = stats.NewCounter(true)
	}
	m.limiterFallback = stats.NewCounter(true)
	m.expired = stats.NewCounter(true)
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
		label := `{upstream="` + stats.EscapeLabel(name) + `"}`
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
		a.stats.EachCode(func(code int, n uint64) { codes = append(codes, codeN{code, n}) })
		slices.SortFunc(codes, func(x, y codeN) int { return x.code - y.code })
		for _, c := range codes {
			bb.WriteString(`authgate_requests_total{key_id="`)
			bb.WriteString(stats.EscapeLabel(a.keyID))
			bb.WriteString(`",code="`)
			bb.WriteString(strconv.Itoa(c.code))
			bb.WriteString(`"} `)
			bb.WriteString(strconv.FormatUint(c.n, 10))
			bb.WriteByte('\n')
		}
	}

	metrics.WriteMetadataIfNeeded(&bb, "authgate_rate_limited_total", "counter")
	for _, a := range accts {
		if n, ok := a.stats.RateLimitedCount(); ok {
			bb.WriteString(`authgate_rate_limited_total{key_id="`)
			bb.WriteString(stats.EscapeLabel(a.keyID))
			bb.WriteString(`"} `)
			bb.WriteString(strconv.FormatUint(n, 10))
			bb.WriteByte('\n')
		}
	}

	metrics.WriteMetadataIfNeeded(&bb, "authgate_unauthorized_total", "counter")
	for r := auth.ReasonMissing; r <= auth.ReasonUnknown; r++ {
		bb.WriteString(`authgate_unauthorized_total{reason="`)
		bb.WriteString(r.String())
		bb.WriteString(`"} `)
		bb.WriteString(strconv.FormatUint(m.unauthorized[r].Load(), 10))
		bb.WriteByte('\n')
	}
	bb.WriteString(`authgate_unauthorized_total{reason="expired"} `)
	bb.WriteString(strconv.FormatUint(m.expired.Load(), 10))
	bb.WriteByte('\n')

	metrics.WriteMetadataIfNeeded(&bb, "authgate_key_expiry_timestamp_seconds", "gauge")
	if snap := g.keys.Load(); snap != nil {
		for _, id := range snap.keys.Identities() { // in the keys file's order
			if e := id.Settings.Expires; !e.IsZero() {
				bb.WriteString(`authgate_key_expiry_timestamp_seconds{key_id="`)
				bb.WriteString(stats.EscapeLabel(id.KeyID))
				bb.WriteString(`"} `)
				bb.WriteString(strconv.FormatInt(e.Unix(), 10))
				bb.WriteByte('\n')
			}
		}
	}

	g.models.Write(&bb, "authgate_model_requests_total", "model")

	metrics.WriteCounterUint64(&bb, "authgate_connections_rejected_total", g.conns.Refused()+uint64(g.srv.GetRejectedConnectionsCount()))

	m.latency.Write(&bb, "authgate_request_duration_seconds")

	if g.cfg.Limiter != nil {
		metrics.WriteMetadataIfNeeded(&bb, "authgate_limiter_fallback_total", "counter")
		bb.WriteString(`authgate_limiter_fallback_total{mode="`)
		bb.WriteString(string(g.cfg.LimiterFailureMode))
		bb.WriteString(`"} `)
		bb.WriteString(strconv.FormatUint(m.limiterFallback.Load(), 10))
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
