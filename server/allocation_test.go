//go:build !race

package server

import (
	"runtime"
	"testing"
)

// TestAllocationsPerRequest asserts that the reject, rate-limit and
// admit-and-proxy paths allocate nothing per request, access log included.
func TestAllocationsPerRequest(t *testing.T) {
	g := newTestGateway(t, true)
	f := func(name, authz string, wantStatus int) {
		t.Helper()
		ctx := newCtx(authz)
		a := []byte(authz)
		if len(a) == 0 {
			a = nil
		}
		serveOnce(g, ctx, a) // warm-up: pools, account, limiter ring
		serveOnce(g, ctx, a)
		n := testing.AllocsPerRun(200, func() {
			if s := serveOnce(g, ctx, a); s != wantStatus {
				t.Fatalf("%s: status %d, want %d", name, s, wantStatus)
			}
			// AllocsPerRun runs on one P: let the access log's writer
			// goroutine take its turn, as it would on another core.
			runtime.Gosched()
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, n)
		}
	}
	f("missing key", "", 401)
	f("bad format", "Bearer short", 401)
	f("unknown key", "Bearer sk-unknown-0123456789abcdef", 401)
	f("rate limited", "Bearer "+testKey, 429)
	f("admitted and proxied", "Bearer "+testKeyHigh, 200)
}
