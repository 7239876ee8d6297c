package mockupstream

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

const benchChatBody = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}]}`

// benchHandler calls h directly on one RequestCtx per goroutine, as the
// fasthttp server would, without the network.
func benchHandler(b *testing.B, h fasthttp.RequestHandler, method, uri, body string) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(uri)
		ctx.Request.SetBodyString(body)
		for pb.Next() {
			ctx.Response.Reset()
			h(&ctx)
			if ctx.Response.StatusCode() != fasthttp.StatusOK {
				b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
	})
}

// benchServer sends requests to h through a real fasthttp.Server and
// fasthttp.Client over an in-memory listener.
func benchServer(b *testing.B, h fasthttp.RequestHandler, method, uri, body string) {
	ln := fasthttputil.NewInmemoryListener()
	s := &fasthttp.Server{Handler: h}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() {
		_ = s.Shutdown()
		<-served
	}()
	c := &fasthttp.Client{
		Dial:                func(string) (net.Conn, error) { return ln.Dial() },
		MaxConnsPerHost:     1024,
		MaxIdleConnDuration: 0,
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(method)
		req.SetRequestURI("http://mock" + uri)
		req.SetBodyString(body)
		for pb.Next() {
			if err := c.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode() != fasthttp.StatusOK {
				b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
			}
		}
	})
}

// bareHandler is the baseline: the least a fasthttp handler can do.
func bareHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"ok":true}`)
}

func BenchmarkHandlerChatCompletion(b *testing.B) {
	benchHandler(b, New(Config{}).Handler, "POST", "/v1/chat/completions", benchChatBody)
}

func BenchmarkHandlerModels(b *testing.B) {
	benchHandler(b, New(Config{}).Handler, "GET", "/v1/models", "")
}

func BenchmarkHandlerEmbeddings(b *testing.B) {
	benchHandler(b, New(Config{}).Handler, "POST", "/v1/embeddings", `{"model":"e","input":["hello","world"]}`)
}

func BenchmarkHandlerBare(b *testing.B) {
	benchHandler(b, bareHandler, "POST", "/v1/chat/completions", benchChatBody)
}

func BenchmarkServerChatCompletion(b *testing.B) {
	benchServer(b, New(Config{}).Handler, "POST", "/v1/chat/completions", benchChatBody)
}

func BenchmarkServerBare(b *testing.B) {
	benchServer(b, bareHandler, "POST", "/v1/chat/completions", benchChatBody)
}
