package server_test

// The admin listener (docs/operations.md#admin-and-metrics): /metrics, /limits and
// /debug/pprof/ on a real loopback listener, after real requests through
// real gateways.

import (
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/authgate/authgate/server"
)

// startAdmin serves g's admin handler on a loopback port and returns its
// base URL. At the end of the test it checks that Close stopped it.
func startAdmin(t *testing.T, g *server.Gateway) string {
	t.Helper()
	return startAdminOn(t, g, "127.0.0.1")
}

// startAdminOn is startAdmin on a port of the IP address ip.
func startAdminOn(t *testing.T, g *server.Gateway, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.ServeAdmin(ln) }()
	t.Cleanup(func() {
		g.Close()
		if err := recv(t, done, "ServeAdmin's return after Close"); err != nil {
			t.Errorf("ServeAdmin after Close: %v, want nil", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// scrape GETs admin's /metrics and returns its samples, "name{labels}" →
// value, failing on a malformed line or a series seen twice.
func scrape(t *testing.T, admin string) (map[string]string, string) {
	t.Helper()
	resp, body := do(t, "GET", admin+"/metrics", "", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	samples := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || !strings.HasPrefix(line, "authgate_") {
			t.Fatalf("malformed metrics line %q", line)
		}
		if _, err := strconv.ParseFloat(line[i+1:], 64); err != nil {
			t.Fatalf("metrics line %q: value: %v", line, err)
		}
		if _, dup := samples[line[:i]]; dup {
			t.Fatalf("series %s twice", line[:i])
		}
		samples[line[:i]] = line[i+1:]
	}
	return samples, body
}

// family returns the samples of the metric name (its series only).
func family(samples map[string]string, name string) map[string]string {
	out := map[string]string{}
	for k, v := range samples {
		if k == name || strings.HasPrefix(k, name+"{") {
			out[k] = v
		}
	}
	return out
}

// checkFamily fails unless name's series are exactly want.
func checkFamily(t *testing.T, samples map[string]string, name string, want map[string]string) {
	t.Helper()
	got := family(samples, name)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s %s", k, v)
		}
	}
}

// checkNoKeys fails if s shows any of keys.
func checkNoKeys(t *testing.T, what, s string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if strings.Contains(s, k) {
			t.Errorf("%s shows key %q", what, k)
		}
	}
}

const keyUnknown = "sk-unknown-0123456789abcdef"

func TestAdminMetrics(t *testing.T) {
	up := &seen{}
	upURL := startUpstream(t, up.handler(200, `{"ok":true}`))
	keys := defaultKeys(t) // alice (2 keys, rpm 100), bob (rpm 3), carol
	g1 := startGateway(t, server.Config{KeysFile: keys, Upstreams: []string{upURL}, MaxRequestBody: 1024})
	admin1 := startAdmin(t, g1.Gateway)
	// A second gateway in the same process, whose upstream is down.
	dead := deadURL(t)
	g2 := startGateway(t, server.Config{KeysFile: keys, Upstreams: []string{dead}})
	admin2 := startAdmin(t, g2.Gateway)

	req := func(g *gateway, authz, body string, want int) {
		t.Helper()
		if resp, b := do(t, "POST", g.url+"/v1/chat/completions", authz, body); resp.StatusCode != want {
			t.Fatalf("%q: %d %s, want %d", authz, resp.StatusCode, b, want)
		}
	}
	req(g1, "Bearer "+keyAlice, "{}", 200)
	req(g1, "Bearer "+keyAlice2, "{}", 200)
	for range 3 {
		req(g1, "Bearer "+keyBob, "{}", 200)
	}
	req(g1, "Bearer "+keyBob, "{}", 429)
	req(g1, "", "{}", 401)
	req(g1, "Bearer", "{}", 401)
	req(g1, "Bearer short", "{}", 401)
	req(g1, "Bearer "+keyUnknown, "{}", 401)
	req(g1, "Bearer "+keyUnknown, "{}", 401)
	req(g1, "Bearer "+keyAlice, strings.Repeat("x", 4096), 413)
	req(g2, "Bearer "+keyAlice, "{}", 502)
	const total1 = "12"

	// Access-log lines are written by the sink's goroutine: wait for them,
	// so that the scrape's figures are final.
	eventually(t, "12 access-log lines written", func() bool { return g1.AccessLogStats().Written == 12 })

	m1, body1 := scrape(t, admin1)
	checkFamily(t, m1, "authgate_requests_total", map[string]string{
		`authgate_requests_total{key_id="-",code="401"}`:     "5",
		`authgate_requests_total{key_id="-",code="413"}`:     "1",
		`authgate_requests_total{key_id="alice",code="200"}`: "2",
		`authgate_requests_total{key_id="bob",code="200"}`:   "3",
		`authgate_requests_total{key_id="bob",code="429"}`:   "1",
	})
	checkFamily(t, m1, "authgate_rate_limited_total", map[string]string{
		`authgate_rate_limited_total{key_id="bob"}`: "1",
	})
	checkFamily(t, m1, "authgate_unauthorized_total", map[string]string{
		`authgate_unauthorized_total{reason="missing"}`:    "1",
		`authgate_unauthorized_total{reason="empty"}`:      "1",
		`authgate_unauthorized_total{reason="bad_format"}`: "1",
		`authgate_unauthorized_total{reason="unknown"}`:    "2",
		`authgate_unauthorized_total{reason="expired"}`:    "0",
	})
	checkFamily(t, m1, "authgate_upstream_healthy", map[string]string{`authgate_upstream_healthy{upstream="` + upURL + `"}`: "1"})
	checkFamily(t, m1, "authgate_upstream_in_flight", map[string]string{`authgate_upstream_in_flight{upstream="` + upURL + `"}`: "0"})
	checkFamily(t, m1, "authgate_keys_loaded", map[string]string{"authgate_keys_loaded": "4"})
	checkFamily(t, m1, "authgate_key_ids_loaded", map[string]string{"authgate_key_ids_loaded": "3"})
	checkFamily(t, m1, "authgate_key_reloads_total", map[string]string{
		`authgate_key_reloads_total{result="ok"}`:    "0",
		`authgate_key_reloads_total{result="error"}`: "0",
	})
	checkFamily(t, m1, "authgate_access_log_lines_total", map[string]string{
		`authgate_access_log_lines_total{result="written"}`: "12",
		`authgate_access_log_lines_total{result="failed"}`:  "0",
	})
	checkFamily(t, m1, "authgate_access_log_waits_total", map[string]string{
		"authgate_access_log_waits_total": strconv.FormatUint(g1.AccessLogStats().Waited, 10),
	})
	for _, name := range []string{"authgate_access_log_write_errors_total", "authgate_access_log_pending_lines", "authgate_access_log_reopens_total"} {
		checkFamily(t, m1, name, map[string]string{name: "0"})
	}

	// The histogram: cumulative buckets ending at +Inf = _count = 12; all
	// these requests took well under 10 min.
	hist := family(m1, "authgate_request_duration_seconds_bucket")
	if len(hist) != 22 {
		t.Errorf("%d latency buckets, want 22 (21 bounds and +Inf): %v", len(hist), hist)
	}
	for _, le := range []string{"600", "+Inf"} {
		if v := m1[`authgate_request_duration_seconds_bucket{le="`+le+`"}`]; v != total1 {
			t.Errorf(`bucket le=%q = %q, want %s`, le, v, total1)
		}
	}
	if v := m1["authgate_request_duration_seconds_count"]; v != total1 {
		t.Errorf("authgate_request_duration_seconds_count = %q, want %s", v, total1)
	}
	if s, _ := strconv.ParseFloat(m1["authgate_request_duration_seconds_sum"], 64); s <= 0 {
		t.Errorf("authgate_request_duration_seconds_sum = %q, want > 0", m1["authgate_request_duration_seconds_sum"])
	}
	var prev float64
	for _, le := range []string{"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "25", "50", "100", "250", "600", "+Inf"} {
		v, err := strconv.ParseFloat(hist[`authgate_request_duration_seconds_bucket{le="`+le+`"}`], 64)
		if err != nil || v < prev {
			t.Errorf("bucket le=%q = %v (%v), below the previous bucket %v", le, v, err, prev)
		}
		prev = v
	}

	// The second gateway counted only its own request.
	eventually(t, "the dead upstream marked down", func() bool {
		m2, _ := scrape(t, admin2)
		return m2[`authgate_upstream_healthy{upstream="`+dead+`"}`] == "0"
	})
	m2, body2 := scrape(t, admin2)
	checkFamily(t, m2, "authgate_requests_total", map[string]string{
		`authgate_requests_total{key_id="alice",code="502"}`: "1",
	})
	checkFamily(t, m2, "authgate_rate_limited_total", nil)
	checkFamily(t, m2, "authgate_upstream_in_flight", map[string]string{`authgate_upstream_in_flight{upstream="` + dead + `"}`: "0"})
	if v := m2["authgate_request_duration_seconds_count"]; v != "1" {
		t.Errorf("second gateway: authgate_request_duration_seconds_count = %q, want 1", v)
	}
	if v := m2[`authgate_unauthorized_total{reason="unknown"}`]; v != "0" {
		t.Errorf("second gateway: unknown 401s = %q, want 0", v)
	}

	// Reloads by result: a good file, then a broken one (kept out).
	if err := g1.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := os.WriteFile(keys, []byte("not a key line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g1.Reload(); err == nil {
		t.Fatal("Reload of a file without a valid key succeeded")
	}
	m1, _ = scrape(t, admin1)
	checkFamily(t, m1, "authgate_key_reloads_total", map[string]string{
		`authgate_key_reloads_total{result="ok"}`:    "1",
		`authgate_key_reloads_total{result="error"}`: "1",
	})
	checkFamily(t, m1, "authgate_keys_loaded", map[string]string{"authgate_keys_loaded": "4"})

	for what, s := range map[string]string{"/metrics of gateway 1": body1, "/metrics of gateway 2": body2} {
		checkNoKeys(t, what, s, keyAlice, keyAlice2, keyBob, keyCarol, keyUnknown, "sk-")
	}
}

func TestAdminUpstreamInFlight(t *testing.T) {
	upURL, got, _ := hangingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: -1})
	admin := startAdmin(t, g.Gateway)
	done := postAsync(g.url + "/v1/chat/completions")
	awaitHeld(t, got, done)
	m, _ := scrape(t, admin)
	checkFamily(t, m, "authgate_upstream_in_flight", map[string]string{`authgate_upstream_in_flight{upstream="` + upURL + `"}`: "1"})
	// Nothing is counted before the request ends.
	checkFamily(t, m, "authgate_requests_total", nil)
}

