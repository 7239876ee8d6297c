package safelog

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

type classed struct{ inner error }

func (c classed) Error() string    { return "wrapper: " + c.inner.Error() }
func (c classed) ErrClass() string { return "classed: " + Class(c.inner, "inner") }

func TestClass(t *testing.T) {
	secret := "sk-secret-0123456789abcdef"
	parse := func(raw string) error {
		var h fasthttp.RequestHeader
		return h.Read(bufio.NewReader(strings.NewReader(raw)))
	}
	f := func(err error, want string) {
		t.Helper()
		got := Class(err, "other")
		if got != want {
			t.Errorf("Class(%v) = %q, want %q", err, got, want)
		}
		if strings.Contains(got, "secret") {
			t.Errorf("Class(%v) shows the secret: %q", err, got)
		}
	}
	f(nil, "")
	f(parse("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+secret+"\x01\r\n\r\n"), "other")
	f(parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), fasthttp.ErrDuplicateContentLength.Error())
	f(fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), "connection closed in the middle of a message")
	f(io.EOF, "connection closed")
	f(net.ErrClosed, "connection closed")
	f(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "connection reset by peer")
	f(&net.DNSError{Err: "no such host " + secret, Name: "up"}, "DNS lookup failed")
	f(os.ErrDeadlineExceeded, "timeout")
	f(fasthttp.ErrTimeout, "timeout")
	f(fasthttp.ErrDialTimeout, "cannot connect: timeout")
	f(tls.RecordHeaderError{Msg: secret}, "TLS: not a TLS record")
	f(fmt.Errorf("%w: %s", Fixed("a fixed failure"), secret), "a fixed failure")
	f(fmt.Errorf("x: %w", classed{errors.New(secret)}), "classed: inner")
	f(errors.New(secret), "other")
}

func TestThrottle(t *testing.T) {
	var th Throttle
	base := time.Unix(1_700_000_000, 0)
	if n, ok := th.Allow(base); !ok || n != 0 {
		t.Fatalf("first event: %d %v", n, ok)
	}
	for i := 1; i <= 3; i++ {
		if _, ok := th.Allow(base.Add(time.Duration(i) * time.Second)); ok {
			t.Fatalf("event %d let through within the interval", i)
		}
	}
	if n, ok := th.Allow(base.Add(Interval)); !ok || n != 3 {
		t.Fatalf("after the interval: %d suppressed, ok %v; want 3, true", n, ok)
	}
}
