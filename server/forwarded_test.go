package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/server"
)

// startHeaderUpstream starts an upstream that sends the headers of every
// request it gets (the trailers of a chunked one under "Trailer: NAME")
// on the returned channel, and answers 200 {}.
func startHeaderUpstream(t *testing.T) (string, <-chan http.Header) {
	t.Helper()
	got := make(chan http.Header, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h := r.Header.Clone()
		for k, v := range r.Trailer {
			h["Trailer: "+k] = v
		}
		got <- h
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// received returns the headers of the next request the upstream got.
func received(t *testing.T, got <-chan http.Header) http.Header {
	t.Helper()
	select {
	case h := <-got:
		return h
	case <-time.After(waitLimit):
		t.Fatal("the upstream got no request")
		return nil
	}
}

// sendFrom sends the raw request to addr on a connection from the local
// address local (nil: any), and returns the response's status, with the
// connection still open (closed at the test's end).
func sendFrom(t *testing.T, addr string, local net.IP, raw string) (int, net.Conn) {
	t.Helper()
	d := net.Dialer{Timeout: waitLimit}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetDeadline(time.Time{})
	return resp.StatusCode, c
}

// forged are forwarding headers a client makes up, with several lines of
// some and names in any case, each naming an address of 6.6.6.0/24.
const forged = "X-Forwarded-For: 6.6.6.1\r\n" +
	"x-forwarded-for: 6.6.6.2, 6.6.6.3\r\n" +
	"X-Forwarded-Proto: https\r\n" +
	"X-FORWARDED-PROTO: wss\r\n" +
	"Forwarded: for=6.6.6.4;proto=https\r\n" +
	"forwarded: for=\"[2001:db8::6]\"\r\n" +
	"X-Real-IP: 6.6.6.5\r\n"

// checkHeaders fails the test unless h holds exactly want's values for the
// forwarding headers, and none of them has anything of 6.6.6.0/24.
func checkHeaders(t *testing.T, what string, h http.Header, want map[string][]string) {
	t.Helper()
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "Forwarded", "X-Real-Ip"} {
		if got := h[k]; !reflect.DeepEqual(got, want[k]) {
			t.Errorf("%s: the upstream got %s %q, want %q", what, k, got, want[k])
		}
	}
	for k, v := range h {
		if strings.Contains(strings.Join(v, ","), "6.6.6.") {
			t.Errorf("%s: the upstream got a forged address in %s: %q", what, k, v)
		}
	}
}

// TestForwardedHeadersFromUntrustedClient: with no trusted proxy (the
// default), a client's own X-Forwarded-For, X-Forwarded-Proto, Forwarded
// and X-Real-IP, every line of them, never reach the upstream: it gets
// the gateway's X-Forwarded-For (the peer) and X-Forwarded-Proto (the
// scheme served), and nothing else. The code before TrustedProxies
// appended the peer to the client's first X-Forwarded-For, passed its
// second line, its X-Forwarded-Proto, Forwarded and X-Real-IP.
func TestForwardedHeadersFromUntrustedClient(t *testing.T) {
	upURL, got := startHeaderUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: -1})
	addr := strings.TrimPrefix(g.url, "http://")
	gateways := map[string][]string{"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Proto": {"http"}}

	if s, _ := sendFrom(t, addr, nil, rawRequest("POST", "/v1/embeddings", forged, "{}")); s != 200 {
		t.Fatalf("status %d", s)
	}
	checkHeaders(t, "forged headers", received(t, got), gateways)

	// One plain X-Forwarded-For, the usual forgery.
	if s, _ := sendFrom(t, addr, nil, rawRequest("GET", "/v1/models", "X-Forwarded-For: 6.6.6.9\r\n", "")); s != 200 {
		t.Fatalf("status %d", s)
	}
	checkHeaders(t, "one X-Forwarded-For", received(t, got), gateways)

	if s, _ := sendFrom(t, addr, nil, rawRequest("GET", "/v1/models", "", "")); s != 200 {
		t.Fatalf("status %d", s)
	}
	checkHeaders(t, "no forwarding header", received(t, got), gateways)
}