func TestAdminLimits(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	admin := startAdmin(t, g.Gateway)

	get := func() string {
		t.Helper()
		resp, body := do(t, "GET", admin+"/limits", "", "")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /limits: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var v map[string]map[string]int
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("GET /limits: invalid JSON %q: %v", body, err)
		}
		checkNoKeys(t, "/limits", body, keyAlice, keyAlice2, keyBob, keyCarol, "sk-")
		return body
	}
	if b := get(); b != "{}\n" {
		t.Errorf("/limits before any request: %q, want {}", b)
	}
	for _, k := range []string{keyAlice, keyAlice2, keyBob, keyBob, keyBob, keyBob, keyUnknown} {
		do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+k, "{}")
	}
	// Sorted by key_id; bob's refused 4th request is not in his window;
	// carol, never used, has no limiter state.
	want := `{"alice":{"requests_last_minute":2,"rate_limit":100,"in_flight":0},"bob":{"requests_last_minute":3,"rate_limit":3,"in_flight":0}}` + "\n"
	if b := get(); b != want {
		t.Errorf("/limits:\n got %s\nwant %s", b, want)
	}
}

func TestAdminRoutes(t *testing.T) {
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{deadURL(t)}, HealthCheckInterval: -1})
	admin := startAdmin(t, g.Gateway)
	f := func(method, path string, wantStatus int, wantInBody string) {
		t.Helper()
		resp, body := do(t, method, admin+path, "", "")
		if resp.StatusCode != wantStatus || !strings.Contains(body, wantInBody) {
			t.Errorf("%s %s: %d %.200q, want %d containing %q", method, path, resp.StatusCode, body, wantStatus, wantInBody)
		}
	}
	f("GET", "/debug/pprof/", 200, "goroutine")
	f("GET", "/debug/pprof/goroutine?debug=1", 200, "goroutine profile")
	f("GET", "/debug/pprof", 200, "goroutine") // redirected to the index
	f("GET", "/nope", 404, "not found")
	f("GET", "/v1/chat/completions", 404, "not found")
	f("POST", "/metrics", 405, "method not allowed")
	f("DELETE", "/limits", 405, "method not allowed")
	// The public listener does not serve admin routes.
	resp, _ := do(t, "GET", g.url+"/metrics", "", "")
	if resp.StatusCode != 401 {
		t.Errorf("GET /metrics on the public listener: %d, want 401", resp.StatusCode)
	}
}

