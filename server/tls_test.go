package server_test

// HTTPS on the public listener (Config.TLSCertFile, TLSKeyFile) and
// certificate reload, against real TLS clients on loopback with
// self-signed certificates made by each test.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/authgate/authgate/internal/testcert"
	"github.com/authgate/authgate/server"
)

// testCert is a self-signed certificate for 127.0.0.1 and localhost, and
// its key, as PEM.
type testCert = testcert.Cert

func newTestCert(t *testing.T, serial int64) testCert { return testcert.New(t, serial) }

// certFiles are the paths of a certificate file and its key file.
type certFiles struct{ cert, key string }

// newCertFiles returns the two paths in a new temporary directory, holding c.
func newCertFiles(t *testing.T, c testCert) certFiles {
	t.Helper()
	dir := t.TempDir()
	f := certFiles{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	f.write(t, c)
	return f
}

// write replaces both files' contents with c's.
func (f certFiles) write(t *testing.T, c testCert) {
	t.Helper()
	if err := os.WriteFile(f.cert, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.key, c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// trusting is a TLS client configuration whose roots are exactly certs,
// with no session cache: each connection makes a full handshake.
func trusting(certs ...testCert) *tls.Config {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c.Cert)
	}
	return &tls.Config{RootCAs: pool}
}

// httpsClient is an http.Client trusting certs.
func httpsClient(t *testing.T, certs ...testCert) *http.Client {
	tr := &http.Transport{TLSClientConfig: trusting(certs...)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: waitLimit, Transport: tr}
}

// dialTLS opens a TLS connection to g with conf, completes the handshake,
// and returns it, closed at the end of the test; waitLimit bounds every
// read and write on it.
func dialTLS(t *testing.T, g *gateway, conf *tls.Config) *tls.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: waitLimit}
	c, err := tls.DialWithDialer(d, "tcp", strings.TrimPrefix(g.url, "https://"), conf)
	if err != nil {
		t.Fatalf("TLS handshake with the gateway: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	return c
}

// peerSerial returns the serial number of the certificate c's server
// presented.
func peerSerial(c *tls.Conn) int64 {
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// roundTrip sends GET /v1/models with alice's key on c and returns the
// response's status.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader) int {
	t.Helper()
	if _, err := io.WriteString(c, rawRequest("GET", "/v1/models", "", "")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestTLSServesHTTPS: with a certificate the listener speaks HTTPS only:
// authentication works as over HTTP, the upstream learns the client's
// scheme from X-Forwarded-Proto, ALPN settles on HTTP/1.1, TLS below 1.2 is
// refused, and a plain HTTP request gets no HTTP answer.
func TestTLSServesHTTPS(t *testing.T) {
	cert := newTestCert(t, 1)
	files := newCertFiles(t, cert)
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))},
		TLSCertFile: files.cert, TLSKeyFile: files.key})
	if !g.TLSEnabled() || !strings.HasPrefix(g.url, "https://") {
		t.Fatalf("TLSEnabled %v, url %s: want HTTPS", g.TLSEnabled(), g.url)
	}
	hc := httpsClient(t, cert)

	f := func(authz string, wantStatus int) *http.Response {
		t.Helper()
		req := newRequest(t, "GET", g.url+"/v1/models", "")
		req.Header.Del("Authorization")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("Authorization %q: status %d, want %d", authz, resp.StatusCode, wantStatus)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("response not over TLS 1.2 or later: %+v", resp.TLS)
		}
		return resp
	}
	resp := f("Bearer "+keyAlice, 200)
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 1 {
		t.Errorf("certificate serial %d, want 1", got)
	}
	if got := string(up.last(t).Header.Peek("X-Forwarded-Proto")); got != "https" {
		t.Errorf("upstream got X-Forwarded-Proto %q, want https", got)
	}
	n := up.count()
	f("", 401)
	f("Bearer sk-unknown-0123456789abcdef", 401)
	if up.count() != n {
		t.Errorf("a 401 reached the upstream")
	}

	conf := trusting(cert)
	conf.NextProtos = []string{"h2", "http/1.1"}
	if got := dialTLS(t, g, conf).ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Errorf("ALPN offering h2 and http/1.1 settled on %q, want http/1.1", got)
	}
	old := trusting(cert)
	old.MaxVersion = tls.VersionTLS11
	if c, err := tls.Dial("tcp", strings.TrimPrefix(g.url, "https://"), old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded, want TLS 1.2 at least")
	}

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(g.url, "https://"), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(waitLimit))
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: gateway.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := br.ReadString('\n'); strings.HasPrefix(line, "HTTP/") {
		t.Errorf("plain HTTP on the HTTPS listener was answered %q (%v); want no HTTP answer", line, err)
	}
}

