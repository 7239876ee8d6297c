package proxy

import (
	"bytes"
	"crypto/tls"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/internal/relay"
	"github.com/authgate/authgate/internal/safelog"
)

// A stream the relay can take (Config.Relay) is not written by fasthttp.
// The handler returns with the response's head decided and a hijack
// handler set (hijacked), which fasthttp calls once the gateway's handler
// has added its headers and it has let go of the connection: it gives the
// head, the body's first bytes and both sockets to the relay, and
// returns, so that fasthttp releases the request context and its
// buffers. relayEnded ends the exchange as the stream ends, and hands the
// client's connection back to the server (Config.Resume), or closes it.
// The exchange stands as the response's body stream until the hijack: if
// fasthttp never calls the hijack handler (the connection failed
// meanwhile), its release of the response closes the stream, and the
// exchange ends there.
//
// fasthttp's Shutdown does not wait for hijack handlers: it stops
// counting a request when its handler returns. So the relay counts the
// stream from the moment it is chosen for it (readResponseHead reserves
// it, relay.Relay.Reserve), and a stop that waits for the relay
// (relay.Relay.Wait) waits for it too; finish gives the reservation up if
// the relay never started the stream.

const maxInitial = 16 << 10 // the most of a body's first bytes an exchange keeps buffer for

// relaySockets reports whether the stream of a request on client, from
// pc, may be relayed: both are plain sockets, and the client's a
// connection of the gateway's listener (netconn.Wrap), which is served
// by a server that keeps hijacked connections.
func relaySockets(client net.Conn, pc *upConn) bool {
	if _, ok := client.(*tls.Conn); ok {
		return false
	}
	dc := netconn.Of(client)
	if dc == nil || dc.Socket() == nil || pc.raw == nil {
		return false
	}
	switch pc.Conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// startRelay readies x, its chunked body unread, for the relay.
func (p *Proxy) startRelay(ctx *fasthttp.RequestCtx, x *exchange) {
	if x.stopWatch() { // the relay watches the client from now on
		x.finish(false)
		clientClosed(ctx)
		return
	}
	h := &ctx.Response.Header
	h.SetCanonical(strXAccelBuffering, strNo)
	x.rs.Events, x.rs.DropUsageOnly = false, false
	if p.newMeter != nil {
		if m := p.newMeter(ctx); m != nil {
			x.meter = m
			x.rs.Events = m.Events() && bytes.HasPrefix(x.resp.Header.ContentType(), strEventStream)
			x.rs.DropUsageOnly = x.rs.Events && m.DropUsageChunk()
		}
	}
	x.proxy, x.ctx = p, ctx
	ctx.Response.SetBodyStream(x, -1)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(x.hijackFn)
}

// hijacked is the hijack handler of a relayed stream: c is the client's
// connection, which fasthttp no longer serves. It runs before fasthttp
// releases the request context, which it reads for the last time.
func (x *exchange) hijacked(c net.Conn) {
	if h := x.proxy.hijackHook; h != nil {
		h()
	}
	ctx := x.ctx
	x.ctx = nil
	h := &ctx.Response.Header
	x.keepAlive = !h.ConnectionClose()
	x.head = h.AppendBytes(x.head[:0])
	if d, ok := x.meter.(interface{ Detach() }); ok {
		d.Detach()
	}
	x.hijacking = true
	ctx.Response.ResetBody() // the relay has the stream, not x
	x.hijacking = false

	conn := c
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		conn = u.UnsafeConn() // the connection beneath fasthttp's reader
	}
	x.client = conn
	keepUnread(c, conn)
	rs := &x.rs
	rs.Client, rs.Upstream = netconn.Of(conn).Socket(), x.pc.raw
	// The reader's bytes (the body's start) are copied and the reader
	// given back: the relay reads the socket itself.
	b, _ := x.pc.br.Peek(x.pc.br.Buffered())
	x.initial = append(x.initial[:0], b...)
	x.pc.dropReader()
	rs.Initial = x.initial
	rs.Head, rs.Timeout, rs.WriteTimeout = x.head, x.timeout, x.writeTimeout
	rs.Ending, rs.Done = x.endingFn, x.relayFn
	if err := x.proxy.relay.Start(rs); err != nil {
		x.relayEnded(relay.Result{Err: err})
	}
}

// keepUnread gives back to conn, to be read first when the server serves
// it again, what its server had read past the request (bytes of a
// pipelined request): hj is the hijacked connection, which reads them
// from the server's buffer.
func keepUnread(hj, conn net.Conn) {
	conn.SetReadDeadline(aLongTimeAgo)
	var (
		buf  [1024]byte
		kept []byte // given back only once read whole: conn's reads return it
	)
	for {
		n, err := hj.Read(buf[:])
		kept = append(kept, buf[:n]...)
		if n == 0 || err != nil {
			break
		}
	}
	conn.SetReadDeadline(time.Time{})
	netconn.Of(conn).Unread(kept)
}

// relayEnding meters a stream relayed whole (and so logs its request and
// releases its concurrency slot) before the client sees its end, as for
// a stream fasthttp writes: a request the client sends next finds the
// stream's tokens counted.
func (x *exchange) relayEnding(res *relay.Result) {
	if m := x.meter; m != nil {
		x.meter = nil
		m.StreamEnded(res.Usage, res.HasUsage, res.Content)
	}
}

// relayEnded ends a relayed stream's exchange, on the relay's goroutine:
// it meters the stream (and so logs the request), returns or closes the
// upstream connection, and hands the client's connection back to the
// server if its response was whole and it is kept alive, or closes it.
func (x *exchange) relayEnded(res relay.Result) {
	x.relayEnding(&res) // unless it ended whole, and was metered then
	p, client, name := x.proxy, x.client, x.up.name
	keep := res.Err == nil && x.keepAlive && p.resume != nil
	x.finish(res.Reusable)
	if keep {
		p.resume(client)
	} else {
		client.Close()
	}
	if err := res.Err; err != nil && err != relay.ErrClientGone && err != relay.ErrWriteTimeout && err != relay.ErrClosed {
		if n, ok := p.errLog.Allow(time.Now()); ok {
			p.log.Error("upstream stream failed", "upstream", name, "err", safelog.Class(err, "malformed response"), "suppressed", n)
		}
	}
}