func TestServeAdminAfterClose(t *testing.T) {
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{deadURL(t)}, HealthCheckInterval: -1})
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.ServeAdmin(ln) }()
	if err := recv(t, done, "ServeAdmin's return"); err != nil {
		t.Errorf("ServeAdmin after Close: %v, want nil", err)
	}
	// Its listener is closed.
	if _, err := ln.Accept(); err == nil {
		t.Error("ServeAdmin after Close left its listener open")
	}
}

// TestAdminMetricsFamiliesContiguous checks that the exposition groups each
// family's series together, as Prometheus' parser requires.
func TestAdminMetricsFamiliesContiguous(t *testing.T) {
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))}})
	admin := startAdmin(t, g.Gateway)
	do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, "{}")
	do(t, "POST", g.url+"/v1/chat/completions", "", "{}")
	_, body := scrape(t, admin)
	var seenFamilies []string
	last := ""
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		name := line[:strings.IndexAny(line, "{ ")]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasPrefix(name, "authgate_request_duration_seconds") {
				name = strings.TrimSuffix(name, suffix)
			}
		}
		if name == last {
			continue
		}
		if slices.Contains(seenFamilies, name) {
			t.Errorf("family %s is split:\n%s", name, body)
		}
		seenFamilies = append(seenFamilies, name)
		last = name
	}
}