// TestTLSReload: ReloadTLS serves the files' new certificate to every new
// connection, while a connection opened before keeps working; until the
// reload, changed files change nothing. A failed reload keeps the current
// certificate and names the file at fault.
func TestTLSReload(t *testing.T) {
	first, second := newTestCert(t, 1), newTestCert(t, 2)
	files := newCertFiles(t, first)
	up := &seen{}
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{startUpstream(t, up.handler(200, "{}"))},
		TLSCertFile: files.cert, TLSKeyFile: files.key})
	both := trusting(first, second)
	newConnSerial := func() int64 {
		t.Helper()
		c := dialTLS(t, g, both.Clone())
		defer c.Close()
		return peerSerial(c)
	}

	kept := dialTLS(t, g, both.Clone())
	keptBr := bufio.NewReader(kept)
	if s := roundTrip(t, kept, keptBr); s != 200 {
		t.Fatalf("first connection: status %d", s)
	}

	files.write(t, second)
	if got := newConnSerial(); got != 1 {
		t.Fatalf("files replaced, not reloaded: new connection got serial %d, want 1", got)
	}
	if err := g.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if got := newConnSerial(); got != 2 {
		t.Fatalf("after ReloadTLS: new connection got serial %d, want 2", got)
	}
	if resp, body := doWith(t, httpsClient(t, second), "GET", g.url+"/v1/models", "Bearer "+keyAlice, ""); resp.StatusCode != 200 {
		t.Fatalf("client trusting only the new certificate: status %d %s", resp.StatusCode, body)
	}
	if s := roundTrip(t, kept, keptBr); s != 200 || peerSerial(kept) != 1 {
		t.Fatalf("connection opened before the reload: status %d, serial %d; want 200 on the old certificate", s, peerSerial(kept))
	}

	f := func(name string, breakIt func(), wantInErr string, wantIs error) {
		t.Helper()
		breakIt()
		err := g.ReloadTLS()
		if err == nil {
			t.Fatalf("%s: ReloadTLS succeeded", name)
		}
		if !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("%s: error %q does not name %q", name, err, wantInErr)
		}
		if wantIs != nil && !errors.Is(err, wantIs) {
			t.Errorf("%s: error %q is not %v", name, err, wantIs)
		}
		if got := newConnSerial(); got != 2 {
			t.Errorf("%s: after the failed reload a new connection got serial %d, want 2 (the last good one)", name, got)
		}
		files.write(t, second)
	}
	f("garbage certificate", func() { os.WriteFile(files.cert, []byte("not a certificate\n"), 0o600) }, files.cert, nil)
	f("certificate of another key", func() { os.WriteFile(files.cert, first.CertPEM, 0o600) }, files.cert, nil)
	f("missing key file", func() { os.Remove(files.key) }, files.key, fs.ErrNotExist)
	f("missing certificate file", func() { os.Remove(files.cert) }, files.cert, fs.ErrNotExist)

	// The files, good again, are served again.
	files.write(t, first)
	if err := g.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS of the first certificate: %v", err)
	}
	if got := newConnSerial(); got != 1 {
		t.Fatalf("after reloading the first certificate: serial %d, want 1", got)
	}
}

// TestTLSConfigErrors: New refuses half a TLS configuration, naming the
// missing setting, and files it cannot load, naming the file.
func TestTLSConfigErrors(t *testing.T) {
	good := newCertFiles(t, newTestCert(t, 1))
	other := newCertFiles(t, newTestCert(t, 2))
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN NOTHING-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	f := func(certFile, keyFile, wantInErr string, wantIs error) {
		t.Helper()
		g, err := server.New(server.Config{KeysFile: defaultKeys(t), Upstreams: []string{"http://127.0.0.1:1"},
			TLSCertFile: certFile, TLSKeyFile: keyFile, HealthCheckInterval: noChecks,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil {
			g.Close()
			t.Fatalf("cert %q, key %q: New succeeded", certFile, keyFile)
		}
		if !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("cert %q, key %q: error %q does not name %q", certFile, keyFile, err, wantInErr)
		}
		if wantIs != nil && !errors.Is(err, wantIs) {
			t.Errorf("cert %q, key %q: error %q is not %v", certFile, keyFile, err, wantIs)
		}
	}
	f(good.cert, "", "TLSKeyFile", nil)
	f("", good.key, "TLSCertFile", nil)
	f(missing, good.key, missing, fs.ErrNotExist)
	f(good.cert, missing, missing, fs.ErrNotExist)
	f(garbage, good.key, garbage, nil)
	f(good.cert, garbage, garbage, nil)
	f(good.cert, other.key, other.key, nil) // a key that is not the certificate's
}

// TestTLSClientGone: a TLS client that disconnects while its request waits
// for the upstream's headers closes the upstream connection, whether it
// says close_notify before its FIN (as Go's and OpenSSL's clients do),
// closes without it, or resets; the request is logged 499. Peeking under
// TLS sees the close_notify record first, which must not end the watch.
func TestTLSClientGone(t *testing.T) {
	cert := newTestCert(t, 1)
	files := newCertFiles(t, cert)
	f := func(name string, leave func(tc *tls.Conn, raw *net.TCPConn)) {
		t.Helper()
		upURL, got, closed := hangingUpstream(t)
		g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
			HealthCheckInterval: noChecks, UpstreamTimeout: time.Minute, TLSCertFile: files.cert, TLSKeyFile: files.key})

		raw, err := net.DialTimeout("tcp", strings.TrimPrefix(g.url, "https://"), waitLimit)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		raw.SetDeadline(time.Now().Add(waitLimit))
		conf := trusting(cert)
		conf.ServerName = "127.0.0.1"
		tc := tls.Client(raw, conf)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tc, rawRequest("POST", "/v1/chat/completions", "", `{"model":"m"}`)); err != nil {
			t.Fatal(err)
		}
		recv(t, got, name+": request at the upstream")
		leave(tc, raw.(*net.TCPConn))
		if err := recv(t, closed, name+": close of the upstream connection after the client left"); err == nil {
			t.Fatalf("%s: the upstream got more bytes instead of a close", name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Fatalf("%s: Shutdown: %v", name, err)
		}
		lines := g.logLines(t)
		if len(lines) != 1 || !strings.HasSuffix(lines[0], " | alice | POST /v1/chat/completions | 499") {
			t.Fatalf("%s: access log %q, want one line with status 499", name, lines)
		}
	}
	if runtime.GOOS == "linux" {
		f("close_notify, then FIN", func(tc *tls.Conn, _ *net.TCPConn) { tc.Close() })
	}
	f("FIN without close_notify", func(_ *tls.Conn, raw *net.TCPConn) { raw.Close() })
	f("RST", func(_ *tls.Conn, raw *net.TCPConn) {
		raw.SetLinger(0)
		raw.Close()
	})
}

