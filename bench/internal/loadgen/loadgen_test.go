package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/bench/internal/rawhttp"
)

// The requests the tests send: a small chat completion, and a streamed one.
const (
	chatPath   = "/v1/chat/completions"
	chatBody   = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}]}`
	streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}]}`
)

// serve runs h on a loopback port until the test ends and returns the
// address.
func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	return ln.Addr().String()
}

func TestOpenLoop(t *testing.T) {
	addr := serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(401) })
	ol := &OpenLoop{Addr: addr, Request: rawhttp.Request(addr, chatPath, "sk-unknown-0123456789abcdef", chatBody), Conns: 4,
		Rate: 2000, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, Status: 401}
	res := ol.Run(context.Background())
	if res.Errors != 0 || res.FirstErr != "" {
		t.Fatalf("errors: %d, %s", res.Errors, res.FirstErr)
	}
	// 2000/s for 200 ms: 400 responses, whatever the machine's load.
	if res.Requests < 396 || res.Requests > 404 {
		t.Errorf("%d responses recorded, want 400", res.Requests)
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max {
		t.Errorf("quantiles out of order: p50 %v p99 %v max %v", res.P50, res.P99, res.Max)
	}

	// A wrong status is an error.
	ol.Status = 200
	if res := ol.Run(context.Background()); res.Errors == 0 {
		t.Error("status 401 where 200 is wanted: no error counted")
	}
}

// TestOpenLoopQueueing checks that the wait behind a slow server counts:
// a server taking 5 ms a request, one connection, 400 requests a second
// asked for (one every 2.5 ms), so each request waits longer than the one
// before; latency from the write alone would stay near 5 ms.
func TestOpenLoopQueueing(t *testing.T) {
	// The slow server is the scenario; the check below is a lower bound,
	// which a loaded machine only makes easier to meet.
	addr := serve(t, func(ctx *fasthttp.RequestCtx) { time.Sleep(5 * time.Millisecond) })
	ol := &OpenLoop{Addr: addr, Request: rawhttp.Request(addr, chatPath, "", chatBody), Conns: 1,
		Rate: 400, Duration: 200 * time.Millisecond, Status: 200}
	res := ol.Run(context.Background())
	if res.Errors != 0 {
		t.Fatalf("errors: %d, %s", res.Errors, res.FirstErr)
	}
	// The 80th request is due at 200 ms and answered at about 400 ms.
	if res.Max < 100_000 {
		t.Errorf("max latency %.0f µs, want over 100 ms of queueing", res.Max)
	}
}

func TestRunStreams(t *testing.T) {
	const gap = 5 * time.Millisecond
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for i := range 3 {
				if i > 0 {
					time.Sleep(gap) // the stream's pace, the scenario; its check is a lower bound
				}
				fmt.Fprintf(w, "data: {\"i\":%d}\n\n", i)
				w.Flush()
			}
		})
	})
	res, err := RunStreams(context.Background(), addr, rawhttp.Request(addr, chatPath, "", streamBody), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Streams < 1 || res.Events != 3 {
		t.Errorf("%d streams of %d events, want at least 1 of 3", res.Streams, res.Events)
	}
	// The largest gap, not the median: a gap is measured between two
	// reads, and a read that comes late (a loaded machine) shortens the
	// gap after it; the largest is the server's pace or more unless every
	// read of every stream came later than the one before.
	if res.Gap99 < float64(gap/time.Microsecond) || res.Gap50 <= 0 || res.TTFE50 <= 0 {
		t.Errorf("first event %v µs, gaps %v µs (median) and %v µs (p99); want a first event and gaps up to at least %v",
			res.TTFE50, res.Gap50, res.Gap99, gap)
	}

	// A response that is not a stream is an error.
	plain := serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("{}") })
	if _, err := RunStreams(context.Background(), plain, rawhttp.Request(plain, chatPath, "", streamBody), time.Millisecond); err == nil {
		t.Error("a plain response: no error")
	}
}
