// Package reqlog reads what the metrics and the access log say of a
// request and its response (a View), from fasthttp's request context or
// net/http's request, and makes the access-log entry of it. A View may
// outlive its request (Keep): a relayed stream is logged after the server
// has released its request context.
package reqlog

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/forwarded"
	"github.com/authgate/authgate/internal/modelroute"
	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/logsink"
)

// View is what the metrics and the access log read of a request and its
// response.
type View struct {
	Status       int
	Shard        uint32 // the metrics' shard: the connection's
	Method, Path []byte // nil: unknown, logged "-"
	// Only for a full line (Of's full): sizes and the client.
	BytesIn, BytesOut int64
	Client            netip.Addr
}

// Of returns ctx's View; its slices are ctx's. known: the method and path
// are known; full: the line writes every field (JSON lines, or an
// AccessLogger), not only the text line's, and the client address is
// read behind trusted.
func Of(ctx *fasthttp.RequestCtx, known, full bool, trusted forwarded.Trusted) View {
	v := View{Status: ctx.Response.StatusCode(), Shard: uint32(ctx.ConnID())}
	if known {
		v.Method, v.Path = ctx.Method(), ctx.Request.Header.RequestURI()
	}
	if full {
		v.BytesIn = BytesIn(&ctx.Request)
		if ctx.Response.IsBodyStream() {
			// Body() would read the whole stream here, before the client
			// got any of it: log the announced length (-1 if unknown).
			v.BytesOut = int64(ctx.Response.Header.ContentLength())
		} else {
			v.BytesOut = int64(len(ctx.Response.Body()))
		}
		v.Client = forwarded.ClientAddr(ctx, trusted)
	}
	return v
}

// OfHTTP is Of for a net/http request answered status with bytesOut
// bytes; its slices are r's.
func OfHTTP(r *http.Request, status int, shard uint32, bytesOut int64, full bool, trusted forwarded.Trusted) View {
	v := View{Status: status, Shard: shard, Method: netconn.S2B(r.Method), Path: netconn.S2B(r.RequestURI)}
	if len(v.Path) == 0 {
		v.Path = netconn.S2B(r.URL.RequestURI()) // a request built for a client
	}
	if full {
		v.BytesIn, v.BytesOut = r.ContentLength, bytesOut
		v.Client = forwarded.ClientAddrHTTP(r, trusted)
	}
	return v
}

// Keep copies v's method and path into buf (grown as needed) and points v
// at the copies: v then outlives its request. It returns buf.
func (v *View) Keep(buf []byte) []byte {
	buf = append(append(buf[:0], v.Method...), v.Path...)
	n := len(v.Method)
	if v.Method != nil {
		v.Method = buf[:n:n]
	}
	if v.Path != nil {
		v.Path = buf[n:]
	}
	return buf
}

// Entry returns v's access-log entry: of a request of keyID's that
// started at start and took latency, served as sv; with only the text
// line's fields unless full.
func (v *View) Entry(keyID string, start time.Time, latency time.Duration, sv modelroute.Served, full bool) logsink.Entry {
	e := logsink.Entry{Time: start, KeyID: keyID, Status: v.Status, Method: v.Method, Path: v.Path}
	if !full {
		return e
	}
	e.Latency = latency
	e.BytesIn, e.BytesOut = v.BytesIn, v.BytesOut
	e.Upstream = sv.Upstream
	e.Client = v.Client
	e.Model = netconn.S2B(sv.Model) // an immutable string's bytes
	if sv.Metered {
		e.Metered, e.PromptTokens, e.CompletionTokens = true, int64(sv.Usage.Prompt), int64(sv.Usage.Completion)
		e.UsageEstimated = sv.Estimated
	}
	return e
}

// BytesIn returns the size of req's body for the access log without
// reading a streamed body: its length if it is in memory, else its
// Content-Length (-1 for a chunked body not streamed to its end; the proxy
// records the length of one it has).
func BytesIn(req *fasthttp.Request) int64 {
	if !req.IsBodyStream() {
		if n := len(req.Body()); n > 0 {
			return int64(n)
		}
	}
	return max(int64(req.Header.ContentLength()), -1)
}
