package bench_test

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestBenchSetup runs every benchmark's scenario for a few requests and
// checks their statuses, so that `go test ./bench/` proves the benchmarks
// measure what they claim: the ceiling and the unknown key answer 401, the
// rpm=1 key 429 after its first request, and the proxied requests reach the
// upstream.
func TestBenchSetup(t *testing.T) {
	f := func(name string, sc scenario) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			const requests = 3
			c := sc.setup(t, 1+requests)
			req, resp := newRequest(sc.key), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			roundTrip(t, c, req, resp, sc.warm)
			for range requests {
				roundTrip(t, c, req, resp, sc.want)
			}
		})
	}
	f("Ceiling401", ceiling())
	for _, log := range logModes {
		f("GatewayReject/log="+log, gatewayReject(log))
		f("GatewayReject429/log="+log, gatewayReject429(log))
	}
	for _, up := range upstreams {
		for _, network := range []string{"inmem", "tcp"} {
			f("UpstreamDirect/upstream="+up.name+"/net="+network, upstreamDirect(up.handler(), network))
		}
		for _, log := range logModes {
			f("GatewayProxy/upstream="+up.name+"/log="+log, gatewayProxy(up.handler(), log))
		}
	}
}
