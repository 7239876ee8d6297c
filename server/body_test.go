package server_test

// Request bodies are streamed (server/body.go): a request refused on its
// headers is answered without its body being read or forwarded, and an
// admitted one's body reaches the upstream as it is read, intact.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/authgate/authgate/server"
)

// upRequest is what recordingUpstream saw of one request.
type upRequest struct {
	path          string
	contentLength int64    // -1 if none (chunked)
	te            []string // Transfer-Encoding
	expect        string
	n             int64
	sum           [32]byte
	err           error // reading the body
}

// recordingUpstream reads requests on keep-alive connections, reports each
// on the returned channel with its body's length and SHA-256, and answers
// healthyResponse; a body it cannot read whole ends the connection. conns
// counts the connections it accepted.
func recordingUpstream(t *testing.T) (url string, conns *atomic.Int32, got <-chan upRequest) {
	t.Helper()
	ch := make(chan upRequest, 64)
	conns = new(atomic.Int32)
	url = startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			h := sha256.New()
			n, err := io.Copy(h, req.Body)
			r := upRequest{path: req.URL.Path, contentLength: req.ContentLength, te: req.TransferEncoding,
				expect: req.Header.Get("Expect"), n: n, err: err}
			copy(r.sum[:], h.Sum(nil))
			ch <- r
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, healthyResponse); err != nil {
				return
			}
		}
	})
	return url, conns, ch
}

// readResponse reads one response and its body from br.
func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("response body: %v", err)
	}
	return resp, string(b)
}

// expectClosed fails the test unless the gateway closes conn cleanly (end
// of stream, not a reset) within waitLimit, with nothing more sent.
func expectClosed(t *testing.T, what string, br *bufio.Reader) {
	t.Helper()
	b, err := br.ReadByte()
	if err != io.EOF {
		t.Errorf("%s: after the response, read %q, %v; want the connection closed (EOF)", what, b, err)
	}
}

const bigLength = "Content-Length: 30000000\r\n"

// TestRefusedBodyNotRead: a request refused on its headers (no key, a bad
// key, over its limit), declaring a 30 MB body of which only a few bytes
// come, is answered at once with "Connection: close" and its connection
// closed; the upstream receives nothing. A gateway that waited for the body
// would time the test out.
func TestRefusedBodyNotRead(t *testing.T) {
	upURL, conns, got := recordingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks})
	f := func(name, headers string, wantStatus int, wantCode string) {
		t.Helper()
		conn, br := dialGateway(t, g)
		if _, err := io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway.test\r\n"+headers+"\r\n"+`{"model":`); err != nil {
			t.Fatal(err)
		}
		resp, body := readResponse(t, br)
		if resp.StatusCode != wantStatus || !strings.Contains(body, `"code":"`+wantCode+`"`) {
			t.Fatalf("%s: status %d, body %s; want %d %s", name, resp.StatusCode, body, wantStatus, wantCode)
		}
		if !resp.Close {
			t.Errorf("%s: no Connection: close with the body unread", name)
		}
		expectClosed(t, name, br)
	}
	f("no key", bigLength, 401, "invalid_api_key")
	f("bad format", "Authorization: Bearer short\r\n"+bigLength, 401, "invalid_api_key")
	f("unknown key", "Authorization: Bearer sk-unknown-0123456789abcdef\r\n"+bigLength, 401, "invalid_api_key")
	f("unknown key, chunked", "Authorization: Bearer sk-unknown-0123456789abcdef\r\nTransfer-Encoding: chunked\r\n", 401, "invalid_api_key")
	// fasthttp would read a multipart body whole before the handler, to
	// parse it, but for DisablePreParseMultipartForm.
	f("unknown key, multipart", "Authorization: Bearer sk-unknown-0123456789abcdef\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"+bigLength, 401, "invalid_api_key")
	f("unknown key, Expect: 100-continue", "Authorization: Bearer sk-unknown-0123456789abcdef\r\nExpect: 100-continue\r\n"+bigLength, 401, "invalid_api_key")
	if n := conns.Load(); n != 0 {
		t.Fatalf("the upstream got %d connections from refused requests", n)
	}

	// bob has rpm=3: three requests reach the upstream, the fourth is
	// refused on its headers.
	for i := 0; i < 3; i++ {
		if resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyBob, "{}"); resp.StatusCode != 200 {
			t.Fatalf("bob's request %d: status %d %s", i+1, resp.StatusCode, body)
		}
		recv(t, got, "bob's request at the upstream")
	}
	f("over the limit", "Authorization: Bearer "+keyBob+"\r\n"+bigLength, 429, "rate_limit_exceeded")
	f("over the limit, chunked", "Authorization: Bearer "+keyBob+"\r\nTransfer-Encoding: chunked\r\n", 429, "rate_limit_exceeded")
	select {
	case r := <-got:
		t.Fatalf("a refused request reached the upstream: %+v", r)
	default:
	}

	lines := g.logLines(t)
	want := []string{"- | POST /v1/chat/completions | 401", "- | POST /v1/chat/completions | 401",
		"- | POST /v1/chat/completions | 401", "- | POST /v1/chat/completions | 401", "- | POST /v1/chat/completions | 401",
		"- | POST /v1/chat/completions | 401",
		"bob | POST /v1/chat/completions | 200", "bob | POST /v1/chat/completions | 200", "bob | POST /v1/chat/completions | 200",
		"bob | POST /v1/chat/completions | 429", "bob | POST /v1/chat/completions | 429"}
	if len(lines) != len(want) {
		t.Fatalf("access log:\n%s\nwant %d lines", strings.Join(lines, "\n"), len(want))
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, " | "+want[i]) {
			t.Errorf("log line %d %q, want … | %s", i, l, want[i])
		}
	}
}

