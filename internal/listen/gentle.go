package listen

import (
	"bufio"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// lingerTime and lingerBytes bound what CloseGently reads after the
// response.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// CloseGently makes ctx's response close the connection, for a request
// answered while its body may still be coming. Closing at once, with the
// body's bytes arriving unread, would make the kernel reset the
// connection, and a client still sending could lose the response. So,
// unless the response is streamed, the response is written from fasthttp's
// hijack goroutine, which then ends the gateway's side (FIN, or TLS
// close_notify) and waits lingerTime before it closes the
// connection, as net/http (closeWriteAndWait) and nginx (lingering_close)
// do: a client reading while it sends has the response by then. Meanwhile
// it drops up to lingerBytes of what the client sends, so that a client
// that reads only once it has sent a body of moderate size gets the
// response too. Nothing of it reaches the upstream. The hijack allocates;
// this is not the path of a request without a body.
func CloseGently(ctx *fasthttp.RequestCtx, writeTimeout time.Duration) {
	ctx.SetConnectionClose()
	if ctx.Response.IsBodyStream() || ctx.Hijacked() {
		return
	}
	// Hijacking with the response left to fasthttp would not do: a
	// response with "Connection: close" closes the connection before the
	// hijack handler runs.
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer c.Close() // the server keeps hijacked connections open (KeepHijackedConns)
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		w := bufio.NewWriterSize(c, 4<<10)
		if ctx.Response.Write(w) != nil || w.Flush() != nil {
			return
		}
		conn := c
		if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
			conn = u.UnsafeConn() // fasthttp's hijackConn hides CloseWrite
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		deadline := time.Now().Add(lingerTime)
		c.SetReadDeadline(deadline)
		buf := make([]byte, 16<<10)
		for n := 0; n < lingerBytes; {
			k, err := c.Read(buf)
			if err != nil {
				return // the client closed too, or the time is up
			}
			n += k
		}
		// Enough read: let the rest wait in the socket's buffer until the
		// time is up, so that the reset that then comes finds the response
		// read.
		time.Sleep(time.Until(deadline))
	})
}