// TestAdminPseudoKeyIDs: requests without a checked key are counted under
// "auth-disabled" and "no-keys-configured", each gateway its own (the
// fail-open account was once shared by the whole process).
func TestAdminPseudoKeyIDs(t *testing.T) {
	up := &seen{}
	upURL := startUpstream(t, up.handler(200, "{}"))
	missing := filepath.Join(t.TempDir(), "missing.txt")
	open1 := startGateway(t, server.Config{KeysFile: missing, AllowNoKeys: true, Upstreams: []string{upURL}})
	open2 := startGateway(t, server.Config{KeysFile: missing, AllowNoKeys: true, Upstreams: []string{upURL}})
	disabled := startGateway(t, server.Config{DisableAuth: true, Upstreams: []string{upURL}})
	f := func(g *gateway, n int, keyID string) {
		t.Helper()
		admin := startAdmin(t, g.Gateway)
		for range n {
			if resp, _ := do(t, "GET", g.url+"/v1/models", "", ""); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		m, _ := scrape(t, admin)
		checkFamily(t, m, "authgate_requests_total", map[string]string{
			`authgate_requests_total{key_id="` + keyID + `",code="200"}`: strconv.Itoa(n),
		})
		checkFamily(t, m, "authgate_keys_loaded", map[string]string{"authgate_keys_loaded": "0"})
		if resp, body := do(t, "GET", admin+"/limits", "", ""); resp.StatusCode != 200 || body != "{}\n" {
			t.Errorf("/limits: %d %q, want {} (no key_id has limiter state)", resp.StatusCode, body)
		}
	}
	f(open1, 2, server.KeyIDNoKeysConfigured)
	f(open2, 3, server.KeyIDNoKeysConfigured)
	f(disabled, 1, server.KeyIDAuthDisabled)
}

// TestAdminUpstreamListedTwice: the same base URL twice in Upstreams is one
// series each, not a panic on a duplicate metric name.
func TestAdminUpstreamListedTwice(t *testing.T) {
	up := &seen{}
	upURL := startUpstream(t, up.handler(200, "{}"))
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL, upURL}})
	admin := startAdmin(t, g.Gateway)
	m, _ := scrape(t, admin)
	checkFamily(t, m, "authgate_upstream_healthy", map[string]string{`authgate_upstream_healthy{upstream="` + upURL + `"}`: "1"})
	checkFamily(t, m, "authgate_upstream_in_flight", map[string]string{`authgate_upstream_in_flight{upstream="` + upURL + `"}`: "0"})
}

