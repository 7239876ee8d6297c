package forwarded

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestParse(t *testing.T) {
	f := func(s string, want ...string) {
		t.Helper()
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		if !reflect.DeepEqual(gotS, want) {
			t.Fatalf("Parse(%q) = %q, want %q", s, gotS, want)
		}
	}
	f("")
	f("  ")
	f("10.0.0.0/8", "10.0.0.0/8")
	f("127.0.0.1", "127.0.0.1/32")
	f("::1", "::1/128")
	f(" 10.0.0.0/8 ,192.168.1.10, 2001:db8::/32 ", "10.0.0.0/8", "192.168.1.10/32", "2001:db8::/32")
	f("::ffff:10.0.0.1", "10.0.0.1/32")
	f("::ffff:10.0.0.0/104", "10.0.0.0/8")
	f("0.0.0.0/0,::/0", "0.0.0.0/0", "::/0")

	bad := func(s, item, why string) {
		t.Helper()
		_, err := Parse(s)
		if err == nil {
			t.Fatalf("Parse(%q) accepted", s)
		}
		if !strings.Contains(err.Error(), `"`+item+`"`) || !strings.Contains(err.Error(), why) {
			t.Fatalf("Parse(%q): error %q, want it to name %q and say %q", s, err, item, why)
		}
	}
	bad("10.0.0.0/8,", "", "empty")
	bad("10.0.0.0/8,,::1", "", "empty")
	bad("proxy.internal", "proxy.internal", "not an IP address")
	bad("10.0.0.0/33", "10.0.0.0/33", "not an IP address")
	bad("10.0.0.0/", "10.0.0.0/", "not an IP address")
	bad("10.0.0.1-10.0.0.9", "10.0.0.1-10.0.0.9", "not an IP address")
	bad("1.2.3.4:80", "1.2.3.4:80", "not an IP address")
	bad("10.1.2.3/8", "10.1.2.3/8", "meant 10.0.0.0/8, or 10.1.2.3/32?")
	bad("fe80::1%eth0", "fe80::1%eth0", "zone")
	bad("::ffff:0:0/80", "::ffff:0:0/80", "IPv4-mapped")
}

func TestTrustedProxiesContains(t *testing.T) {
	tp := Trusted(Normalize([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::ffff:192.168.0.0/112"), // 192.168.0.0/16, mapped
		netip.MustParsePrefix("2001:db8::/32"),
	}))
	f := func(ip string, want bool) {
		t.Helper()
		if got := tp.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("contains(%s) = %v, want %v", ip, got, want)
		}
	}
	f("10.1.2.3", true)
	f("::ffff:10.1.2.3", true)
	f("192.168.4.4", true)
	f("2001:db8::1", true)
	f("2001:db8::1%eth0", true)
	f("11.0.0.1", false)
	f("2001:db9::1", false)
	if tp.Contains(netip.Addr{}) || Trusted(nil).Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("the zero Addr, or an address with no proxy trusted, is trusted")
	}
}

// TestClientChain: the client behind a trusted peer is the rightmost
// X-Forwarded-For address that is not trusted, the lines taken as one
// list; a walk through trusted proxies only ends on the leftmost, and one
// that meets something not an address on the last trusted one reached.
func TestClientChain(t *testing.T) {
	tp := Trusted{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}
	peer := netip.MustParseAddr("10.0.0.1")
	f := func(want string, lines ...string) {
		t.Helper()
		c := clientChain{trusted: tp, addr: peer}
		for i := len(lines) - 1; i >= 0 && c.walk([]byte(lines[i])); i-- {
		}
		if got := c.addr.String(); got != want {
			t.Errorf("X-Forwarded-For %q: client %s, want %s", lines, got, want)
		}
	}
	f("10.0.0.1")
	f("10.0.0.1", "")
	f("203.0.113.5", "203.0.113.5")
	f("203.0.113.5", "192.0.2.1, 203.0.113.5")
	f("203.0.113.5", "192.0.2.1, 203.0.113.5, 10.0.0.7")
	f("203.0.113.5", "192.0.2.1", "203.0.113.5, 10.0.0.7", "10.0.0.8")
	f("203.0.113.5", "203.0.113.5 ,, 10.0.0.7 ,")
	f("10.0.0.9", "10.0.0.9, 10.0.0.7")
	f("10.0.0.9", "10.0.0.9", " 10.0.0.7")
	f("10.0.0.1", "unknown")
	f("10.0.0.1", "203.0.113.5, unknown")
	f("10.0.0.7", "203.0.113.5, 1.2.3, 10.0.0.7")
	f("203.0.113.5", "1.2.3, 203.0.113.5")
	f("203.0.113.5", "203.0.113.5:4711")
	f("2001:db8::5", "2001:db8::5")
	f("2001:db8::5", "[2001:db8::5]")
	f("2001:db8::5", "[2001:db8::5]:443, [2001:db8:1::9]")
	f("203.0.113.5", "::ffff:203.0.113.5")
	f("10.0.0.1", "fe80::1%eth0")
	f("10.0.0.1", "[2001:db8::5")
}

func TestParseForwardedFor(t *testing.T) {
	f := func(item, want string) {
		t.Helper()
		ip, ok := parseForwardedFor([]byte(item))
		got := ""
		if ok {
			got = ip.String()
		}
		if got != want {
			t.Errorf("parseForwardedFor(%q) = %q, want %q", item, got, want)
		}
	}
	f("1.2.3.4", "1.2.3.4")
	f("1.2.3.4:80", "1.2.3.4")
	f("2001:DB8::1", "2001:db8::1")
	f("[2001:db8::1]", "2001:db8::1")
	f("[2001:db8::1]:80", "2001:db8::1")
	f("::ffff:1.2.3.4", "1.2.3.4")
	f("unknown", "")
	f("_hidden", "")
	f("1.2.3.4:", "")
	f("1.2.3.4:99999", "")
	f("[1.2.3.4]:80", "")
	f("[", "")
	f("[]", "")
	f("]", "")
	f("fe80::1%25eth0", "")
	f("1.2.3.4 5", "")
}

func TestAppendForwardedElem(t *testing.T) {
	f := func(ip string, proto, want string) {
		t.Helper()
		if got := string(appendForwardedElem(nil, netip.MustParseAddr(ip), []byte(proto))); got != want {
			t.Errorf("appendForwardedElem(%s, %s) = %s, want %s", ip, proto, got, want)
		}
	}
	f("192.0.2.1", "http", "for=192.0.2.1;proto=http")
	f("2001:db8::1", "https", `for="[2001:db8::1]";proto=https`)
}

// TestHeaderNamesCanonical: the names Set writes with SetCanonical are in
// the form fasthttp's normalizing gives them.
func TestHeaderNamesCanonical(t *testing.T) {
	for _, k := range forwardingHeaders {
		var h fasthttp.RequestHeader
		h.SetBytesKV(bytes.ToLower(k), []byte("1"))
		for got := range h.All() {
			if !bytes.Equal(got, k) {
				t.Errorf("fasthttp normalizes %q to %q", k, got)
			}
		}
	}
}
