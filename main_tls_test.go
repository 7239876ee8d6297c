package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authgate/authgate/internal/testcert"
)

// writeTestCert writes a new self-signed ECDSA certificate for 127.0.0.1
// with the given serial number to certPath, and its key to keyPath, each
// replaced by rename as configuration management would; it returns the
// certificate.
func writeTestCert(t *testing.T, certPath, keyPath string, serial int64) *x509.Certificate {
	t.Helper()
	c := testcert.New(t, serial)
	writeFileAtomic(t, keyPath, string(c.KeyPEM))
	writeFileAtomic(t, certPath, string(c.CertPEM))
	return c.Cert
}

// startServeTLS is startServe for a gateway that speaks HTTPS: its requests
// go through a client trusting roots, and it is healthy when GET /healthz
// answers 200 over TLS.
func startServeTLS(t *testing.T, environ map[string]string, roots *x509.CertPool) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		p := startProc(t, []string{"serve"}, withEnv(environ, map[string]string{"LISTEN_ADDR": addr}))
		p.base = "https://" + addr
		p.hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}
		err := p.waitHealthyTLS(10 * time.Second)
		if err == nil {
			return p
		}
		if p.hasExited() && strings.Contains(p.stderr.String(), "cannot listen") && attempt < 5 {
			t.Logf("port %s was taken, retrying: %s", addr, p.stderr)
			continue
		}
		t.Fatalf("authgate serve over TLS: %v\nstdout:\n%s\nstderr:\n%s", err, p.stdout, p.stderr)
	}
}

// waitHealthyTLS is waitHealthy through p.hc, which speaks TLS.
func (p *proc) waitHealthyTLS(timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r, err := p.try("GET", "/healthz", "", "")
		if err == nil && r.status == http.StatusOK && r.body == "ok" {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited with code %d before serving", p.cmd.ProcessState.ExitCode())
		case <-deadline.C:
			return fmt.Errorf("GET /healthz over TLS not 200 ok within %v (last error: %v)", timeout, err)
		case <-tick.C:
		}
	}
}

// TestServeBinaryTLS: with TLS_CERT_FILE and TLS_KEY_FILE, serve speaks
// HTTPS; after the files are replaced, SIGHUP makes new connections get the
// new certificate; a broken file at SIGHUP keeps the last good one and is
// logged.
func TestServeBinaryTLS(t *testing.T) {
	up := startUpstream(t)
	key := testKey(t)
	keys := "alice:" + key + "\n"
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeTestCert(t, certPath, keyPath, 1)
	environ, _ := gatewayEnv(t, up, &keys, map[string]string{"TLS_CERT_FILE": certPath, "TLS_KEY_FILE": keyPath})
	roots := x509.NewCertPool()
	roots.AddCert(first)
	p := startServeTLS(t, environ, roots)

	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "Bearer "+key, chatBody))
	if r := p.do("POST", "/v1/chat/completions", "", chatBody); r.status != http.StatusUnauthorized {
		t.Fatalf("no key over TLS: status %d, want 401", r.status)
	}
	if n := up.requests(t, key); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}

	// serial opens a new connection and returns its certificate's serial.
	serial := func() int64 {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", strings.TrimPrefix(p.base, "https://"),
			&tls.Config{RootCAs: roots})
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 1 {
		t.Fatalf("certificate serial %d, want 1", got)
	}

	second := writeTestCert(t, certPath, keyPath, 2)
	roots.AddCert(second)
	p.signal(syscall.SIGHUP)
	if !p.stderr.waitFor("TLS certificate loaded", 2, waitLimit) {
		t.Fatalf("no second \"TLS certificate loaded\" after SIGHUP:\n%s", p.stderr)
	}
	if got := serial(); got != 2 {
		t.Fatalf("after SIGHUP: certificate serial %d, want 2", got)
	}

	writeFileAtomic(t, certPath, "not a certificate\n")
	p.signal(syscall.SIGHUP)
	if !p.stderr.waitFor("TLS certificate reload failed", 1, waitLimit) {
		t.Fatalf("stderr does not mention the failed TLS reload:\n%s", p.stderr)
	}
	if !strings.Contains(p.stderr.String(), certPath) {
		t.Errorf("stderr does not name the certificate file %q", certPath)
	}
	if got := serial(); got != 2 {
		t.Errorf("after a failed reload: certificate serial %d, want 2 (the last good one)", got)
	}
	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "Bearer "+key, chatBody))

	p.stop(syscall.SIGTERM, 5*time.Second)
	p.checkStderrClean(key)
}
