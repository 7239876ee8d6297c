//go:build !race

package mockupstream

import (
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