// TestTLSPipelined: a request sent on a TLS connection while the previous
// one is with the upstream is a TLS record to the client watch, not a
// disconnect: both requests are answered in order.
func TestTLSPipelined(t *testing.T) {
	cert := newTestCert(t, 1)
	files := newCertFiles(t, cert)
	held, release := make(chan struct{}, 1), make(chan struct{})
	releaseFirst := closer(release)
	t.Cleanup(releaseFirst) // before the upstream's cleanup
	upURL := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			if i == 0 {
				held <- struct{}{}
				<-release
			}
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"n\":%d}", i); err != nil {
				return
			}
		}
	})
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
		HealthCheckInterval: noChecks, UpstreamTimeout: time.Minute, TLSCertFile: files.cert, TLSKeyFile: files.key})

	c := dialTLS(t, g, trusting(cert))
	br := bufio.NewReader(c)
	before := server.WatchesStarted()
	if _, err := io.WriteString(c, rawRequest("POST", "/v1/chat/completions", "", `{}`)); err != nil {
		t.Fatal(err)
	}
	recv(t, held, "first request at the upstream")
	early := server.WatchesStarted() == before
	if _, err := io.WriteString(c, rawRequest("POST", "/v1/chat/completions", "", `{}`)); err != nil {
		t.Fatal(err)
	}
	// The record is at the gateway's socket, then the first exchange's
	// watch starts (WatchDelay into it) and looks at the socket before it
	// waits: it sees the record. If the watch had started before the
	// record came, the record wakes it at a moment no event tells; the
	// test passes either way, but then proves less.
	waitDelivered(t, c)
	eventually(t, "the first exchange's client watch started", func() bool { return server.WatchesStarted() > before })
	if !early {
		t.Log("the watch started before the second request was sent")
	}
	releaseFirst()
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf(`{"n":%d}`, i); resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("response %d: %d %s, want 200 %s", i, resp.StatusCode, body, want)
		}
	}
}

// TestTLSConnectionLimit: over TLS, a connection beyond MaxConnsPerIP is
// answered 429 in JSON, after the handshake, and closed.
func TestTLSConnectionLimit(t *testing.T) {
	cert := newTestCert(t, 1)
	files := newCertFiles(t, cert)
	upURL := startUpstream(t, (&seen{}).handler(200, "{}"))
	g := startGateway(t, server.Config{KeysFile: defaultKeys(t), Upstreams: []string{upURL},
		HealthCheckInterval: noChecks, MaxConnsPerIP: 1, TLSCertFile: files.cert, TLSKeyFile: files.key})
	conf := trusting(cert)
	conf.ServerName = "127.0.0.1"

	held := dialTLS(t, g, conf)
	if s := roundTrip(t, held, bufio.NewReader(held)); s != 200 {
		t.Fatalf("the first connection: status %d, want 200", s)
	}
	c := dialTLS(t, g, conf)
	br := bufio.NewReader(c)
	if s := roundTrip(t, c, br); s != 429 {
		t.Fatalf("a second connection with MaxConnsPerIP=1: status %d, want 429", s)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the refusal: %v, want the connection closed (EOF)", err)
	}
	held.Close()
	eventually(t, "a connection served after the first closed", func() bool {
		c := dialTLS(t, g, conf)
		return roundTrip(t, c, bufio.NewReader(c)) == 200
	})
}
