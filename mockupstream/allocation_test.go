//go:build !race

package mockupstream

import (
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestAllocationModels(t *testing.T) {
	m := New(Config{})
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/v1/models")
	n := testing.AllocsPerRun(100, func() {
		ctx.Response.Reset()
		m.Handler(&ctx)
	})
	if n != 0 {
		t.Fatalf("GET /v1/models: %v allocations per request, want 0", n)
	}
}

// TestAllocationChat: a chat completion, non-streamed, allocates nothing
// once the parsers are warm: the mock is the load benchmark's upstream.
func TestAllocationChat(t *testing.T) {
	m := New(Config{})
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v1/chat/completions")
	ctx.Request.SetBodyString(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16,"stream":false}`)
	run := func() {
		ctx.Response.Reset()
		m.Handler(&ctx)
		if ctx.Response.StatusCode() != 200 || !bytes.Contains(ctx.Response.Body(), []byte(`"model":"gpt-4o-mini"`)) {
			t.Fatalf("status %d, body %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("POST /v1/chat/completions: %v allocations per request, want 0", n)
	}
}

// TestAllocationChatModels: checking the model named against the models
// served (Config.Models) allocates nothing either.
func TestAllocationChatModels(t *testing.T) {
	m := New(Config{Models: []string{"a", "gpt-4o-mini"}})
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v1/chat/completions")
	ctx.Request.SetBodyString(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}`)
	run := func() {
		ctx.Response.Reset()
		m.Handler(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("status %d, body %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("POST /v1/chat/completions: %v allocations per request, want 0", n)
	}
}