// TestRefusedSmallBodyKeepsConnection: a refused request whose body
// (at most 8 KiB) fasthttp had read before the handler leaves nothing
// unread, so its connection stays open for the next request.
func TestRefusedSmallBodyKeepsConnection(t *testing.T) {
	upURL, _, _ := recordingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks})
	conn, br := dialGateway(t, g)
	body := strings.Repeat("x", 8<<10)
	bad := "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer sk-unknown-0123456789abcdef\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	for i := 1; i <= 2; i++ {
		if _, err := io.WriteString(conn, bad); err != nil {
			t.Fatal(err)
		}
		if resp, _ := readResponse(t, br); resp.StatusCode != 401 || resp.Close {
			t.Fatalf("refusal %d: status %d, Connection: close %v; want 401 on a kept connection", i, resp.StatusCode, resp.Close)
		}
	}
	if _, err := io.WriteString(conn, rawRequest("POST", "/v1/chat/completions", "", "{}")); err != nil {
		t.Fatal(err)
	}
	if resp, body := readResponse(t, br); resp.StatusCode != 200 || body != healthyBody {
		t.Fatalf("after two refusals on the connection: status %d %q", resp.StatusCode, body)
	}
}

// TestRefusedBodyClosedCleanly: a client still sending a large body when
// it is refused gets its whole 401 and then the connection's end, whether
// it had sent a little of the body or a lot of it, so that no byte of the
// body is taken for a next request.
func TestRefusedBodyClosedCleanly(t *testing.T) {
	upURL, conns, _ := recordingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks})
	f := func(sent int) {
		t.Helper()
		conn, br := dialGateway(t, g)
		const length = 1 << 20
		head := "POST /v1/embeddings HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer sk-unknown-0123456789abcdef\r\n" +
			"Content-Length: " + strconv.Itoa(length) + "\r\n\r\n"
		// The body part is written in another goroutine: the gateway may
		// close before it has all been taken.
		go conn.Write(append([]byte(head), bytes.Repeat([]byte("a"), sent)...))
		resp, body := readResponse(t, br)
		if resp.StatusCode != 401 || !strings.Contains(body, "invalid_api_key") || !resp.Close {
			t.Fatalf("%d bytes of body sent: status %d, Connection: close %v, body %s", sent, resp.StatusCode, resp.Close, body)
		}
		expectClosed(t, fmt.Sprintf("%d bytes of body sent", sent), br)
	}
	f(10)
	f(4 << 10)
	f(256 << 10)
	if n := conns.Load(); n != 0 {
		t.Fatalf("the upstream got %d connections", n)
	}
}

