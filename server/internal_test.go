package server

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/authgate/authgate/internal/accounts"
	"github.com/authgate/authgate/internal/forwarded"
	"github.com/valyala/fasthttp"
)

func TestParseErrorResponse(t *testing.T) {
	f := func(err error, want int) {
		t.Helper()
		got, body := parseErrorResponse(err)
		if got != want || !strings.HasPrefix(string(body), `{"error":{"message":"`) {
			t.Errorf("parseErrorResponse(%v) = %d %s, want %d", err, got, body, want)
		}
	}
	f(fasthttp.ErrBodyTooLarge, 413)
	f(&fasthttp.ErrSmallBuffer{}, 431)
	f(os.ErrDeadlineExceeded, 408)
	f(errors.New("cannot parse request line"), 400)
}

func TestValidRequestID(t *testing.T) {
	f := func(id string, want bool) {
		t.Helper()
		if got := forwarded.ValidRequestID([]byte(id)); got != want {
			t.Errorf("forwarded.ValidRequestID(%q) = %v", id, got)
		}
	}
	f("req-123", true)
	f("0f8e2c9a-1b2c-4d5e-8f90-a1b2c3d4e5f6", true)
	f(strings.Repeat("a", 128), true)
	f(strings.Repeat("a", 129), false)
	f("", false)
	f("a b", false)
	f("a|b", false)
	f("a\"b", false)
	f("é", false)
}

// TestUnknownKeysAllocateNoState: rejected keys never create limiter state;
// a key_id's state is created on its first request only.
func TestUnknownKeysAllocateNoState(t *testing.T) {
	g := newTestGateway(t, false)
	count := func() int {
		n := 0
		g.accounts.Each(func(*accounts.Account) { n++ })
		return n
	}
	for i := 0; i < 1000; i++ {
		ctx := newCtx(fmt.Sprintf("Bearer sk-guess-%016d", i))
		if s := serveOnce(g, ctx, nil); s != 401 {
			t.Fatalf("status %d", s)
		}
	}
	if n := count(); n != 0 {
		t.Fatalf("%d accounts after 1000 unknown keys, want 0", n)
	}
	if s := serveOnce(g, newCtx("Bearer "+testKeyHigh), nil); s != 200 {
		t.Fatalf("status %d", s)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d accounts after one known key_id's request, want 1", n)
	}
}

// TestHeaderNamesCanonical: every header name the request path sets with
// SetCanonical is already in the form fasthttp's normalizing gives it, so
// that skipping the normalizing changes nothing on the wire.
func TestHeaderNamesCanonical(t *testing.T) {
	for _, k := range [][]byte{
		strAuthorization, strXRequestID,
	} {
		if !isCanonical(k) {
			t.Errorf("%q is not in the form fasthttp's normalizing gives it", k)
		}
		var req fasthttp.RequestHeader
		req.SetCanonical(k, []byte("1"))
		if got := req.PeekBytes(k); string(got) != "1" {
			t.Errorf("%q set with SetCanonical on a request: Peek gives %q", k, got)
		}
	}
	if isCanonical([]byte("x-request-id")) {
		t.Error("a lower-case name passed as canonical")
	}
}

// isCanonical reports whether fasthttp writes the header name k as it is
// when it is set with SetBytesKV, which normalizes it.
func isCanonical(k []byte) bool {
	var h fasthttp.ResponseHeader
	h.SetBytesKV(k, []byte("1"))
	return strings.Contains(string(h.Header()), "\r\n"+string(k)+": 1\r\n")
}
