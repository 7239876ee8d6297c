package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/authgate/authgate/internal/safelog"
	"github.com/valyala/fasthttp"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestUpstreamErrorStatus(t *testing.T) {
	f := func(err error, want int) {
		t.Helper()
		if got := upstreamErrorStatus(err); got != want {
			t.Errorf("upstreamErrorStatus(%v) = %d, want %d", err, got, want)
		}
	}
	f(fasthttp.ErrTimeout, 504)
	f(fmt.Errorf("wrapped: %w", fasthttp.ErrTimeout), 504)
	f(os.ErrDeadlineExceeded, 504)
	f(&net.OpError{Op: "read", Err: timeoutErr{}}, 504)
	f(fasthttp.ErrDialTimeout, 502)
	f(&net.OpError{Op: "dial", Err: errors.New("connection refused")}, 502)
	f(fasthttp.ErrConnectionClosed, 502)
	f(errors.New("malformed response"), 502)
	f(fasthttp.ErrNoFreeConns, 502)
}

func TestErrClass(t *testing.T) {
	// The proxy's own errors; safelog's tests have the rest.
	f := func(err error, want string) {
		t.Helper()
		if got := safelog.Class(err, "other"); got != want {
			t.Errorf("safelog.Class(%v) = %q, want %q", err, got, want)
		}
	}
	f(&errDial{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, "cannot connect: connection refused")
	f(&errDial{&net.DNSError{Err: "no such host sk-secret-0123456789", Name: "up"}}, "cannot connect: DNS lookup failed")
	f(fmt.Errorf("wrapped: %w", &errDial{errors.New("sk-secret-0123456789")}), "cannot connect: dial failed")
	f(&errStatus{503}, "health check answered Service Unavailable")
	f(ErrClientLeft, "client left")
	f(fmt.Errorf("wrapped: %w", errTooManyInterim), "too many interim responses")
}

// TestHeaderNamesCanonical: the header names the proxy sets with
// SetCanonical are in the form fasthttp's normalizing gives them.
func TestHeaderNamesCanonical(t *testing.T) {
	for _, k := range [][]byte{strAuthorization, strXRequestID, strAllow, strXAccelBuffering} {
		var h fasthttp.RequestHeader
		h.SetBytesKV(bytes.ToLower(k), []byte("1"))
		for got := range h.All() {
			if !bytes.Equal(got, k) {
				t.Errorf("fasthttp normalizes %q to %q", k, got)
			}
		}
	}
}

// TestNewChecksConfig: New refuses what upstreamspec.ParseUpstreams and
// ParseAliases would, for a Config built without them.
func TestNewChecksConfig(t *testing.T) {
	f := func(cfg Config, want string) {
		t.Helper()
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%+v) = %v, want an error with %q", cfg, err, want)
		}
	}
	f(Config{Upstreams: []string{"http://a", "http://b models=x|x"}}, "upstream 2 of 2")
	f(Config{Aliases: map[string]string{"a": "b", "b": "c"}}, "itself an alias")
	f(Config{Aliases: map[string]string{"a": "a"}}, "names itself")
	f(Config{Aliases: map[string]string{"": "a"}}, "empty model id")
}