// TestStreamedBodyIntact: an admitted request's body reaches the upstream
// byte for byte, with its Content-Length when the client sent one and
// chunked when the client did; a multipart upload too, unparsed.
func TestStreamedBodyIntact(t *testing.T) {
	upURL, _, got := recordingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks,
		UpstreamTimeout: 4 * waitLimit})
	payload := randomBytes(5<<20, 7)
	sum := sha256.Sum256(payload)
	check := func(name string, wantLength int64, wantTE []string) {
		t.Helper()
		r := recv(t, got, name+": request at the upstream")
		if r.err != nil || r.n != int64(len(payload)) || r.sum != sum {
			t.Errorf("%s: the upstream read %d bytes (%v) that differ from the %d sent", name, r.n, r.err, len(payload))
		}
		if r.contentLength != wantLength || fmt.Sprint(r.te) != fmt.Sprint(wantTE) {
			t.Errorf("%s: upstream framing Content-Length %d, Transfer-Encoding %q; want %d, %q", name, r.contentLength, r.te, wantLength, wantTE)
		}
	}

	// Content-Length, through net/http.
	resp, body := do(t, "POST", g.url+"/v1/files", "Bearer "+keyAlice, string(payload))
	if resp.StatusCode != 200 || body != healthyBody {
		t.Fatalf("5 MB with Content-Length: status %d %q", resp.StatusCode, body)
	}
	check("5 MB with Content-Length", int64(len(payload)), nil)

	// Chunked, in uneven chunks, by hand.
	conn, br := dialGateway(t, g)
	go func() {
		w := bufio.NewWriter(conn)
		fmt.Fprintf(w, "POST /v1/files HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n", keyAlice)
		for rest := payload; len(rest) > 0; {
			n := min(len(rest), 1+len(rest)%70001)
			fmt.Fprintf(w, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		io.WriteString(w, "0\r\n\r\n")
		w.Flush()
	}()
	if resp, body := readResponse(t, br); resp.StatusCode != 200 || body != healthyBody || resp.Close {
		t.Fatalf("5 MB chunked: status %d %q, Connection: close %v", resp.StatusCode, body, resp.Close)
	}
	check("5 MB chunked", -1, []string{"chunked"})

	// Multipart with a Content-Length: passed on as bytes, never parsed
	// and re-encoded.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("model", "whisper-1")
	fw, _ := mw.CreateFormFile("file", "audio.wav")
	fw.Write(payload[:1<<20])
	mw.Close()
	mpSum := sha256.Sum256(mp.Bytes())
	req := newRequest(t, "POST", g.url+"/v1/audio/transcriptions", mp.String())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	mresp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	mresp.Body.Close()
	if mresp.StatusCode != 200 {
		t.Fatalf("multipart: status %d", mresp.StatusCode)
	}
	if r := recv(t, got, "multipart request at the upstream"); r.sum != mpSum || r.n != int64(mp.Len()) {
		t.Errorf("multipart: the upstream got %d bytes that differ from the %d sent", r.n, mp.Len())
	}
}

// TestChunkedBodyTooLarge: a chunked body going over MaxRequestBody is
// answered 413 in OpenAI's shape and its connection closed; the upstream,
// which had part of it, sees its connection closed before the body's end,
// and the next request goes on another upstream connection.
func TestChunkedBodyTooLarge(t *testing.T) {
	upURL, conns, got := recordingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks,
		MaxRequestBody: 1 << 20})
	conn, br := dialGateway(t, g)
	go func() {
		w := bufio.NewWriter(conn)
		fmt.Fprintf(w, "POST /v1/files HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n", keyAlice)
		chunk := strings.Repeat("b", 64<<10)
		for i := 0; i < 32; i++ { // 2 MiB
			if _, err := fmt.Fprintf(w, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
				return
			}
		}
		io.WriteString(w, "0\r\n\r\n")
		w.Flush()
	}()
	resp, body := readResponse(t, br)
	if resp.StatusCode != 413 || resp.Header.Get("Content-Type") != "application/json" || !resp.Close {
		t.Fatalf("status %d, Content-Type %q, Connection: close %v; body %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Close, body)
	}
	if typ, code := apiErrorFields(t, body); typ != "invalid_request_error" || code != "request_too_large" {
		t.Errorf("type %q code %q", typ, code)
	}
	if r := recv(t, got, "the partial body at the upstream"); r.err == nil {
		t.Errorf("the upstream read a complete body of %d bytes; want its connection closed before the end", r.n)
	}

	// Exactly the limit passes, on a new upstream connection.
	exact := strings.Repeat("c", 1<<20)
	if resp, body := do(t, "POST", g.url+"/v1/files", "Bearer "+keyAlice, exact); resp.StatusCode != 200 {
		t.Fatalf("a body of exactly MaxRequestBody: status %d %s", resp.StatusCode, body)
	}
	if r := recv(t, got, "the next request at the upstream"); r.err != nil || r.n != 1<<20 {
		t.Fatalf("next request: %d bytes, %v", r.n, r.err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("the upstream got %d connections, want 2: the one with the cut body must not be reused", n)
	}
}

// TestRetryStreamedBody: a connection refused by one upstream is retried
// on the other before any of the body is read, so the body arrives whole.
// Balancing breaks ties at random: over 16 requests the refusing upstream
// is tried first in some (all but surely: 1 - 2^-16).
func TestRetryStreamedBody(t *testing.T) {
	upURL, _, got := recordingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{deadURL(t), upURL},
		HealthCheckInterval: noChecks, DefaultRPM: 1000})
	payload := randomBytes(100<<10, 8)
	sum := sha256.Sum256(payload)
	for i := 0; i < 16; i++ {
		if resp, body := do(t, "POST", g.url+"/v1/embeddings", "Bearer "+keyAlice, string(payload)); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d %s", i, resp.StatusCode, body)
		}
		if r := recv(t, got, "request at the live upstream"); r.sum != sum {
			t.Fatalf("request %d: the upstream got %d bytes that differ from the %d sent", i, r.n, len(payload))
		}
	}
}

