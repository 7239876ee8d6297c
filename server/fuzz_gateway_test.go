package server_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/server"
)

// The end-to-end fuzz target's secrets: a client key, one that differs
// from it in its last character, and the upstream's credential.
const (
	fuzzKey         = "sk-fuzz-client-9f3a7c21d4e8b6a5"
	fuzzNearKey     = "sk-fuzz-client-9f3a7c21d4e8b6a6"
	fuzzUpstreamKey = "sk-fuzz-upstream-4b8e2d9a1c7f3e6"
)

// fuzzRig is a gateway on a loopback port in front of a net/http upstream,
// shared by the iterations of one fuzzing process (they run one at a
// time).
type fuzzRig struct {
	addr    string
	entries atomic.Int64 // access-log entries so far
	logs    bytes.Buffer // the gateway's own log
	mu      sync.Mutex   // guards logs, leaks
	leaks   []string     // what the upstream or the access log saw of a secret
}

func (r *fuzzRig) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.Write(p)
}

func (r *fuzzRig) leak(where, text string) {
	if containsSecret(text) {
		r.mu.Lock()
		r.leaks = append(r.leaks, where+": "+text)
		r.mu.Unlock()
	}
}

// containsSecret reports whether s holds 16 consecutive characters of a
// secret (the keys' common prefix "sk-fuzz-client-9" excepted).
func containsSecret(s string) bool {
	for _, k := range []string{fuzzKey, fuzzNearKey, fuzzUpstreamKey} {
		for i := 1; i+16 <= len(k); i++ {
			if strings.Contains(s, k[i:i+16]) {
				return true
			}
		}
	}
	return false
}

func startFuzzRig(tb testing.TB) *fuzzRig {
	r := &fuzzRig{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// What must never arrive: a client key, anywhere in the head.
		head, _ := httputil.DumpRequest(req, false)
		h := strings.ReplaceAll(string(head), "Authorization: Bearer "+fuzzUpstreamKey, "")
		r.leak("upstream head", h)
		io.Copy(io.Discard, req.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	tb.Cleanup(up.Close)
	keys, warns, err := auth.Parse(strings.NewReader("fuzz:" + fuzzKey + " rpm=10000000\n"))
	if err != nil || len(warns) > 0 {
		tb.Fatal(warns, err)
	}
	g, err := server.New(server.Config{
		Keys:                keys,
		Upstreams:           []string{up.URL + "/base"},
		UpstreamAPIKey:      fuzzUpstreamKey,
		HealthCheckInterval: -1,
		MaxRequestBody:      64 << 10,
		ReadTimeout:         2 * time.Second,
		AccessLogger: server.AccessLogFunc(func(e *logsink.Entry) {
			r.entries.Add(1)
			r.leak("access log", e.KeyID+" "+string(e.Method)+" "+string(e.Path)+" "+string(e.RequestID))
		}),
		Logger: slog.New(slog.NewTextHandler(r, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := server.Listen("127.0.0.1:0", nil)
	if err != nil {
		tb.Fatal(err)
	}
	go g.Serve(ln)
	tb.Cleanup(func() { g.Close() })
	r.addr = ln.Addr().String()
	return r
}

// authLine matches a line that begins with "Authorization" (a header, or
// what the fuzzer made of one), where "KEY" and "NEAR" stand for the client
// keys.
var authLine = regexp.MustCompile(`(?im)^[ \t]*authorization.*$`)

// statusLine matches a response's status line in what the gateway sent:
// the bodies the gateway and the upstream send are JSON without it.
var statusLine = regexp.MustCompile(`HTTP/1\.[01] (\d{3}) `)

// FuzzGatewayRequest sends random bytes, as a client would, to a real
// gateway on a loopback port in front of a real upstream, on a connection
// of their own, and reads until the gateway closes it. On an Authorization
// line, "KEY" and "NEAR" stand for a valid key and one that differs from
// it by a character; the gateway has an UPSTREAM_API_KEY. Whatever the
// bytes:
//
//   - the gateway answers no 5xx (its upstream is healthy and answers 200);
//   - no key and not the upstream's credential appears in any response, in
//     the gateway's log or access log, or in a request head reaching the
//     upstream (the client's key in its own request id, path or body is the
//     client's doing: the fuzzer can put it only on Authorization lines);
//   - every final response is one access-log line, and every access-log
//     line a response;
//   - the gateway closes the connection once the client has closed its
//     side, within the read timeout.
func FuzzGatewayRequest(f *testing.F) {
	for _, s := range []string{
		"GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\n\r\n",
		"GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer NEAR\r\n\r\n",
		"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nAuthorization: KEY\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"model\":\"m\"}",
		"POST /v1/x HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST /v1/x HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"GET /a HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\n\r\nGET /b HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\nConnection: close\r\n\r\n",
		"GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\x01\r\n\r\n",
		"GET /v1/models HTTP/1.1\nHost: g\nAuthorization: Bearer KEY\n\n",
		"GET http://x/v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\n\r\n",
		"TRACE /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\n\r\n",
		"GET /base/../admin HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\n\r\n",
		"POST /v1/x HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\nConnection: Content-Length, X-Request-Id\r\nContent-Length: 2\r\n\r\n{}",
		"POST /v1/x HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization Bearer KEY\r\n\r\n",
		"GET /v1/models?key=KEY HTTP/1.1 x\r\nHost: g\r\n\r\n",
		"POST /v1/x HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\nContent-Length: 100\r\n\r\nabc",
		"GET / HTTP/1.0\r\nAuthorization: Bearer KEY\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer KEY\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: g\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	rig := startFuzzRig(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = authLine.ReplaceAllFunc(raw, func(line []byte) []byte {
			line = bytes.ReplaceAll(line, []byte("KEY"), []byte(fuzzKey))
			return bytes.ReplaceAll(line, []byte("NEAR"), []byte(fuzzNearKey))
		})
		before := rig.entries.Load()
		conn, err := net.Dial("tcp", rig.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			conn.Write(raw)
			conn.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(conn)
		reset := errors.Is(err, syscall.ECONNRESET)
		if err != nil && !reset {
			t.Fatalf("reading the answers: %v (the gateway kept the connection open?)\nsent %q\ngot %q", err, raw, out)
		}
		text := string(out)
		if containsSecret(text) {
			t.Fatalf("a secret in the answer to %q:\n%s", raw, text)
		}
		responses := 0
		for _, m := range statusLine.FindAllStringSubmatch(text, -1) {
			if m[1][0] == '1' {
				continue // 100 Continue
			}
			responses++
			if m[1][0] == '5' {
				t.Fatalf("the gateway answered %s to %q:\n%s", m[1], raw, text)
			}
		}
		// The probes are not logged: there are none among the fuzzer's
		// finds unless it spells /healthz or /readyz.
		probes := strings.Count(string(raw), "/healthz") + strings.Count(string(raw), "/readyz")
		// A reset (the gateway closing with bytes of the client's unread)
		// may have discarded answers before the client read them.
		if n := rig.entries.Load() - before; probes == 0 && (n < int64(responses) || (n > int64(responses) && !reset)) {
			t.Fatalf("%d access-log lines for %d responses to %q:\n%s", n, responses, raw, text)
		}
		rig.mu.Lock()
		leaks, logs := rig.leaks, rig.logs.String()
		rig.mu.Unlock()
		if len(leaks) > 0 {
			t.Fatalf("a secret seen after %q: %q", raw, leaks)
		}
		if containsSecret(logs) {
			t.Fatalf("a secret in the gateway's log after %q:\n%s", raw, logs)
		}
	})
}
