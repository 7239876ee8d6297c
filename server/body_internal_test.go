package server

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestWrapSeesWholeBody: Wrap's handler, served by the gateway's own
// fasthttp server (as serve builds it: bodies streamed), still gets the
// whole body from ctx.PostBody, sent with a Content-Length or chunked; a
// refused request never reaches it.
func TestWrapSeesWholeBody(t *testing.T) {
	g := newTestGateway(t, false)
	type seen struct {
		n   int
		sum [32]byte
	}
	got := make(chan seen, 4)
	g.srv.Handler = g.Wrap(func(ctx *fasthttp.RequestCtx) {
		b := ctx.PostBody()
		got <- seen{len(b), sha256.Sum256(b)}
		ctx.SetBodyString("ok")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(func() { g.srv.Shutdown() })
	url := "http://" + ln.Addr().String() + "/v1/files"

	payload := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{5}).Read(payload)
	want := seen{len(payload), sha256.Sum256(payload)}
	check := func(name string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Errorf("%s: the handler got %d bytes that differ from the %d sent", name, s.n, len(payload))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the handler was not called", name)
		}
	}
	post := func(name, authz string, body io.Reader, size int64) int {
		t.Helper()
		req, err := http.NewRequest("POST", url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		req.Header.Set("Authorization", authz)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("Content-Length", "Bearer "+testKeyHigh, strings.NewReader(string(payload)), int64(len(payload))); s != 200 {
		t.Fatalf("Content-Length: status %d", s)
	}
	check("Content-Length")
	// A reader of unknown length: net/http sends it chunked.
	if s := post("chunked", "Bearer "+testKeyHigh, io.MultiReader(strings.NewReader(string(payload))), -1); s != 200 {
		t.Fatalf("chunked: status %d", s)
	}
	check("chunked")
	if s := post("unknown key", "Bearer sk-unknown-0123456789abcdef", strings.NewReader(string(payload)), int64(len(payload))); s != 401 {
		t.Fatalf("unknown key: status %d", s)
	}
	select {
	case s := <-got:
		t.Fatalf("a refused request reached the handler with %d bytes", s.n)
	default:
	}
}