// TestExpectContinue: a request with "Expect: 100-continue" and a valid key
// is told to continue and proxied, its limit counted once; the
// expectation is not passed on.
func TestExpectContinue(t *testing.T) {
	upURL, _, got := recordingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks})
	conn, br := dialGateway(t, g)
	body := strings.Repeat("d", 20<<10)
	// bob has rpm=3: three requests pass only if each is counted once.
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(conn, "POST /v1/embeddings HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", keyBob, len(body))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 100 {
			t.Fatalf("request %d: %v, status %v; want 100 Continue before the body", i, err, resp)
		}
		io.WriteString(conn, body)
		if resp, b := readResponse(t, br); resp.StatusCode != 200 || b != healthyBody {
			t.Fatalf("request %d: status %d %s", i, resp.StatusCode, b)
		}
		if r := recv(t, got, "request at the upstream"); r.n != int64(len(body)) || r.expect != "" {
			t.Fatalf("request %d: the upstream got %d bytes, Expect %q", i, r.n, r.expect)
		}
	}
	// The fourth is over bob's limit: decided on its head, 429 without
	// "100 Continue", the connection closed.
	fmt.Fprintf(conn, "POST /v1/embeddings HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", keyBob, len(body))
	resp, b := readResponse(t, br)
	if resp.StatusCode != 429 || !strings.Contains(b, "rate_limit_exceeded") || resp.Header.Get("Retry-After-Ms") == "" {
		t.Fatalf("over the limit: status %d %s, want 429 with its retry headers and no 100 Continue", resp.StatusCode, b)
	}
	expectClosed(t, "after the 429", br)

	// A client admitted with "100 Continue" that leaves without its body
	// is logged under its key_id, with its method and path, as 499.
	conn, br = dialGateway(t, g)
	fmt.Fprintf(conn, "POST /v1/embeddings HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", keyAlice, len(body))
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 100 {
		t.Fatalf("alice: %v, status %v; want 100 Continue", err, resp)
	}
	conn.Close()
	eventually(t, "the 499's log line", func() bool { // the log reaches its file on its next tick
		b, _ := os.ReadFile(g.accessLog)
		return strings.Contains(string(b), " | 499")
	})
	lines := g.logLines(t)
	want := []string{" | bob | POST /v1/embeddings | 200", " | bob | POST /v1/embeddings | 200", " | bob | POST /v1/embeddings | 200",
		" | bob | POST /v1/embeddings | 429", " | alice | POST /v1/embeddings | 499"}
	if len(lines) != len(want) {
		t.Fatalf("access log %q, want %d lines ending %q", lines, len(want), want)
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("log line %d %q, want it to end in %q", i, lines[i], w)
		}
	}
}

