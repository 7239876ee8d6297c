package listen

import (
	"net"
	"net/netip"
	"testing"

	"github.com/authgate/authgate/internal/forwarded"
	"github.com/authgate/authgate/internal/netconn"
)

// TestConnLimitsCount: admit counts per address up to MaxConnsPerIP and in
// all up to MaxConns, refusing beyond either without counting; a closed
// connection releases its count once, however often it is closed, and an
// address whose connections have all closed leaves nothing behind.
func TestConnLimitsCount(t *testing.T) {
	cl := NewLimits(4, 2, nil, nil, nil)
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	for i, want := range []struct {
		ip   netip.Addr
		over overLimit
	}{{a, withinLimits}, {a, withinLimits}, {a, overPerIP}, {b, withinLimits}, {b, withinLimits}, {c, overMaxConns}} {
		if got := cl.admit(want.ip); got != want.over {
			t.Fatalf("connection %d from %v: over limit %d, want %d", i, want.ip, got, want.over)
		}
	}
	if cl.open != 4 || len(cl.byIP) != 2 {
		t.Fatalf("%d open, %d addresses; want 4 and 2", cl.open, len(cl.byIP))
	}

	// Closing through the wrapped connection releases once.
	p1, p2 := net.Pipe()
	defer p2.Close()
	dc := netconn.Wrap(p1, netconn.Options{OnClose: func() { cl.release(a) }})
	dc.Close()
	dc.Close()
	if cl.open != 3 || cl.byIP[a] != 1 {
		t.Fatalf("after closing one of a's twice: %d open, a has %d; want 3 and 1", cl.open, cl.byIP[a])
	}
	if cl.admit(c) != withinLimits {
		t.Fatal("a connection refused with room for it")
	}
	for _, ip := range []netip.Addr{a, b, b, c} {
		cl.release(ip)
	}
	if cl.open != 0 || len(cl.byIP) != 0 {
		t.Fatalf("all closed: %d open, %d addresses kept; want none", cl.open, len(cl.byIP))
	}
}

// TestConnLimitsTrustedProxy: a trusted proxy's connections, IPv4-mapped
// or not, are counted against MaxConns only, and leave nothing per
// address behind.
func TestConnLimitsTrustedProxy(t *testing.T) {
	cl := NewLimits(4, 1, forwarded.Trusted{netip.MustParsePrefix("10.0.0.0/8")}, nil, nil)
	proxy, mapped, other := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::ffff:10.0.0.2"), netip.MustParseAddr("192.0.2.1")
	for i, want := range []struct {
		ip   netip.Addr
		over overLimit
	}{{proxy, withinLimits}, {proxy, withinLimits}, {mapped, withinLimits}, {other, withinLimits}, {proxy, overMaxConns}} {
		if got := cl.admit(want.ip); got != want.over {
			t.Fatalf("connection %d from %v: over limit %d, want %d", i, want.ip, got, want.over)
		}
	}
	if len(cl.byIP) != 1 {
		t.Fatalf("%d addresses counted, want 1 (the untrusted one)", len(cl.byIP))
	}
	cl.release(proxy)
	if got := cl.admit(other); got != overPerIP {
		t.Fatalf("a second connection from %v: over limit %d, want %d", other, got, overPerIP)
	}
	for _, ip := range []netip.Addr{proxy, mapped, other} {
		cl.release(ip)
	}
	if cl.open != 0 || len(cl.byIP) != 0 {
		t.Fatalf("all closed: %d open, %d addresses kept; want none", cl.open, len(cl.byIP))
	}
}
