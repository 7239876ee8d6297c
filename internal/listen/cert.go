package listen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Certificate is the public listener's TLS certificate, read from a
// certificate file and a key file, and its tls.Config. reload swaps the
// certificate whole: each handshake uses the certificate current when it
// starts, so connections already open keep theirs and new ones get the new
// one. Its methods are safe for concurrent use.
type Certificate struct {
	certFile, keyFile string
	log               *slog.Logger
	conf              *tls.Config // built once: its session ticket keys last for the process

	mu  sync.Mutex // serialises reload
	cur atomic.Pointer[tls.Certificate]
}

// NewCertificate loads the pair of files and returns the certificate, or
// nil when both names are empty (plain HTTP). Exactly one name set is an
// error naming the missing one.
func NewCertificate(certFile, keyFile string, log *slog.Logger) (*Certificate, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case keyFile == "":
		return nil, errors.New("TLSCertFile is set but TLSKeyFile is empty: HTTPS needs both")
	case certFile == "":
		return nil, errors.New("TLSKeyFile is set but TLSCertFile is empty: HTTPS needs both")
	}
	c := &Certificate{certFile: certFile, keyFile: keyFile, log: log}
	c.conf = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.get,
		// fasthttp speaks HTTP/1.1 only: say so in ALPN, so that a client
		// offering h2 settles on HTTP/1.1 instead of guessing.
		NextProtos: []string{"http/1.1"},
	}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// get is the tls.Config's GetCertificate.
func (c *Certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// Reload reads the pair of files again and, if they hold a certificate and
// its private key, makes it the certificate of every new handshake. On
// failure the current certificate stays and the error names the file.
func (c *Certificate) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cert, err := loadKeyPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.cur.Store(cert)
	leaf := cert.Leaf
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	c.log.Info("TLS certificate loaded", "cert_file", c.certFile, "subject", leaf.Subject.String(),
		"names", strings.Join(names, ","), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		c.log.Warn("TLS certificate is not valid now: clients will refuse it", "cert_file", c.certFile,
			"not_before", leaf.NotBefore.UTC().Format(time.RFC3339), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// loadKeyPair reads a PEM certificate chain (leaf first) and its PEM
// private key. Errors name the file at fault, or both files when they do
// not belong together.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read TLS certificate file %q: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read TLS key file %q: %w", keyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The error says which input is at fault ("certificate input",
		// "key input") or that they do not match.
		return nil, fmt.Errorf("cannot load TLS certificate file %q with key file %q: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("cannot parse TLS certificate file %q: %w", certFile, err)
		}
	}
	return &cert, nil
}

// Config returns the tls.Config of the listener, whose GetCertificate
// serves the current certificate.
func (c *Certificate) Config() *tls.Config { return c.conf }
