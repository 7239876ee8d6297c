package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
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

func TestParseUpstreams(t *testing.T) {
	ok := func(in string, want ...string) {
		t.Helper()
		got, err := ParseUpstreams(in)
		if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("ParseUpstreams(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := func(in string) {
		t.Helper()
		if got, err := ParseUpstreams(in); err == nil {
			t.Errorf("ParseUpstreams(%q) = %q, want an error", in, got)
		}
	}
	ok("http://127.0.0.1:8000", "http://127.0.0.1:8000")
	ok(" http://a:1 , https://b/v1 ", "http://a:1", "https://b/v1")
	ok("http://[::1]:8000", "http://[::1]:8000")
	bad("")
	bad("  ")
	bad("http://a,,http://b")
	bad("http://a,")
	bad("127.0.0.1:8000")
	bad("ftp://a")
	bad("http://")
	bad("http://:80")
	bad("http://u:p@a")
	bad("http://a/?q=1")
	bad("http://a/#f")
	bad("http://a:99999999")

	// Options, after the URL.
	ok("http://a:1 models=m1|org/m-2:q4 ,https://b", "http://a:1 models=m1|org/m-2:q4", "https://b")
	ok("http://a\tmodels=m", "http://a\tmodels=m")
	badErr := func(in, want string) {
		t.Helper()
		_, err := ParseUpstreams(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseUpstreams(%q) = %v, want an error with %q", in, err, want)
		}
	}
	badErr("http://a models=", "empty model id")
	badErr("http://a models=x||y", "empty model id")
	badErr("http://a models=x|", "empty model id")
	badErr("http://a models=x|y|x", `model "x" listed twice`)
	badErr("http://a models=x models=y", "models given twice")
	badErr("http://a weight=2", `unknown option "weight"`)
	ok("http://a stream-options=off models=m", "http://a stream-options=off models=m")
	ok("http://a stream-options=on", "http://a stream-options=on")
	badErr("http://a stream-options=no", "want off or on")
	badErr("http://a stream-options=off stream-options=on", "stream-options given twice")
	if it, err := parseUpstreamItem("http://a stream-options=off"); err != nil || !it.noStreamOptions {
		t.Errorf("stream-options=off: %+v, %v", it, err)
	}
	badErr("http://a models", "not name=value")
	badErr("http://a, http://b sk-secret-0123456789", "upstream 2 of 2")
	badErr("http://a models=x\x01y", "control character")
	badErr("http://a models="+strings.Repeat("m", maxModelID+1), "over 256 bytes")
	for _, in := range []string{"http://a sk-secret-0123456789", "http://a Sk-Secret=0123456789", "http://a models"} {
		if _, err := ParseUpstreams(in); err == nil || strings.Contains(err.Error(), "ecret") {
			t.Errorf("ParseUpstreams(%q): %v, want an error not showing the option", in, err)
		}
	}
}

func TestParseAliases(t *testing.T) {
	ok := func(in string, want ...string) {
		t.Helper()
		m, err := ParseAliases(in)
		var got []string
		for k, v := range m {
			got = append(got, k+"="+v)
		}
		slices.Sort(got)
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("ParseAliases(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := func(in, want string) {
		t.Helper()
		m, err := ParseAliases(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAliases(%q) = %v, %v; want an error with %q", in, m, err, want)
		}
	}
	ok("")
	ok("  ")
	ok("gpt-4o-mini=Qwen2.5-7B-Instruct, gpt-4o = llama-3-70b", "gpt-4o-mini=Qwen2.5-7B-Instruct", "gpt-4o=llama-3-70b")
	ok("a=org/m:latest", "a=org/m:latest")
	bad("a=b,,c=d", "alias 2 of 3: want alias=model")
	bad("a", "want alias=model")
	bad("=b", "empty model id")
	bad("a=", "empty model id")
	bad("a=b,a=c", `"a" given twice`)
	bad("a=a", "names itself")
	bad("a=b,b=c", "itself an alias")
	bad("a b=c", "space")
	bad("a=b|c", "holds one of")
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

// TestNewChecksConfig: New refuses what ParseUpstreams and ParseAliases
// would, for a Config built without them.
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