// TestStreamedBodyClientGone: a client that leaves in the middle of its
// body is logged 499, and the upstream connection, which had part of the
// request, is closed rather than reused.
func TestStreamedBodyClientGone(t *testing.T) {
	upURL, conns, got := recordingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks})
	conn, _ := dialGateway(t, g)
	fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s",
		keyAlice, 1<<20, strings.Repeat("e", 100<<10))
	conn.Close()
	if r := recv(t, got, "the partial request at the upstream"); r.err == nil {
		t.Fatalf("the upstream read a complete body of %d bytes", r.n)
	}
	// The upstream may see the cut before the gateway has logged it: wait
	// for its line (the log reaches the file on the access log's next
	// tick), so that the next request's comes after it and Close does not
	// race the handler.
	eventually(t, "the 499's log line", func() bool {
		b, _ := os.ReadFile(g.accessLog)
		return strings.Contains(string(b), " | 499")
	})
	if resp, body := do(t, "POST", g.url+"/v1/files", "Bearer "+keyAlice, "{}"); resp.StatusCode != 200 {
		t.Fatalf("next request: status %d %s", resp.StatusCode, body)
	}
	recv(t, got, "next request at the upstream")
	if n := conns.Load(); n != 2 {
		t.Errorf("the upstream got %d connections, want 2", n)
	}
	lines := g.logLines(t)
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " | alice | POST /v1/files | 499") {
		t.Errorf("access log %q, want the cut request logged 499", lines)
	}
}

// TestWrapHTTPSeesWholeBody: WrapHTTP's handler reads the whole body from
// r.Body, as before (net/http's server is not fasthttp's, whose settings
// do not apply).
func TestWrapHTTPSeesWholeBody(t *testing.T) {
	g, _ := newWrapGateway(t)
	got := make(chan [32]byte, 1)
	srv := httptest.NewServer(g.WrapHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		io.Copy(h, r.Body)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
	})))
	defer srv.Close()
	payload := randomBytes(5<<20, 6)
	if resp, body := do(t, "POST", srv.URL+"/v1/files", "Bearer "+keyAlice, string(payload)); resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	if sum := recv(t, got, "the handler's body"); sum != sha256.Sum256(payload) {
		t.Fatal("the handler read a body that differs from the one sent")
	}
}

// TestStreamedBodyTLS: under TLS, an admitted request's large body reaches
// the upstream intact, and a refused one's connection ends after its 401.
// (The client watch, which under TLS waits on the socket through TLS
// records, must not start before the body is read: the body's reads would
// wait for it.)
func TestStreamedBodyTLS(t *testing.T) {
	cert := newTestCert(t, 1)
	files := newCertFiles(t, cert)
	upURL, conns, got := recordingUpstream(t)
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks,
		TLSCertFile: files.cert, TLSKeyFile: files.key})
	hc := httpsClient(t, cert)
	payload := randomBytes(3<<20, 9)
	resp, err := hc.Do(newRequest(t, "POST", g.url+"/v1/files", string(payload)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if r := recv(t, got, "request at the upstream"); r.sum != sha256.Sum256(payload) {
		t.Fatalf("the upstream got %d bytes that differ from the %d sent", r.n, len(payload))
	}

	c := dialTLS(t, g, trusting(cert))
	fmt.Fprintf(c, "POST /v1/files HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer sk-unknown-0123456789abcdef\r\n%s\r\n{\"a\":", bigLength)
	br := bufio.NewReader(c)
	if resp, body := readResponse(t, br); resp.StatusCode != 401 || !resp.Close {
		t.Fatalf("unknown key: status %d, Connection: close %v, body %s", resp.StatusCode, resp.Close, body)
	}
	expectClosed(t, "unknown key over TLS", br)
	if n := conns.Load(); n != 1 {
		t.Errorf("the upstream got %d connections, want 1", n)
	}
}
