package server

import (
	"time"

	"github.com/authgate/authgate/internal/proxy"
)

// Test hooks for the external tests of faults_test.go: they read and tune
// what a real deployment cannot see from outside.

// PoolStats is one upstream's connection pool as TestUpstreamFaults sees
// it.
type PoolStats struct {
	Upstream string
	Idle     int   // idle connections held
	MaxIdle  int   // the pool's cap on them
	InFlight int64 // requests sent and not finished
}

// UpstreamPoolStats returns the state of each of g's upstream pools.
func UpstreamPoolStats(g *Gateway) []PoolStats {
	var s []PoolStats
	for _, up := range g.proxy.Upstreams() {
		idle, maxIdle := up.Idle()
		s = append(s, PoolStats{Upstream: up.Name(), Idle: idle, MaxIdle: maxIdle, InFlight: up.InFlight()})
	}
	return s
}

// SetMaxIdleWorkerDuration sets how long g's fasthttp server keeps an idle
// worker goroutine (10 s by default), so that a test counting goroutines
// need not wait that long. Call it before Serve.
func SetMaxIdleWorkerDuration(g *Gateway, d time.Duration) {
	g.srv.MaxIdleWorkerDuration = d
}

// WatchDelay is how long an exchange lasts before its client is watched.
const WatchDelay = proxy.WatchDelay

// WatchesStarted is how many client watches the proxy has started in this
// process (they start only for exchanges that outlast watchDelay).
func WatchesStarted() uint64 { return proxy.WatchesStarted() }

// ParkedConns is how many of g's client connections are parked.
func ParkedConns(g *Gateway) int { return g.parker.Parked() }

// ServedConns is how many client connections g's fasthttp server is
// serving (parked ones are not).
func ServedConns(g *Gateway) int { return int(max(g.srv.GetOpenConnectionsCount(), 0)) }

// OpenConns is how many client connections count against MaxConns.
func OpenConns(g *Gateway) int { return g.conns.Open() }

// RelayedStreams is how many of g's streams are relayed now.
func RelayedStreams(g *Gateway) int { return g.relay.Active() }
