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
	"fmt"
	"io"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/accounts"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/internal/stats"
)

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
	g.none = accounts.NewShared(KeyIDNone)
	g.failOpen = accounts.NewShared(KeyIDNoKeysConfigured)
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
			return float64(s.Keys.Len())
		}
		return 0
	})
	m.set.NewGauge("authgate_key_ids_loaded", func() float64 {
		if s := g.keys.Load(); s != nil {
			return float64(len(s.Keys.Identities()))
		}
		return 0
	})
	m.set.NewGauge("authgate_connections_open", func() float64 {
		// fasthttp's count (-1 before Serve), the parked ones, and those
		// of relayed streams.
		return float64(int(max(g.srv.GetOpenConnectionsCount(), 0)) + g.parker.Parked() + g.relay.Active())
	})
	m.set.NewGauge("authgate_connections_parked", func() float64 { return float64(g.parker.Parked()) })
	m.set.NewGauge("authgate_streams_relayed", func() float64 { return float64(g.relay.Active()) })
	m.set.NewGauge("authgate_inspect_bytes_reserved", func() float64 {
		return float64(g.inspect.InUse())
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

	accts := []*accounts.Account{g.none}
	if g.open != nil {
		accts = append(accts, g.open)
	}
	if g.failOpen != nil {
		accts = append(accts, g.failOpen)
	}
	g.accounts.Each(func(a *accounts.Account) { accts = append(accts, a) })
	accounts.WriteMetrics(&bb, accts)

	metrics.WriteMetadataIfNeeded(&bb, "authgate_unauthorized_total", "counter")
	for r := auth.ReasonMissing; r <= auth.ReasonUnknown; r++ {
		fmt.Fprintf(&bb, "authgate_unauthorized_total{reason=\"%s\"} %d\n", r, m.unauthorized[r].Load())
	}
	fmt.Fprintf(&bb, "authgate_unauthorized_total{reason=\"expired\"} %d\n", m.expired.Load())

	metrics.WriteMetadataIfNeeded(&bb, "authgate_key_expiry_timestamp_seconds", "gauge")
	if snap := g.keys.Load(); snap != nil {
		for _, id := range snap.Keys.Identities() { // in the keys file's order
			if e := id.Settings.Expires; !e.IsZero() {
				fmt.Fprintf(&bb, "authgate_key_expiry_timestamp_seconds{key_id=\"%s\"} %d\n", stats.EscapeLabel(id.KeyID), e.Unix())
			}
		}
	}

	g.models.Write(&bb, "authgate_model_requests_total", "model")
	g.tokens.Write(&bb)

	metrics.WriteCounterUint64(&bb, "authgate_connections_rejected_total", g.conns.Refused()+uint64(g.srv.GetRejectedConnectionsCount()))

	m.latency.Write(&bb, "authgate_request_duration_seconds")

	if g.cfg.Limiter != nil {
		metrics.WriteMetadataIfNeeded(&bb, "authgate_limiter_fallback_total", "counter")
		fmt.Fprintf(&bb, "authgate_limiter_fallback_total{mode=\"%s\"} %d\n", g.cfg.LimiterFailureMode, m.limiterFallback.Load())
		if w, ok := g.cfg.Limiter.(interface{ WriteMetrics(io.Writer) }); ok {
			w.WriteMetrics(&bb)
		}
	}
	if w, ok := g.cfg.TokenStore.(interface{ WriteMetrics(io.Writer) }); ok {
		w.WriteMetrics(&bb)
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
