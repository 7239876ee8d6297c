package listen

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestCloseGentlyWritesResponse: a response answered by CloseGently is the
// one the handler set, byte for byte as fasthttp would have written it, and
// the connection then ends with FIN, not a reset, while the client is
// still sending.
func TestCloseGentlyWritesResponse(t *testing.T) {
	srv := &fasthttp.Server{StreamRequestBody: true, Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(418)
		ctx.SetContentType("text/plain")
		ctx.SetBodyString("teapot")
		CloseGently(ctx, 5*time.Second)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n%s", strings.Repeat("z", 200<<10))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 418 || string(body) != "teapot" || !resp.Close || resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("status %d, body %q (%v), Connection: close %v, Content-Type %q", resp.StatusCode, body, err, resp.Close, resp.Header.Get("Content-Type"))
	}
	if b, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the response: %q, %v; want EOF", b, err)
	}
}