// logClients returns the status and client of each line of the JSON
// access log, flushing it by closing g.
func logClients(t *testing.T, g *gateway) []string {
	t.Helper()
	var out []string
	for _, l := range g.logLines(t) {
		var v struct {
			Status int     `json:"status"`
			Client *string `json:"client"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Client == nil {
			t.Fatalf("log line %q: no client (%v)", l, err)
		}
		out = append(out, fmt.Sprintf("%d %s", v.Status, *v.Client))
	}
	return out
}

// TestForwardedHeadersTrustedProxy: a peer in TrustedProxies has its
// forwarding headers kept and extended with itself (X-Forwarded-For's
// and Forwarded's lines joined into one), while another peer of the same
// gateway has its own replaced; the access log's client is the peer,
// behind a trusted proxy the rightmost X-Forwarded-For address that is
// not itself a trusted proxy, rejected requests included.
func TestForwardedHeadersTrustedProxy(t *testing.T) {
	upURL, got := startHeaderUpstream(t)
	g := startGateway(t, server.Config{
		KeysFile:            defaultKeys(t),
		Upstreams:           []string{upURL},
		HealthCheckInterval: -1,
		AccessLogFormat:     logsink.FormatJSON,
		TrustedProxies:      []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("10.0.0.0/8")},
	})
	addr := strings.TrimPrefix(g.url, "http://")
	proxy, client := net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 1)
	f := func(what string, from net.IP, extra string, want map[string][]string) {
		t.Helper()
		if s, _ := sendFrom(t, addr, from, rawRequest("POST", "/v1/embeddings", extra, "{}")); s != 200 {
			t.Fatalf("%s: status %d", what, s)
		}
		checkHeaders(t, what, received(t, got), want)
	}

	f("untrusted peer", client, forged,
		map[string][]string{"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Proto": {"http"}})
	f("trusted proxy, no forwarding header", proxy, "",
		map[string][]string{"X-Forwarded-For": {"127.0.0.2"}, "X-Forwarded-Proto": {"http"}, "Forwarded": {"for=127.0.0.2;proto=http"}})
	f("trusted proxy, two hops", proxy,
		"X-Forwarded-For: 198.51.100.7, 10.0.0.2\r\n"+
			"X-Forwarded-For: 10.0.0.3\r\n"+
			"X-Forwarded-Proto: https\r\n"+
			"Forwarded: for=198.51.100.7;proto=https\r\n"+
			"Forwarded: for=10.0.0.2\r\n"+
			"X-Real-IP: 198.51.100.7\r\n",
		map[string][]string{
			"X-Forwarded-For":   {"198.51.100.7, 10.0.0.2, 10.0.0.3, 127.0.0.2"},
			"X-Forwarded-Proto": {"https"},
			"Forwarded":         {"for=198.51.100.7;proto=https, for=10.0.0.2, for=127.0.0.2;proto=http"},
			"X-Real-Ip":         {"198.51.100.7"},
		})
	// The client made up 192.0.2.1; the proxy appended the address it saw.
	f("trusted proxy, client's own X-Forwarded-For", proxy, "X-Forwarded-For: 192.0.2.1, 203.0.113.5\r\n",
		map[string][]string{"X-Forwarded-For": {"192.0.2.1, 203.0.113.5, 127.0.0.2"}, "X-Forwarded-Proto": {"http"}, "Forwarded": {"for=127.0.0.2;proto=http"}})
	f("trusted proxy, garbled X-Forwarded-For", proxy, "X-Forwarded-For: 203.0.113.6, unknown\r\n",
		map[string][]string{"X-Forwarded-For": {"203.0.113.6, unknown, 127.0.0.2"}, "X-Forwarded-Proto": {"http"}, "Forwarded": {"for=127.0.0.2;proto=http"}})
	// Refused before the upstream: logged with the client all the same.
	raw := "GET /v1/models HTTP/1.1\r\nHost: g\r\nX-Forwarded-For: 203.0.113.8\r\n\r\n"
	if s, _ := sendFrom(t, addr, proxy, raw); s != 401 {
		t.Fatalf("no key: status %d", s)
	}
	if s, _ := sendFrom(t, addr, client, raw); s != 401 {
		t.Fatalf("no key: status %d", s)
	}

	want := []string{
		"200 127.0.0.1",
		"200 127.0.0.2",
		"200 198.51.100.7",
		"200 203.0.113.5",
		"200 127.0.0.2",
		"401 203.0.113.8",
		"401 127.0.0.1",
	}
	if got := logClients(t, g); !reflect.DeepEqual(got, want) {
		t.Errorf("access log status and client:\n got %q\nwant %q", got, want)
	}
}

// startGatewayOn is startGateway on a listener of network and address.
func startGatewayOn(t *testing.T, network, address string, cfg server.Config) (*server.Gateway, string) {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, address, err)
	}
	cfg.AccessLog = filepath.Join(t.TempDir(), "access.log")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go gw.Serve(ln)
	t.Cleanup(func() { gw.Close() })
	return gw, ln.Addr().String()
}

// TestForwardedHeadersIPv6: an IPv6 peer is written bracketed and quoted
// in Forwarded (RFC 7239), and an IPv4 peer on an IPv6 listener, seen as
// an IPv4-mapped address, is matched and written as IPv4.
func TestForwardedHeadersIPv6(t *testing.T) {
	upURL, got := startHeaderUpstream(t)
	cfg := server.Config{
		KeysFile:            defaultKeys(t),
		Upstreams:           []string{upURL},
		HealthCheckInterval: -1,
		TrustedProxies:      []netip.Prefix{netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("127.0.0.2/32")},
	}
	t.Run("IPv6 peer", func(t *testing.T) {
		_, addr := startGatewayOn(t, "tcp6", "[::1]:0", cfg)
		if s, _ := sendFrom(t, addr, nil, rawRequest("GET", "/v1/models", "X-Forwarded-For: 2001:db8::7\r\n", "")); s != 200 {
			t.Fatalf("status %d", s)
		}
		checkHeaders(t, "IPv6", received(t, got), map[string][]string{
			"X-Forwarded-For":   {"2001:db8::7, ::1"},
			"X-Forwarded-Proto": {"http"},
			"Forwarded":         {`for="[::1]";proto=http`},
		})
	})
	t.Run("IPv4-mapped peer", func(t *testing.T) {
		_, addr := startGatewayOn(t, "tcp", "[::]:0", cfg)
		_, port, _ := net.SplitHostPort(addr)
		for _, from := range []string{"127.0.0.2", "127.0.0.1"} {
			s, c := sendFrom(t, net.JoinHostPort("127.0.0.1", port), net.ParseIP(from), rawRequest("GET", "/v1/models", "X-Forwarded-For: 6.6.6.6\r\n", ""))
			if s != 200 {
				t.Fatalf("status %d", s)
			}
			h := received(t, got)
			if from == "127.0.0.2" {
				if want := []string{"6.6.6.6, 127.0.0.2"}; !reflect.DeepEqual(h["X-Forwarded-For"], want) {
					t.Errorf("trusted peer %s (local %s): X-Forwarded-For %q, want %q", from, c.LocalAddr(), h["X-Forwarded-For"], want)
				}
			} else {
				checkHeaders(t, "untrusted peer on an IPv6 listener", h, map[string][]string{"X-Forwarded-For": {from}, "X-Forwarded-Proto": {"http"}})
			}
		}
	})
}

// TestTrustedProxyNotCountedPerIP: MaxConnsPerIP applies as connections
// are accepted, before any header is read, so a trusted proxy, whose one
// address carries many clients, is not counted against it; any other
// address still is.
func TestTrustedProxyNotCountedPerIP(t *testing.T) {
	upURL, _ := startHeaderUpstream(t)
	g := startGateway(t, server.Config{
		KeysFile:       defaultKeys(t),
		Upstreams:      []string{upURL},
		MaxConnsPerIP:  1,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	})
	addr := strings.TrimPrefix(g.url, "http://")
	probe := "GET /healthz HTTP/1.1\r\nHost: g\r\n\r\n"
	for i := range 4 { // each held open while the next opens
		if s, _ := sendFrom(t, addr, net.IPv4(127, 0, 0, 2), probe); s != 200 {
			t.Fatalf("connection %d from the trusted proxy with MaxConnsPerIP=1: status %d, want it served", i+1, s)
		}
	}
	if s, _ := sendFrom(t, addr, net.IPv4(127, 0, 0, 1), probe); s != 200 {
		t.Fatalf("first connection from another address: status %d", s)
	}
	if s, _ := sendFrom(t, addr, net.IPv4(127, 0, 0, 1), probe); s != 429 {
		t.Fatalf("second connection from an untrusted address with MaxConnsPerIP=1: status %d, want 429", s)
	}
}