// adminRaw sends method path with the header lines head (each ending in
// CRLF: Host, Authorization) on a new connection to the admin listener at
// base, and returns the response.
func adminRaw(t *testing.T, base, method, path, head string) secResponse {
	t.Helper()
	raw := method + " " + path + " HTTP/1.1\r\n" + head + "Connection: close\r\n\r\n"
	return secRoundTrip(t, strings.TrimPrefix(base, "http://"), method, raw, 1)[0]
}

// nonLoopbackIP returns an IP address of this machine's other than a
// loopback or link-local one, IPv4 if there is one, to listen on; it skips
// the test on a machine without any.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var v6 string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() || n.IP.IsUnspecified() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP.String()
		}
		if v6 == "" {
			v6 = n.IP.String()
		}
	}
	if v6 == "" {
		t.Skip("this machine has no IP address but loopback and link-local ones: no non-loopback listener to test")
	}
	return v6
}

// The paths a browser page must not read through DNS rebinding.
var adminPaths = []string{"/metrics", "/limits", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof"}

// TestAdminRefusesRebindingHost: a page in a browser reaches a loopback
// admin listener only through a DNS name rebound to 127.0.0.1, so every
// Host but localhost and an IP literal is refused 403, without the Host in
// the answer. Before, every Host was served (a page could read /metrics,
// /limits and pprof's heap and command line).
func TestAdminRefusesRebindingHost(t *testing.T) {
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{deadURL(t)}, HealthCheckInterval: -1})
	admin := startAdmin(t, g.Gateway)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(admin, "http://"))
	// want 400 means 400 (fasthttp's, for a Host it cannot parse) or 403.
	f := func(host string, want int) {
		t.Helper()
		for _, path := range adminPaths {
			resp := adminRaw(t, admin, "GET", path, "Host: "+host+"\r\n")
			w := want
			switch {
			case path == "/debug/pprof" && want == 200:
				w = 301 // to /debug/pprof/
			case want == 400 && resp.status == 403:
				w = 403
			}
			if resp.status != w {
				t.Errorf("GET %s, Host %q: %d, want %d\n%.300s", path, host, resp.status, w, resp.dump)
			}
			if w == 403 && (resp.body != "Host not allowed\n" || strings.Contains(resp.dump, "evil")) {
				t.Errorf("GET %s, Host %q: 403 with %q, want \"Host not allowed\" and no Host shown\n%s", path, host, resp.body, resp.dump)
			}
		}
	}
	// DNS names, and IPv4 addresses in forms other than dotted quads.
	for _, host := range []string{
		"evil.example:" + port,
		"evil.example",
		"EVIL.example:" + port,
		"localhost.evil.example:" + port,
		"127.0.0.1.evil.example:" + port,
		"localhost.:" + port,
		"sub.localhost:" + port,
		"127.1:" + port,
		"2130706433:" + port,
		"0x7f.0.0.1:" + port,
		"127.0.0.1;evil.example",
		"evil.example@127.0.0.1:" + port,
		"127.0.0.1:" + port + "@evil.example",
	} {
		f(host, 403)
	}
	// Malformed: refused by fasthttp or by the check.
	for _, host := range []string{
		"::1",
		"[::1",
		"[evil.example]:" + port,
		"[127.0.0.1]:" + port,
		"127.0.0.1:" + port + "x",
	} {
		f(host, 400)
	}
	// localhost and IP literals, with any port or none.
	for _, host := range []string{
		"127.0.0.1:" + port,
		"localhost:" + port,
		"LocalHost:" + port,
		"[::1]:" + port,
		"127.0.0.1",
		"localhost",
		"[::1]",
		"[::ffff:127.0.0.1]:" + port,
		"10.20.30.40:9090", // Prometheus scraping a pod by its IP
		"[2001:db8::7]:9090",
	} {
		f(host, 200)
	}
	// HTTP/1.0 without a Host, on a loopback connection.
	resp := secRoundTrip(t, strings.TrimPrefix(admin, "http://"), "GET", "GET /metrics HTTP/1.0\r\n\r\n", 1)[0]
	if resp.status != 200 {
		t.Errorf("HTTP/1.0 GET /metrics without Host on loopback: %d, want 200", resp.status)
	}
}

