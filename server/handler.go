package server

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/limiter"
	"github.com/authgate/authgate/logsink"
)

// KeyIDUserValue is the fasthttp user-value key under which a wrapped
// handler finds the authenticated key_id (a string).
const KeyIDUserValue = "authgate.key_id"

var (
	strHealthz = []byte("/healthz")
	strReadyz  = []byte("/readyz")
)

// Handler is the gateway's fasthttp.RequestHandler: probes, then
// authenticate → rate-limit → proxy → log.
func (g *Gateway) Handler(ctx *fasthttp.RequestCtx) {
	g.handle(ctx)
	if g.draining.Load() {
		ctx.SetConnectionClose()
	}
}

func (g *Gateway) handle(ctx *fasthttp.RequestCtx) {
	if ctx.IsGet() || ctx.IsHead() {
		path := ctx.Request.Header.RequestURI()
		if bytes.Equal(path, strHealthz) {
			writeText(ctx, fasthttp.StatusOK, strOK)
			return
		}
		if bytes.Equal(path, strReadyz) {
			if g.Ready() {
				writeText(ctx, fasthttp.StatusOK, strOK)
			} else {
				writeText(ctx, fasthttp.StatusServiceUnavailable, strNotReady)
			}
			return
		}
	}

	start := time.Now()
	var rid [maxRequestID]byte
	requestID := requestID(&ctx.Request.Header, &rid)

	acct := g.authenticate(ctx)
	if acct == nil {
		ctx.Response.Header.SetBytesKV(strXRequestID, requestID)
		g.logRequest(ctx, g.none, start, requestID, "")
		return
	}
	if acct.window != nil {
		res := acct.window.AllowAt(start)
		if !res.Allowed {
			acct.stats.rateLimited(shardOf(ctx))
			writeRateLimited(ctx, acct, res)
			setRateHeaders(ctx, res)
			ctx.Response.Header.SetBytesKV(strXRequestID, requestID)
			g.logRequest(ctx, acct, start, requestID, "")
			return
		}
		up := g.proxy.serve(ctx, requestID, startWatch(ctx.Conn(), g.raws.get(ctx.Conn())))
		setRateHeaders(ctx, res)
		g.logRequest(ctx, acct, start, requestID, up)
		return
	}
	up := g.proxy.serve(ctx, requestID, startWatch(ctx.Conn(), g.raws.get(ctx.Conn())))
	g.logRequest(ctx, acct, start, requestID, up)
}

// authenticate returns the request's account, or nil after writing a 401.
func (g *Gateway) authenticate(ctx *fasthttp.RequestCtx) *account {
	if g.open != nil {
		return g.open
	}
	snap := g.keys.Load()
	if snap.keys.Len() == 0 && g.cfg.AllowNoKeys {
		return g.failOpen
	}
	key, reason := auth.ParseAuthorization(ctx.Request.Header.PeekBytes(strAuthorization))
	if reason == auth.ReasonOK {
		if id := snap.keys.Lookup(key); id != nil {
			return snap.account(&g.accounts, id)
		}
		reason = auth.ReasonUnknown
	}
	g.metrics.unauthorized[reason].inc(shardOf(ctx))
	ctx.Response.SetStatusCode(fasthttp.StatusUnauthorized)
	ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
	ctx.Response.SetBodyRaw(body401[reason])
	return nil
}

// writeRateLimited writes acct's precomputed 429 and its retry headers.
func writeRateLimited(ctx *fasthttp.RequestCtx, acct *account, res limiter.Result) {
	ctx.Response.SetStatusCode(fasthttp.StatusTooManyRequests)
	ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
	ctx.Response.SetBodyRaw(acct.body429)
	var buf [24]byte
	ms := int64((res.Reset + time.Millisecond - 1) / time.Millisecond)
	ctx.Response.Header.SetBytesKV(strRetryAfterMs, strconv.AppendInt(buf[:0], ms, 10))
	ctx.Response.Header.SetBytesKV(strRetryAfter, strconv.AppendInt(buf[:0], retryAfterSeconds(res.Reset), 10))
}

// setRateHeaders adds OpenAI's x-ratelimit-*-requests headers for res.
func setRateHeaders(ctx *fasthttp.RequestCtx, res limiter.Result) {
	var buf [24]byte
	h := &ctx.Response.Header
	h.SetBytesKV(strRateLimitLimit, strconv.AppendInt(buf[:0], int64(res.Limit), 10))
	h.SetBytesKV(strRateLimitRemaining, strconv.AppendInt(buf[:0], int64(res.Remaining), 10))
	h.SetBytesKV(strRateLimitReset, appendDuration(buf[:0], res.Reset))
}

func writeText(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(strTextPlain)
	ctx.Response.SetBodyRaw(body)
}

// maxRequestID is the longest X-Request-Id passed on as it is.
const maxRequestID = 128

// requestID returns, in buf, the request's X-Request-Id if it is acceptable
// (1–128 visible ASCII bytes, no separators), else a new random 128-bit hex
// id. It is a copy, so that the proxy's rewriting of the request headers
// cannot change it.
func requestID(h *fasthttp.RequestHeader, buf *[maxRequestID]byte) []byte {
	if id := h.PeekBytes(strXRequestID); validRequestID(id) {
		return buf[:copy(buf[:], id)]
	}
	var raw [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		raw[i] = byte(a >> (8 * i))
		raw[8+i] = byte(b >> (8 * i))
	}
	return buf[:hex.Encode(buf[:], raw[:])]
}

// validRequestID reports whether a client-sent request id may be passed on
// and logged as it is.
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestID {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '|' {
			return false
		}
	}
	return true
}

// logRequest counts the request in acct's metrics and the latency
// histogram, and writes its access-log line. upstream names the upstream
// that served it ("" if none did).
func (g *Gateway) logRequest(ctx *fasthttp.RequestCtx, acct *account, start time.Time, requestID []byte, upstream string) {
	latency := time.Since(start)
	shard := shardOf(ctx)
	acct.stats.request(ctx.Response.StatusCode(), shard)
	g.metrics.latency.observe(latency, shard)
	if g.sink == nil {
		return
	}
	e := logsink.Entry{
		Time:      start,
		KeyID:     acct.keyID,
		Method:    ctx.Method(),
		Path:      ctx.Request.Header.RequestURI(),
		Status:    ctx.Response.StatusCode(),
		RequestID: requestID,
	}
	if g.cfg.AccessLogFormat == logsink.FormatJSON {
		e.Latency = latency
		e.BytesIn = int64(len(ctx.Request.Body()))
		if ctx.Response.IsBodyStream() {
			// Body() would read the whole stream here, before the client
			// got any of it: log the announced length (-1 if unknown).
			e.BytesOut = int64(ctx.Response.Header.ContentLength())
		} else {
			e.BytesOut = int64(len(ctx.Response.Body()))
		}
		e.Upstream = upstream
	}
	if err := g.sink.Write(&e); err != nil {
		g.log.Error("access log write failed", "err", err)
	}
}
