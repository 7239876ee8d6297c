package proxy

import (
	"context"
	"crypto/tls"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"

	"github.com/authgate/authgate/internal/upstreamspec"
)

// upstream is one upstream server: its address, its connection pool and
// the state the balancer reads. Fields written per request are padded off
// the read-only ones.
type upstream struct {
	name   string // the base URL as configured, for logs and metrics
	host   []byte // Host header value
	prefix []byte // base path prepended to every request path, or nil
	pool   *connPool
	health healthCheck

	// models is what the upstream serves (docs/configuration.md#models-and-routing):
	// its declared models (stored by New), or the list its health check
	// last read, or nil for any model.
	models   atomic.Pointer[modelSet]
	discover bool // the health check reads the model list

	noStreamOptions bool // stream-options=off: never add stream_options

	_        [64]byte
	inflight atomic.Int64 // requests sent and not yet finished
	healthy  atomic.Bool
	_        [64]byte
}

// newUpstream builds the upstream of one Config.Upstreams item; created
// is the "created" time of its declared models' entries.
func newUpstream(raw string, dial func(ctx context.Context, network, addr string) (net.Conn, error), created int64) (*upstream, error) {
	it, err := upstreamspec.ParseItem(raw)
	if err != nil {
		return nil, err
	}
	u := it.URL
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	up := &upstream{
		name: it.Raw,
		host: []byte(u.Host),
		pool: &connPool{
			addr:        net.JoinHostPort(u.Hostname(), port),
			dialTimeout: defaultDialTimeout,
			idleTimeout: defaultIdleTimeout,
			maxIdle:     defaultMaxIdle,
			dialer:      dial,
		},
	}
	if u.Scheme == "https" {
		up.pool.tlsConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	if prefix := strings.TrimSuffix(u.EscapedPath(), "/"); prefix != "" {
		up.prefix = []byte(prefix)
	}
	if it.Declared {
		up.models.Store(declaredSet(it.Models, created))
	}
	up.noStreamOptions = it.NoStreamOptions
	up.healthy.Store(true) // until a check says otherwise
	return up, nil
}

// pick returns the healthy upstream with the fewest requests in flight,
// ties broken at random, skipping skip (the one a retry moves away from).
// It returns nil when no healthy upstream is left.
func pick(ups []*upstream, skip *upstream) *upstream {
	if len(ups) == 1 {
		if up := ups[0]; up != skip && up.healthy.Load() {
			return up
		}
		return nil
	}
	var best *upstream
	var bestLoad int64
	ties := 0
	for _, up := range ups {
		if up == skip || !up.healthy.Load() {
			continue
		}
		load := up.inflight.Load()
		switch {
		case best == nil || load < bestLoad:
			best, bestLoad, ties = up, load, 1
		case load == bestLoad:
			// Reservoir sampling: each of the tied upstreams is kept with
			// equal probability.
			ties++
			if rand.IntN(ties) == 0 {
				best = up
			}
		}
	}
	return best
}

// Upstream is one configured upstream, as the gateway's metrics see it.
type Upstream struct{ u *upstream }

// Upstreams returns the configured upstreams, in the order configured (an
// upstream listed twice is two).
func (p *Proxy) Upstreams() []Upstream {
	out := make([]Upstream, len(p.ups))
	for i, up := range p.ups {
		out[i] = Upstream{up}
	}
	return out
}

// Name is the upstream's base URL as configured.
func (u Upstream) Name() string { return u.u.name }

// Healthy reports whether the upstream gets traffic.
func (u Upstream) Healthy() bool { return u.u.healthy.Load() }

// InFlight is the number of requests sent to it and not finished.
func (u Upstream) InFlight() int64 { return u.u.inflight.Load() }

// Idle returns how many idle connections its pool holds, and the most it
// keeps.
func (u Upstream) Idle() (idle, max int) {
	p := u.u.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle), p.maxIdle
}