// TestAdminToken: with AdminToken set, every admin request needs
// "Authorization: Bearer <token>", whatever its Host; the token shows in
// no response and no log line.
func TestAdminToken(t *testing.T) {
	const token = "admin-token-0123456789abcdef"
	var logs syncBuffer
	g := startGateway(t, server.Config{
		KeysFile: defaultKeys(t), Upstreams: []string{deadURL(t)}, HealthCheckInterval: -1,
		AdminToken: token,
		Logger:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	admin := startAdmin(t, g.Gateway)
	hostPort := strings.TrimPrefix(admin, "http://")
	var dumps []string
	f := func(head string, want int) {
		t.Helper()
		for _, path := range adminPaths {
			resp := adminRaw(t, admin, "GET", path, head)
			dumps = append(dumps, resp.dump)
			w := want
			if path == "/debug/pprof" && want == 200 {
				w = 301
			}
			if resp.status != w {
				t.Errorf("GET %s with %q: %d, want %d\n%.300s", path, head, resp.status, w, resp.dump)
			}
			if w == 401 && !strings.Contains(resp.dump, "\r\nWww-Authenticate: Bearer\r\n") {
				t.Errorf("GET %s with %q: 401 without WWW-Authenticate: Bearer\n%s", path, head, resp.dump)
			}
		}
	}
	host := "Host: " + hostPort + "\r\n"
	authz := func(v string) string { return "Authorization: " + v + "\r\n" }
	f(host, 401)
	f(host+authz("Bearer"), 401)
	f(host+authz("Bearer admin-token-0123456789abcdeX"), 401) // same length
	f(host+authz("Bearer admin-token-0123456789abcde"), 401)  // a prefix
	f(host+authz("Bearer "+token+"0"), 401)
	f(host+authz(token), 401) // bare, without the scheme
	f(host+authz("Token "+token), 401)
	f(host+authz("Bearer"+token), 401)
	f(host+authz("Basic YWRtaW46YWRtaW4tdG9rZW4tMDEyMzQ1Njc4OWFiY2RlZg=="), 401) // admin:<token>
	f(host+"X-Admin-Token: "+token+"\r\n", 401)
	f("Host: evil.example\r\n", 401) // 401, not 403: no token at all
	// The token: any Host, any address.
	f(host+authz("Bearer "+token), 200)
	f(host+authz("bearer \t"+token+"  "), 200)
	f("Host: evil.example:9090\r\n"+authz("Bearer "+token), 200)
	f("Host: rebound.example\r\n"+authz("BEARER "+token), 200)
	resp := secRoundTrip(t, hostPort, "GET", "GET /metrics HTTP/1.0\r\n"+authz("Bearer "+token)+"\r\n", 1)[0]
	if resp.status != 200 {
		t.Errorf("HTTP/1.0 GET /metrics without Host, with the token: %d, want 200", resp.status)
	}
	resp = secRoundTrip(t, hostPort, "GET", "GET /metrics HTTP/1.0\r\n\r\n", 1)[0]
	if resp.status != 401 {
		t.Errorf("HTTP/1.0 GET /metrics without Host or token: %d, want 401", resp.status)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dumps {
		if strings.Contains(d, "admin-token-") {
			t.Errorf("a response shows the token:\n%s", d)
		}
	}
	if strings.Contains(logs.String(), "admin-token-") {
		t.Errorf("the gateway's log shows the token:\n%s", logs.String())
	}
}

// TestAdminPprofOnlyOnLoopback: without a token, pprof (which shows the
// command line and heap, and can slow the process) is served only on
// connections that arrived on a loopback address; on another address
// /debug/pprof/ answers 404 as if absent, while /metrics and /limits are
// served to IP-literal Hosts. With the token it is served there too.
func TestAdminPprofOnlyOnLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	f := func(admin, path, head string, want int) {
		t.Helper()
		resp := adminRaw(t, admin, "GET", path, head)
		if resp.status != want {
			t.Errorf("%s GET %s with %q: %d, want %d\n%.300s", admin, path, head, resp.status, want, resp.dump)
		}
		if want == 404 && resp.body != "not found\n" {
			t.Errorf("%s GET %s: 404 with %.100q, want the admin listener's own \"not found\"", admin, path, resp.body)
		}
	}

	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{deadURL(t)}, HealthCheckInterval: -1})
	public := startAdminOn(t, g.Gateway, ip)
	local := startAdmin(t, g.Gateway)
	for _, admin := range []string{public, local} {
		host := "Host: " + strings.TrimPrefix(admin, "http://") + "\r\n"
		f(admin, "/metrics", host, 200)
		f(admin, "/limits", host, 200)
	}
	host := "Host: " + strings.TrimPrefix(public, "http://") + "\r\n"
	for _, path := range []string{"/debug/pprof/", "/debug/pprof", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		f(public, path, host, 404)
		f(public, path, "Host: localhost\r\n", 404)
	}
	f(local, "/debug/pprof/", "Host: "+strings.TrimPrefix(local, "http://")+"\r\n", 200)
	f(local, "/debug/pprof/cmdline", "Host: localhost\r\n", 200)

	const token = "admin-token-0123456789abcdef"
	gt := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{deadURL(t)}, HealthCheckInterval: -1, AdminToken: token})
	public = startAdminOn(t, gt.Gateway, ip)
	host = "Host: " + strings.TrimPrefix(public, "http://") + "\r\n"
	f(public, "/debug/pprof/", host, 401)
	f(public, "/debug/pprof/", host+"Authorization: Bearer "+token+"\r\n", 200)
	f(public, "/debug/pprof/cmdline", host+"Authorization: Bearer "+token+"\r\n", 200)
	f(public, "/metrics", host+"Authorization: Bearer "+token+"\r\n", 200)
}

