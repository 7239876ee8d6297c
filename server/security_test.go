package server_test

// Security properties of the gateway as a client sees it (SECURITY.md):
// no route to the upstream without a key, whatever the method or the
// spelling of the request target; no key in any log, metric, response or
// panic message; keys held and looked up only as SHA-256 digests.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/server"
)

// secretKey returns a new random key: prefix and 40 hex digits, so that any
// 16 characters of it found somewhere come from it.
func secretKey(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// secAssertNoKey fails the test if text holds any 16 consecutive characters of
// any of keys (which are 40 random hex digits after their prefix).
func secAssertNoKey(t *testing.T, where, text string, keys ...string) {
	t.Helper()
	for _, key := range keys {
		for i := 0; i+16 <= len(key); i++ {
			if w := key[i : i+16]; strings.Contains(text, w) {
				j := strings.Index(text, w)
				t.Errorf("%s shows key %q (its characters %d to %d) at %d: …%s…", where, key, i, i+16, j, text[max(0, j-80):min(len(text), j+96)])
				break
			}
		}
	}
}

// secUpstream is a net/http upstream that records the raw request
// line and headers of everything it receives (net/http frames bodies
// strictly, so a request smuggled through the gateway would show as a
// request of its own here).
type secUpstream struct {
	url  string
	mu   sync.Mutex
	reqs []string
}

func startSecUpstream(t *testing.T) *secUpstream {
	t.Helper()
	u := &secUpstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, _ := httputil.DumpRequest(r, true)
		u.mu.Lock()
		u.reqs = append(u.reqs, string(dump))
		u.mu.Unlock()
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"upstream":true}`)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

func (u *secUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.reqs...)
}

// secResponse is one response read off a raw connection.
type secResponse struct {
	status int
	dump   string // status line, headers and body as received (re-serialised)
	body   string
}

// secRoundTrip sends raw on a new connection to addr and reads responses
// until the gateway closes the connection or want responses have come
// (0: until it closes). method is that of the first request, for HEAD's
// bodiless response. It gives up after a generous deadline.
func secRoundTrip(t *testing.T, addr, method, raw string, want int) []secResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write %q: %v", raw, err)
	}
	var out []secResponse
	br := bufio.NewReader(conn)
	for want == 0 || len(out) < want {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			if len(out) == 0 {
				t.Fatalf("request %.200q: no response: %v", raw, err)
			}
			break
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		dump, _ := httputil.DumpResponse(resp, false)
		out = append(out, secResponse{status: resp.StatusCode, dump: string(dump) + string(body), body: string(body)})
		if resp.Close {
			break
		}
	}
	return out
}

func TestSecurityBypassWithoutKey(t *testing.T) {
	// Every method and every odd spelling of a request target, without a
	// key or with a wrong one: nothing reaches the upstream, and the
	// client gets 401 (or 400, 414, 431 for what cannot be parsed), except
	// the probes themselves, which the gateway answers.
	up := startSecUpstream(t)
	g := startGateway(t, server.Config{
		KeysFile:            defaultKeys(t),
		Upstreams:           []string{up.url},
		HealthCheckInterval: -1, // so that the upstream sees only requests
	})
	addr := strings.TrimPrefix(g.url, "http://")

	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "get", "BREW"}
	targets := []string{
		"/v1/chat/completions",
		"//v1/chat/completions",
		"/v1/../v1/models",
		"/v1/./models",
		"/%2e%2e/admin",
		"/%2E%2E/%2E%2E/v1/models",
		"/v1%2Fmodels",
		"/v1%2fmodels",
		"/healthz/../v1/models",
		"/healthz/%2e%2e/v1/models",
		"/readyz/../v1/models",
		"/readyz?x",
		"/healthz?",
		"/healthz/",
		"//healthz",
		"/HEALTHZ",
		"/healthz%00",
		"/healthz;/../v1/models",
		"/v1/models#fragment",
		"/v1/models%",
		"http://upstream.test/v1/models",
		"http://127.0.0.1/healthz/../v1/models",
		"HTTP://upstream.test//v1/models",
		"upstream.test:443",
		"*",
		"v1/models",
		"/" + strings.Repeat("a", 8000),
		"/" + strings.Repeat("v1/", 2000) + "models",
	}
	auths := []string{
		"",
		"Authorization: Bearer sk-wrong-0123456789abcdef\r\n",
		"Authorization: Bearer \r\n",
		"Authorization: Basic YWxpY2U6c2stYWxpY2UtMDEyMzQ1Njc4OWFiY2RlZg==\r\n", // alice:<her key>, not a Bearer key
		"X-Api-Key: " + keyAlice + "\r\napi-key: " + keyAlice + "\r\n",          // a valid key, in headers that are not Authorization
		"Proxy-Authorization: Bearer " + keyAlice + "\r\n",
	}
	probe := map[string]bool{"ok": true}
	n := 0
	for _, method := range methods {
		for _, target := range targets {
			for _, authz := range auths {
				raw := method + " " + target + " HTTP/1.1\r\nHost: gateway.test\r\n" + authz + "Content-Length: 0\r\n\r\n"
				resp := secRoundTrip(t, addr, method, raw, 1)[0]
				n++
				switch {
				case strings.Contains(resp.dump, "X-Upstream"):
					t.Fatalf("%s %.80s with %q reached the upstream: %d", method, target, authz, resp.status)
				case resp.status == 401 && (strings.Contains(resp.body, `"code":"invalid_api_key"`) || method == "HEAD" && resp.body == ""):
				case resp.status == 400 || resp.status == 414 || resp.status == 431:
				case resp.status == 200 && probe[resp.body] && (method == "GET" || method == "HEAD"):
					// A probe answered by the gateway, not the upstream.
				default:
					t.Fatalf("%s %.80s with %q: %d\n%s", method, target, authz, resp.status, resp.dump)
				}
			}
		}
	}
	// HTTP/1.0 and a request with no version at all (HTTP/0.9).
	for _, raw := range []string{
		"GET /v1/models HTTP/1.0\r\n\r\n",
		"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
		"GET /v1/models\r\n\r\n",
	} {
		for _, resp := range secRoundTrip(t, addr, "GET", raw, 0) {
			if resp.status != 401 && resp.status != 400 {
				t.Fatalf("%q: %d\n%s", raw, resp.status, resp.dump)
			}
			n++
		}
	}
	if reqs := up.requests(); len(reqs) != 0 {
		t.Fatalf("%d of %d requests without a valid key reached the upstream; the first:\n%s", len(reqs), n, reqs[0])
	}
	t.Logf("%d requests without a valid key, none reached the upstream", n)
}

func TestSecurityBypassSmuggling(t *testing.T) {
	// A request with a valid key carrying, by ambiguous framing, a second
	// request without one: the gateway frames each request once, checks
	// every request it parses, and forwards bodies re-framed, so the
	// upstream never receives the inner request as a request.
	up := startSecUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{up.url}, HealthCheckInterval: -1})
	addr := strings.TrimPrefix(g.url, "http://")

	inner := "GET /v1/smuggled HTTP/1.1\r\nHost: gateway.test\r\n\r\n"
	key := "Authorization: Bearer " + keyAlice + "\r\n"
	// Each payload ends with a last request with the key that closes the
	// connection: once it is answered (or the gateway closed the
	// connection earlier), every request the payload holds was handled.
	last := "GET /v1/last HTTP/1.1\r\nHost: gateway.test\r\n" + key + "Connection: close\r\n\r\n"
	payloads := map[string]string{
		"CL.TE": "POST /v1/outer HTTP/1.1\r\nHost: gateway.test\r\n" + key +
			"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + inner,
		"TE.CL": "POST /v1/outer HTTP/1.1\r\nHost: gateway.test\r\n" + key +
			"Transfer-Encoding: chunked\r\nContent-Length: " + fmt.Sprint(len("0\r\n\r\n")+len(inner)) + "\r\n\r\n0\r\n\r\n" + inner,
		"TE obfuscated": "POST /v1/outer HTTP/1.1\r\nHost: gateway.test\r\n" + key +
			"Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + inner,
		"TE list": "POST /v1/outer HTTP/1.1\r\nHost: gateway.test\r\n" + key +
			"Content-Length: 5\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n" + inner,
		"two CL": "POST /v1/outer HTTP/1.1\r\nHost: gateway.test\r\n" + key +
			"Content-Length: 0\r\nContent-Length: " + fmt.Sprint(len(inner)) + "\r\n\r\n" + inner,
		"GET with body": "GET /v1/outer HTTP/1.1\r\nHost: gateway.test\r\n" + key +
			"Content-Length: " + fmt.Sprint(len(inner)) + "\r\n\r\n" + inner,
		"chunk size overflow": "POST /v1/outer HTTP/1.1\r\nHost: gateway.test\r\n" + key +
			"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff1\r\nx\r\n0\r\n\r\n" + inner,
		"LF only": "POST /v1/outer HTTP/1.1\nHost: gateway.test\n" + strings.TrimSuffix(key, "\r\n") + "\n" +
			"Content-Length: 0\n\n" + inner,
	}
	for name, payload := range payloads {
		for _, resp := range secRoundTrip(t, addr, "POST", payload+last, 0) {
			if strings.Contains(resp.body, "smuggled") {
				t.Errorf("%s: response %q", name, resp.dump)
			}
		}
	}
	for _, r := range up.requests() {
		line, _, _ := strings.Cut(r, "\r\n")
		if strings.Contains(line, "smuggled") {
			t.Errorf("a smuggled request reached the upstream:\n%s", r)
		}
		if strings.Contains(r, keyAlice) {
			t.Errorf("the client's key reached the upstream:\n%s", r)
		}
	}
}

func TestSecurityNoKeyLeak(t *testing.T) {
	// Keys, right and wrong, sent in every way and in requests that end in
	// 200, 401, 413, 429, 431, 400 and 502: none appears in the access
	// log, the gateway's log, /metrics, /limits, any response, or what
	// the upstream receives; UPSTREAM_API_KEY reaches the upstream only.
	alice, bob, carol := secretKey(t, "sk-alice-"), secretKey(t, "sk-bob-"), secretKey(t, "sk-carol-")
	wrong := []byte(alice) // alice's key but its last character
	wrong[len(wrong)-1] ^= 1
	stranger := secretKey(t, "sk-stranger-")
	upstreamKey := secretKey(t, "sk-upstream-")
	// Lines that are skipped, each with a key in it: their warnings name
	// the line and why, never the key.
	bad1, bad2, bad3, bad4 := secretKey(t, "sk-bad1-"), secretKey(t, "sk-bad2-"), secretKey(t, "sk-bad3-"), secretKey(t, "sk-bad4-")
	keysPath := keysFile(t, "alice:"+alice+"\n"+
		"bob:"+bob+"  rpm=1\n"+
		"carol:"+auth.HashedKey([]byte(carol))+"\n"+
		"dave:"+bad1+"!\n"+ // a character outside the key alphabet
		"erin:"+bad2+" "+bad3+"\n"+ // a second key, taken for a setting
		"frank:"+alice+"\n"+ // alice's key again
		"gina:"+bad4+" rpm=x\n"+
		bad1+"\n") // no key_id
	allKeys := []string{alice, bob, carol, string(wrong), stranger, bad1, bad2, bad3, bad4}

	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	up := startSecUpstream(t)
	cfg := server.Config{
		KeysFile:            keysPath,
		Upstreams:           []string{up.url},
		UpstreamAPIKey:      upstreamKey,
		HealthCheckInterval: -1,
		MaxRequestBody:      1024,
		AccessLogFormat:     logsink.FormatJSON,
		Logger:              logger,
	}
	g := startGateway(t, cfg)
	// A second gateway whose upstream is gone: 502s.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	cfg.Upstreams = []string{deadURL}
	cfg.AccessLog = ""
	g502 := startGateway(t, cfg)

	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.ServeAdmin(adminLn)

	var responses []string
	send := func(gw *gateway, method, raw string, want ...int) {
		t.Helper()
		for i, resp := range secRoundTrip(t, strings.TrimPrefix(gw.url, "http://"), method, raw, 0) {
			if i == 0 && len(want) > 0 && !secHasStatus(want, resp.status) {
				t.Errorf("%.120q: status %d, want one of %v\n%s", raw, resp.status, want, resp.dump)
			}
			responses = append(responses, resp.dump)
		}
	}
	req := func(method, path, authz, extra, body string) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: gateway.test\r\n%s%sContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			method, path, authz, extra, len(body), body)
	}
	bearer := func(key string) string { return "Authorization: Bearer " + key + "\r\n" }
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

	send(g, "POST", req("POST", "/v1/chat/completions", bearer(alice), "", chat), 200)
	send(g, "POST", req("POST", "/v1/chat/completions", "Authorization: "+alice+"\r\n", "", chat), 200) // the bare key
	send(g, "POST", req("POST", "/v1/chat/completions", bearer(carol), "", chat), 200)
	send(g, "GET", req("GET", "/v1/models", bearer(string(wrong)), "", ""), 401)
	send(g, "GET", req("GET", "/v1/models", bearer(stranger), "", ""), 401)
	send(g, "GET", req("GET", "/v1/models", bearer(bad2), "", ""), 401) // a skipped line's key
	send(g, "GET", req("GET", "/v1/models?api_key="+stranger, bearer(stranger), "", ""), 401)
	send(g, "GET", req("GET", "/v1/models", bearer(stranger+"."), "", ""), 401) // bad format
	send(g, "HEAD", req("HEAD", "/v1/models", bearer(alice), "", ""), 200)
	send(g, "OPTIONS", req("OPTIONS", "/v1/models", bearer(string(wrong)), "", ""), 401)
	send(g, "POST", req("POST", "/v1/chat/completions", bearer(bob), "", chat), 200)
	send(g, "POST", req("POST", "/v1/chat/completions", bearer(bob), "", chat), 429)
	send(g, "POST", req("POST", "/v1/chat/completions", bearer(alice), "", strings.Repeat("x", 4096)), 413)
	send(g, "POST", req("POST", "/v1/chat/completions", bearer(alice), "Expect: 100-continue\r\n", strings.Repeat("x", 4096)), 413, 100)
	send(g, "GET", req("GET", "/v1/models", bearer(alice), "X-Pad: "+strings.Repeat("p", 20<<10)+"\r\n", ""), 431, 400)
	send(g, "GET", "GET /v1/models HTTP/1.1\r\nHost: gateway.test\r\n"+bearer(alice)+"Bad header line\r\n\r\n", 400)
	send(g, "GET", "GET /v1/models HTTP/1.1\r\nHost: gateway.test\r\n"+bearer(string(wrong))+"Content-Length: x\r\n\r\n", 400)
	send(g502, "POST", req("POST", "/v1/chat/completions", bearer(alice), "", chat), 502)

	// Reload: a keys file with a bad line only keeps the old set; the
	// warnings and the error name no key.
	if err := os.WriteFile(keysPath, []byte("zed:"+bad1+"!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err == nil {
		t.Error("Reload of a file with no valid key succeeded")
	} else {
		secAssertNoKey(t, "Reload's error", err.Error(), allKeys...)
	}

	get := func(path string) string {
		t.Helper()
		resp, body := do(t, "GET", "http://"+adminLn.Addr().String()+path, "", "")
		if resp.StatusCode != 200 {
			t.Fatalf("admin %s: %d", path, resp.StatusCode)
		}
		dump, _ := httputil.DumpResponse(resp, false)
		return string(dump) + body
	}
	metrics, limits := get("/metrics"), get("/limits")
	if !strings.Contains(metrics, `key_id="alice"`) || !strings.Contains(limits, `"bob"`) {
		t.Fatalf("admin shows no key_id; metrics:\n%s\nlimits:\n%s", metrics, limits)
	}
	accessLog := strings.Join(g.logLines(t), "\n")
	g502.Close()
	if !strings.Contains(accessLog, `"status":429`) || !strings.Contains(accessLog, `"status":413`) {
		t.Fatalf("access log lacks the 429 and 413 lines:\n%s", accessLog)
	}

	secAssertNoKey(t, "the access log", accessLog, append(allKeys, upstreamKey)...)
	secAssertNoKey(t, "the gateway's log", logs.String(), append(allKeys, upstreamKey)...)
	secAssertNoKey(t, "/metrics", metrics, append(allKeys, upstreamKey)...)
	secAssertNoKey(t, "/limits", limits, append(allKeys, upstreamKey)...)
	for _, r := range responses {
		secAssertNoKey(t, "a response", r, append(allKeys, upstreamKey)...)
	}
	reqs := up.requests()
	if len(reqs) != 5 { // alice's POST twice, carol's, alice's HEAD, bob's first
		t.Errorf("the upstream received %d requests, want 5", len(reqs))
	}
	for _, r := range reqs {
		secAssertNoKey(t, "a request to the upstream", r, allKeys...)
		if !strings.Contains(r, "Authorization: Bearer "+upstreamKey) {
			t.Errorf("a request to the upstream without UPSTREAM_API_KEY:\n%s", r)
		}
	}
	// The five bad lines were reported (so the check above looked at
	// warnings that exist).
	if n := strings.Count(logs.String(), "line skipped"); n < 5 {
		t.Errorf("the gateway logged %d skipped lines, want at least 5:\n%s", n, logs.String())
	}
}

func secHasStatus(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestSecurityPanicShowsNoKey(t *testing.T) {
	// A handler wrapped by the gateway panics while serving a request with
	// a key: neither the panic value nor the stack shows the key.
	// fasthttp does not recover panics (one takes the process down), so
	// Wrap's handler is called directly and the panic recovered here;
	// net/http recovers and logs them, so WrapHTTP runs in a real server
	// whose ErrorLog is read.
	alice := secretKey(t, "sk-alice-")
	e, ok, err := auth.ParseLine([]byte("alice:"+alice), 1)
	if !ok || err != nil {
		t.Fatal(err)
	}
	keys, _ := auth.NewKeySet([]auth.Entry{e})
	var logs syncBuffer
	g, err := server.New(server.Config{
		Keys:      keys,
		AccessLog: filepath.Join(t.TempDir(), "access.log"),
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })

	h := g.Wrap(func(ctx *fasthttp.RequestCtx) {
		panic(fmt.Sprintf("handler failed for key_id %s, Authorization %d bytes", server.KeyID(ctx), len(ctx.Request.Header.Peek("Authorization"))))
	})
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/chat/completions")
	req.Header.Set("Authorization", "Bearer "+alice)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	var value any
	var stack []byte
	func() {
		defer func() {
			value = recover()
			stack = debug.Stack()
		}()
		h(&ctx)
	}()
	if value == nil || !strings.Contains(fmt.Sprint(value), "key_id alice") {
		t.Fatalf("recovered %v, want the handler's panic", value)
	}
	secAssertNoKey(t, "the panic value", fmt.Sprint(value), alice)
	secAssertNoKey(t, "the panic's stack", string(stack), alice)

	var errorLog syncBuffer
	srv := httptest.NewUnstartedServer(g.WrapHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("handler failed for key_id " + server.KeyIDFromContext(r.Context()))
	})))
	srv.Config.ErrorLog = log.New(&errorLog, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	r, err := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+alice)
	if resp, err := client.Do(r); err == nil {
		resp.Body.Close()
		t.Fatalf("a panicking handler answered %d", resp.StatusCode)
	}
	srv.Close() // waits for the handler, so the panic is logged
	if !strings.Contains(errorLog.String(), "panic serving") || !strings.Contains(errorLog.String(), "key_id alice") {
		t.Fatalf("net/http logged no panic:\n%s", errorLog.String())
	}
	secAssertNoKey(t, "net/http's panic log", errorLog.String(), alice)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	secAssertNoKey(t, "the gateway's log", logs.String(), alice)
}

func TestSecurityKeysHeldAsDigests(t *testing.T) {
	// A parsed entry and a key set hold a key's SHA-256 digest, never the
	// key; a lookup hashes the presented key and finds the digest, so keys
	// sharing any number of leading characters with a real one are
	// compared as unrelated digests (BenchmarkSecurityWrongKeyPrefix
	// measures that the time does not grow with the shared prefix).
	key := secretKey(t, "sk-")
	e, ok, err := auth.ParseLine([]byte("alice:"+key+" rpm=7"), 1)
	if !ok || err != nil {
		t.Fatal(err)
	}
	if e.Digest != sha256.Sum256([]byte(key)) {
		t.Fatal("the entry does not hold the key's SHA-256 digest")
	}
	secAssertNoKey(t, "a parsed entry", fmt.Sprintf("%#v", e), key)
	ks, warns := auth.NewKeySet([]auth.Entry{e})
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	secAssertNoKey(t, "a key set", fmt.Sprintf("%#v", *ks), key)
	d := sha256.Sum256([]byte(key))
	if id := ks.LookupDigest(&d); id == nil || id.KeyID != "alice" || ks.Lookup([]byte(key)) != id {
		t.Fatal("the key is not found by its digest")
	}
	for n := 0; n < len(key); n++ {
		wrong := []byte(key)
		wrong[n] ^= 1 // same length, the first n characters shared
		if id := ks.Lookup(wrong); id != nil {
			t.Fatalf("a key sharing %d leading characters is accepted", n)
		}
		if id := ks.Lookup([]byte(key[:n])); id != nil {
			t.Fatalf("the key's first %d characters are accepted", n)
		}
	}
}

func TestSecurityNoKeyInErrorLog(t *testing.T) {
	// Requests fasthttp cannot parse, each with a key where the parse
	// error would quote it: the client gets its 400, and the gateway's
	// log says what kind of failure it was, never the bytes. Each case
	// has a gateway of its own, since the log is throttled to one such
	// line per 5 s.
	key := secretKey(t, "sk-leak-")
	up := startSecUpstream(t)
	cases := map[string]string{
		"CR":             "GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer " + key + "\r\r\n\r\n",
		"NUL":            "GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer " + key + "\x00\r\n\r\n",
		"SOH":            "GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer " + key + "\x01\r\n\r\n",
		"DEL":            "GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer " + key + "\x7f\r\n\r\n",
		"no colon":       "GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization Bearer " + key + "\r\n\r\n",
		"request line":   "GET /v1/models?key=" + key + " HTTP/1.1 x\r\nHost: g\r\n\r\n",
		"key in version": "GET /v1/models " + key + "\r\nHost: g\r\n\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			var logs syncBuffer
			g := startGateway(t, server.Config{
				Keys:                keySet(t, "alice:"+key),
				Upstreams:           []string{up.url},
				HealthCheckInterval: -1,
				AccessLogFormat:     logsink.FormatJSON,
				Logger:              slog.New(slog.NewTextHandler(&logs, nil)),
			})
			resp := secRoundTrip(t, strings.TrimPrefix(g.url, "http://"), "GET", raw, 1)
			if resp[0].status != 400 {
				t.Errorf("status %d, want 400", resp[0].status)
			}
			eventually(t, "fasthttp's warning", func() bool { return strings.Contains(logs.String(), "fasthttp:") })
			secAssertNoKey(t, "the gateway's log", logs.String(), key)
			secAssertNoKey(t, "the response", resp[0].dump, key)
			secAssertNoKey(t, "the access log", strings.Join(g.logLines(t), "\n"), key)
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("the upstream received %d requests, want none", n)
	}
}

func TestSecurityNoUpstreamBytesInLog(t *testing.T) {
	// An upstream whose response head cannot be parsed, with a secret in
	// it (an upstream that echoes the request's UPSTREAM_API_KEY back in
	// a malformed header, say): the client gets 502, and neither the
	// request's error line nor the health check's names the secret.
	upstreamKey := secretKey(t, "sk-upstream-")
	secret := secretKey(t, "sk-echoed-")
	url := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Echo: %s %s\x01\r\nContent-Length: 2\r\n\r\n{}", upstreamKey, secret)
		}
	})
	key := secretKey(t, "sk-alice-")
	start := func(interval time.Duration) (*gateway, *syncBuffer) {
		var logs syncBuffer
		return startGateway(t, server.Config{
			Keys:                keySet(t, "alice:"+key),
			Upstreams:           []string{url},
			UpstreamAPIKey:      upstreamKey,
			HealthCheckInterval: interval,
			Logger:              slog.New(slog.NewTextHandler(&logs, nil)),
		}), &logs
	}
	g, logs := start(-1)
	resp, body := do(t, "GET", g.url+"/v1/models", "Bearer "+key, "")
	if resp.StatusCode != 502 {
		t.Errorf("status %d, want 502: %s", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "upstream request failed") {
		t.Fatalf("no error line for the request:\n%s", logs.String())
	}
	secAssertNoKey(t, "the gateway's log", logs.String(), upstreamKey, secret, key)
	secAssertNoKey(t, "the response", body, upstreamKey, secret, key)

	_, logs = start(20 * time.Millisecond)
	eventually(t, "the health check's warning", func() bool { return strings.Contains(logs.String(), "upstream is down") })
	secAssertNoKey(t, "the health check's log", logs.String(), upstreamKey, secret)
}

func TestSecurityMethodsNotProxied(t *testing.T) {
	// TRACE would have the upstream echo the request it received,
	// UPSTREAM_API_KEY included; CONNECT would ask for a tunnel. Neither,
	// nor an extension method, reaches the upstream: the gateway answers
	// 405 with Allow. The methods an API uses are proxied.
	upstreamKey := secretKey(t, "sk-upstream-")
	up := startSecUpstream(t)
	g := startGateway(t, server.Config{
		Keys:                keySet(t, "alice:"+secKey),
		Upstreams:           []string{up.url},
		UpstreamAPIKey:      upstreamKey,
		HealthCheckInterval: -1,
	})
	addr := strings.TrimPrefix(g.url, "http://")
	for _, target := range []string{"TRACE /v1/models", "CONNECT upstream.test:443", "CONNECT /v1/models", "PROPFIND /v1/models", "trace /v1/models"} {
		method := strings.Fields(target)[0]
		resp := secRoundTrip(t, addr, method, target+" HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer "+secKey+"\r\nContent-Length: 0\r\n\r\n", 1)[0]
		if resp.status != 405 || !strings.Contains(resp.dump, "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS") ||
			!strings.Contains(resp.body, `"code":"method_not_allowed"`) {
			t.Errorf("%s: want 405 with Allow and method_not_allowed, got\n%s", target, resp.dump)
		}
		secAssertNoKey(t, target+"'s response", resp.dump, upstreamKey)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the upstream received %d requests, want none:\n%s", n, up.requests())
	}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		resp := secRoundTrip(t, addr, m, m+" /v1/x HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer "+secKey+"\r\nContent-Length: 0\r\n\r\n", 1)[0]
		if resp.status != 200 {
			t.Errorf("%s: status %d, want 200 (proxied)", m, resp.status)
		}
	}
	if n := len(up.requests()); n != 7 {
		t.Errorf("the upstream received %d requests, want 7", n)
	}
}

func TestSecurityTargetForms(t *testing.T) {
	// With a path prefix, the upstream gets the prefix and an origin-form
	// path, whatever form the client used, and the access log shows that
	// path (without the prefix, which is the upstream's); a target that
	// is not a path, or a path with a dot segment that could climb out of
	// the prefix, answers 400 and reaches no upstream.
	up := startSecUpstream(t)
	g := startGateway(t, server.Config{
		Keys:                keySet(t, "alice:"+secKey),
		Upstreams:           []string{up.url + "/base"},
		HealthCheckInterval: -1,
	})
	addr := strings.TrimPrefix(g.url, "http://")
	send := func(method, target string) secResponse {
		t.Helper()
		return secRoundTrip(t, addr, method, method+" "+target+" HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer "+secKey+"\r\n\r\n", 1)[0]
	}
	var logged []string
	// f sends target; upstream is what the upstream must get, "" if it
	// must get nothing; the log shows what went upstream without the
	// prefix and the query (or the reduced target refused, logPath).
	f := func(method, target, upstream string, logPath ...string) {
		t.Helper()
		before := len(up.requests())
		resp := send(method, target)
		reqs := up.requests()
		if upstream == "" {
			logged = append(logged, method+" "+logEscape.Replace(append(logPath, target)[0])+" | 400")
			if resp.status != 400 || !strings.Contains(resp.body, `"code":"invalid_request_target"`) {
				t.Errorf("%s %s: want 400 invalid_request_target, got\n%s", method, target, resp.dump)
			}
			if len(reqs) != before {
				t.Errorf("%s %s reached the upstream:\n%s", method, target, reqs[len(reqs)-1])
			}
			return
		}
		path, _, _ := strings.Cut(strings.TrimPrefix(upstream, "/base"), "?")
		logged = append(logged, method+" "+path+" | 200")
		if resp.status != 200 || len(reqs) != before+1 {
			t.Fatalf("%s %s: status %d, upstream requests %d, want 200 and one", method, target, resp.status, len(reqs)-before)
		}
		if line, _, _ := strings.Cut(reqs[len(reqs)-1], "\r\n"); line != method+" "+upstream+" HTTP/1.1" {
			t.Errorf("%s %s reached the upstream as %q, want %q", method, target, line, method+" "+upstream+" HTTP/1.1")
		}
	}
	f("GET", "/v1/models", "/base/v1/models")
	f("GET", "http://x/v1/models", "/base/v1/models")
	f("GET", "HTTPS://x:443/v1/models?a=1", "/base/v1/models?a=1")
	f("GET", "http://x", "/base/")
	f("GET", "http://x?a=b", "/base/?a=b")
	f("GET", "/v1/models/Qwen2.5-7B", "/base/v1/models/Qwen2.5-7B")
	f("GET", "/v1/.../x", "/base/v1/.../x")
	f("GET", "/v1/models?path=/../x", "/base/v1/models?path=/../x")
	f("OPTIONS", "*", "")
	f("GET", "ftp://x/v1/models", "")
	f("GET", "/base/../admin", "")
	f("GET", "/..", "")
	f("GET", "/v1/./models", "")
	f("GET", "/v1/%2e%2E/admin", "")
	f("GET", "/v1/.%2e/admin", "")
	f("GET", "/v1/..%2fadmin", "")
	f("GET", "/v1/..%5Cadmin", "")
	f("GET", `/v1/..\admin`, "")
	f("GET", "http://x/../admin", "", "/../admin")
	lines := g.logLines(t)
	if len(lines) != len(logged) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(logged), strings.Join(lines, "\n"))
	}
	for i, want := range logged {
		if !strings.HasSuffix(lines[i], " | alice | "+want) {
			t.Errorf("log line %d is %q, want it to end in %q", i, lines[i], " | alice | "+want)
		}
	}
}

func TestSecurityConnectionHeader(t *testing.T) {
	// The Connection header is the client's to name hop-by-hop headers
	// with, but not X-Request-Id, which the gateway sets, nor
	// Content-Length, the body's framing (400, not an upstream error).
	// The upstream always gets exactly the request id the client is told.
	var logs syncBuffer
	up := startSecUpstream(t)
	g := startGateway(t, server.Config{
		Keys:                keySet(t, "alice:"+secKey),
		Upstreams:           []string{up.url},
		HealthCheckInterval: -1,
		Logger:              slog.New(slog.NewTextHandler(&logs, nil)),
	})
	addr := strings.TrimPrefix(g.url, "http://")
	head := "POST /v1/x HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer " + secKey + "\r\nContent-Length: 2\r\n"
	check := func(name, extra, wantID string) {
		t.Helper()
		before := len(up.requests())
		resp := secRoundTrip(t, addr, "POST", head+extra+"\r\n{}", 1)[0]
		reqs := up.requests()
		if resp.status != 200 || len(reqs) != before+1 {
			t.Fatalf("%s: status %d, upstream requests %d", name, resp.status, len(reqs)-before)
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(reqs[len(reqs)-1])))
		if err != nil {
			t.Fatal(err)
		}
		got, sent := r.Header.Values("X-Request-Id"), regexpHeader(resp.dump, "X-Request-Id")
		if len(got) != 1 || got[0] != sent || (wantID != "" && sent != wantID) {
			t.Errorf("%s: the upstream got X-Request-Id %q, the client was told %q (want %q)", name, got, sent, wantID)
		}
	}
	check("Connection names it", "Connection: X-Request-Id\r\nX-Request-Id: client-id-1\r\n", "client-id-1")
	check("Connection names it, no id sent", "Connection: keep-alive, x-request-id\r\n", "")
	check("two ids", "X-Request-Id: client-id-2\r\nX-Request-Id: other-id\r\n", "client-id-2")
	check("two ids, one invalid", "X-Request-Id: bad id\r\nX-Request-Id: other-id\r\n", "")

	before := len(up.requests())
	resp := secRoundTrip(t, addr, "POST", head+"Connection: Content-Length\r\n\r\n{}", 1)[0]
	if resp.status != 400 || !strings.Contains(resp.body, `"code":"bad_request"`) {
		t.Errorf("Connection: Content-Length: want 400 bad_request, got\n%s", resp.dump)
	}
	if n := len(up.requests()) - before; n != 0 {
		t.Errorf("Connection: Content-Length reached the upstream %d times", n)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the gateway logged an error for a client's mistake:\n%s", logs.String())
	}
}

// logEscape is what the access log does to the bytes of a path that
// these tests send.
var logEscape = strings.NewReplacer("%", "%25", `\`, "%5C")

// regexpHeader returns the value of header name in a dumped response.
func regexpHeader(dump, name string) string {
	for _, line := range strings.Split(dump, "\r\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// secKey is alice's key in the security tests that need no secret one.
const secKey = "sk-alice-0123456789abcdef"
