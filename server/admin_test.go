package server_test

// The admin listener (shared/SPEC.md section 6): /metrics, /limits and
// /debug/pprof/ on a real loopback listener, after real requests through
// real gateways.

import (
	"encoding/json"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
	want := `{"alice":{"requests_last_minute":2,"rate_limit":100},"bob":{"requests_last_minute":3,"rate_limit":3}}` + "\n"
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
