package inspect

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// request returns a POST with body, streamed as the gateway's server
// gives it when stream is set, else in memory.
func request(body string, stream bool) *fasthttp.Request {
	req := &fasthttp.Request{}
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if stream {
		req.SetBodyStream(strings.NewReader(body), len(body))
	} else {
		req.SetBodyString(body)
	}
	return req
}

// TestReadBounds: a body over MaxBody is refused, bodies held at once
// never reserve more than the total, and Release gives it all back.
func TestReadBounds(t *testing.T) {
	for _, stream := range []bool{false, true} {
		b := NewBudget(100, 150)
		if _, err := b.Read(request(strings.Repeat("x", 101), stream)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("stream %v: a body of 101 bytes with a bound of 100: %v, want ErrTooLarge", stream, err)
		}
		first, err := b.Read(request(strings.Repeat("a", 100), stream))
		if err != nil || string(first.Bytes()) != strings.Repeat("a", 100) {
			t.Fatalf("stream %v: first body: %v, %q", stream, err, first.Bytes())
		}
		held := b.InUse()
		if held != 100 { // the body's length, announced: nothing more to see its end
			t.Fatalf("stream %v: in use %d with a body of 100 bytes", stream, held)
		}
		if _, err := b.Read(request(strings.Repeat("b", 60), stream)); !errors.Is(err, ErrBusy) {
			t.Fatalf("stream %v: 100 + 60 bytes in a budget of 150: %v, want ErrBusy", stream, err)
		}
		if b.InUse() != held {
			t.Fatalf("stream %v: in use %d after a refusal, want %d", stream, b.InUse(), held)
		}
		b.Release(first)
		if b.InUse() != 0 {
			t.Fatalf("stream %v: in use %d after Release, want 0", stream, b.InUse())
		}
	}
}

// TestRewrite: a rewrite reserves its buffer beside the body it replaces,
// is refused with the body unchanged when the budget has no room for it,
// and Release returns both.
func TestRewrite(t *testing.T) {
	const body = `{"model":"mini","messages":[]}`
	b := NewBudget(100, 200)
	bd, err := b.Read(request(body, true))
	if err != nil {
		t.Fatal(err)
	}
	grow := func(dst, src []byte) []byte {
		dst = append(dst, src[:10]...)
		dst = append(dst, "gpt-4o-mini"...)
		return append(dst, src[14:]...)
	}
	if err := b.Rewrite(bd, grow); err != nil {
		t.Fatal(err)
	}
	if got, want := string(bd.Bytes()), `{"model":"gpt-4o-mini","messages":[]}`; got != want {
		t.Fatalf("rewritten body %s, want %s", got, want)
	}
	if b.InUse() < int64(len(body)+len(bd.Bytes())) {
		t.Fatalf("in use %d after a rewrite, want at least both buffers, %d", b.InUse(), len(body)+len(bd.Bytes()))
	}
	// The next rewrite needs more than the budget's total.
	before := bytes.Clone(bd.Bytes())
	huge := func(dst, src []byte) []byte { return append(dst, bytes.Repeat(src, 8)...) }
	if err := b.Rewrite(bd, huge); !errors.Is(err, ErrBusy) {
		t.Fatalf("a rewrite over the budget: %v, want ErrBusy", err)
	}
	if !bytes.Equal(bd.Bytes(), before) {
		t.Fatalf("a refused rewrite changed the body to %s", bd.Bytes())
	}
	b.Release(bd)
	if b.InUse() != 0 {
		t.Fatalf("in use %d after Release, want 0", b.InUse())
	}
}