func TestCheckAdminToken(t *testing.T) {
	f := func(token string, ok bool) {
		t.Helper()
		err := server.CheckAdminToken(token)
		if (err == nil) != ok {
			t.Errorf("CheckAdminToken(%q) = %v, want ok=%v", token, err, ok)
		}
		if err != nil && token != "" && strings.Contains(err.Error(), token) {
			t.Errorf("CheckAdminToken(%q): error shows the token: %v", token, err)
		}
	}
	f("0123456789abcdef", true)
	f("ÄÖÜ-token-éèê-ßñ", true) // 16 characters, more bytes
	f("~!@#$%^&*()_+{}|:\"<>?", true)
	f("", false)
	f("0123456789abcde", false)
	f("ÄÖÜ-token-éèê-ß", false) // 15 characters in 20 bytes
	f("0123456789 abcdef", false)
	f("0123456789\tabcdef", false)
	f("0123456789abcdef\n", false)
	f("0123456789\x00abcdef", false)
	f("0123456789\x7fabcdef", false)
	f("0123456789\u00a0abcdef", false) // no-break space
	f("0123456789\xffabcdef", false)   // not UTF-8
	if _, err := server.New(server.Config{DisableAuth: true, AdminToken: "short"}); err == nil || strings.Contains(err.Error(), "short") {
		t.Errorf("New with a 5-character AdminToken: %v, want an error not showing it", err)
	}
}
