package server

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/accounts"
	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/forwarded"
	"github.com/authgate/authgate/internal/listen"
	"github.com/authgate/authgate/internal/modelroute"
	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/internal/reqlog"
	"github.com/authgate/authgate/limiter"
	"github.com/authgate/authgate/logsink"
)

var (
	strHealthz = []byte("/healthz")
	strReadyz  = []byte("/readyz")
)

// Handler is the gateway's fasthttp.RequestHandler: probes, then
// authenticate → rate-limit → proxy → log. It is exactly Wrap around the
// gateway's proxy. Without Config.Upstreams every admitted request is
// answered 502 with code "upstream_unavailable".
func (g *Gateway) Handler(ctx *fasthttp.RequestCtx) {
	g.handle(ctx, g.proxyStep)
}

// Wrap returns next behind the gateway's request path, the same as Handler
// but calling next where Handler proxies:
//
//   - GET or HEAD /healthz and /readyz are answered by the gateway (see
//     Ready) and never reach next;
//   - a request without a valid key is answered 401, and one over its
//     key_id's limit 429 (with Retry-After, retry-after-ms and the
//     x-ratelimit-* headers); neither reaches next;
//   - an admitted request reaches next with its X-Request-Id request header
//     set (the client's, if acceptable, else a new random one), and KeyID
//     and KeySettings give its key_id and settings; the Authorization
//     header is left as it is;
//   - on a server with StreamRequestBody (as the gateway's own), a body
//     declared over Config.MaxRequestBody is answered 413 before next (a
//     chunked one is next's to limit), and a request answered while its
//     body is still coming (refused, or next did not read it) closes its
//     connection; next may still read the body whole with ctx.PostBody;
//   - after next returns, the response gets X-Request-Id and the
//     x-ratelimit-* headers, and the status next set is the one counted in
//     the metrics and written to the access log (the latency is that of
//     next's return: a body stream next set is not waited for).
//
// The returned handler is safe for concurrent use if next is, and
// allocates nothing per request of its own. Wrap may be called any number
// of times; all the handlers it returns share the gateway's keys, limits,
// metrics and access log. Call Gateway.Close once the server running them
// has stopped, to flush the log.
func (g *Gateway) Wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	step := func(ctx *fasthttp.RequestCtx) served {
		next(ctx)
		return served{}
	}
	return func(ctx *fasthttp.RequestCtx) { g.handle(ctx, step) }
}

// accountKey is the user-value key of the request's *accounts.Account.
type accountKey struct{}

// KeyID returns the key_id of the request that a handler wrapped by
// Gateway.Wrap (or served by Gateway.Handler) is serving: the key's
// key_id, or KeyIDAuthDisabled or KeyIDNoKeysConfigured when no key is
// checked. It returns "" for a request that did not pass through a
// gateway. The string is the gateway's own; it stays valid after the
// request.
func KeyID(ctx *fasthttp.RequestCtx) string {
	if a, ok := ctx.UserValue(accountKey{}).(*accounts.Account); ok {
		return a.KeyID
	}
	return ""
}

// KeySettings returns the settings in force for the request's key_id (see
// KeyID): RPM is the key_id's limit now, its rpm= setting or else
// Config.DefaultRPM, so it is never 0 for a rate-limited key_id. It returns
// the zero Settings when the request is not rate-limited (authentication
// disabled, fail-open) or did not pass through a gateway.
func KeySettings(ctx *fasthttp.RequestCtx) auth.Settings {
	if a, ok := ctx.UserValue(accountKey{}).(*accounts.Account); ok {
		return a.Settings()
	}
	return auth.Settings{}
}

// handle is the request path of Handler and Wrap: probes, authenticate →
// limit → step → rate headers → log. step serves an admitted request and
// returns what the log says of it.
func (g *Gateway) handle(ctx *fasthttp.RequestCtx, step func(*fasthttp.RequestCtx) served) {
	g.decide(ctx, step)
	if g.draining.Load() {
		ctx.SetConnectionClose()
	}
	// A body left unread (the request refused, or step did not read it)
	// closes the connection rather than be read to find the next request.
	if proxy.BodyPending(&ctx.Request) {
		listen.CloseGently(ctx, g.cfg.WriteTimeout)
	}
}

// decide is handle but for the drain: it answers the request itself or
// through step.
func (g *Gateway) decide(ctx *fasthttp.RequestCtx, step func(*fasthttp.RequestCtx) served) {
	if ctx.IsGet() || ctx.IsHead() {
		path := ctx.Request.Header.RequestURI()
		if bytes.Equal(path, strHealthz) {
			writeText(ctx, fasthttp.StatusOK, strOK)
			return
		}
		if bytes.Equal(path, strReadyz) {
			if ready, body := g.readiness(); ready {
				writeText(ctx, fasthttp.StatusOK, body)
			} else {
				writeText(ctx, fasthttp.StatusServiceUnavailable, body)
			}
			return
		}
	}

	start := time.Now()
	var rid [forwarded.MaxRequestID]byte
	requestID := forwarded.RequestID(&ctx.Request.Header, &rid)

	var (
		acct *accounts.Account
		res  limiter.Result
	)
	if x := takeExpected(ctx, false); x != nil {
		acct, res = x.acct, x.res // decided on the head (expectContinue)
	} else {
		if bodyTooLarge(&ctx.Request, g.cfg.MaxRequestBody) {
			apierr.Write(ctx, fasthttp.StatusRequestEntityTooLarge, apierr.TooLarge)
			ctx.SetConnectionClose()
			ctx.Response.Header.SetCanonical(strXRequestID, requestID)
			g.logRequest(ctx, g.none, start, requestID, served{})
			return
		}
		if acct, res = g.admit(ctx, start, requestID); acct == nil {
			return
		}
	}
	ctx.Request.Header.SetCanonical(strXRequestID, requestID)
	// No allocation: the key is a zero-size value and acct a pointer, both
	// held in their interfaces directly, and the user values keep their
	// capacity across the requests of a pooled RequestCtx.
	ctx.SetUserValue(accountKey{}, acct)
	slot, code, busy := acct.Acquire()
	if busy != nil {
		apierr.Write(ctx, code, busy)
		ctx.Response.Header.SetCanonical(strXRequestID, requestID)
		g.logRequest(ctx, acct, start, requestID, served{})
		return
	}
	sv := step(ctx)
	if acct.Window != nil {
		apierr.SetRateHeaders(ctx, res.Limit, res.Remaining, res.Reset)
	}
	ctx.Response.Header.SetCanonical(strXRequestID, requestID)
	if sl := takeStreamLog(ctx); sl != nil {
		sl.hold(acct, start, requestID, sv, slot) // logged and released as the stream ends
		return
	}
	slot.Release()
	g.logRequest(ctx, acct, start, requestID, sv)
}

// admission is a request's account and limiter result.
type admission struct {
	acct *accounts.Account
	res  limiter.Result
}

// takeExpected returns the admission expectContinue decided for ctx's
// request, if any, and forgets it: so that the request is authenticated
// and counted once. fasthttp calls the handler, or the error handler if
// the body fails, right after "100 Continue", or closes the connection;
// so what the connection holds is its current request's. A request
// without the expectation (which the proxy only removes later) never
// takes one.
func takeExpected(ctx *fasthttp.RequestCtx, reset bool) *expected {
	dc := netconn.Of(ctx.Conn())
	if dc == nil {
		return nil
	}
	x, _ := dc.Slot.(*expected)
	if x == nil {
		return nil
	}
	dc.Slot = nil
	if !reset && !ctx.Request.MayContinue() {
		return nil
	}
	return x
}

// verdict is what the request path decided for a request's key.
type verdict uint8

const (
	admitted     verdict = iota
	unauthorized         // 401: no valid key
	limited              // 429: over the key_id's limit
	limiterDown          // 503: the Limiter could not decide, failure mode closed
)

// decision is decideKey's answer: the verdict, the account of a request
// with a valid key, the reason of a 401, the limiter's result.
type decision struct {
	verdict verdict
	reason  auth.Reason
	acct    *accounts.Account // nil for a 401 but an expired key's
	res     limiter.Result
	body401 []byte // a 401's body
}

// decideKey authenticates a request whose Authorization header value is
// authz and applies its key_id's limit to it at now, counting a 401 by
// reason and a 429 in the metrics (shard picks their counters). It is the
// request path's one decision, which every adapter (Handler and Wrap,
// WrapHTTP, expectContinue) renders in its own types.
func (g *Gateway) decideKey(authz []byte, now time.Time, shard uint32) decision {
	acct, reason := g.authorize(authz)
	if acct == nil {
		g.metrics.unauthorized[reason].Inc(shard)
		return decision{verdict: unauthorized, reason: reason, body401: body401[reason]}
	}
	if k := acct.Access(); k.Expired(now) {
		g.metrics.expired.Inc(shard)
		return decision{verdict: unauthorized, acct: acct, body401: k.Body401}
	}
	d := decision{acct: acct}
	if acct.Window == nil {
		return d // not rate-limited
	}
	var ok bool
	d.res, ok = g.allow(acct, now, shard)
	switch {
	case !ok:
		d.verdict = limiterDown
	case !d.res.Allowed:
		acct.Stats.RateLimited(shard)
		d.verdict = limited
	}
	return d
}

// admit is decideKey for ctx's request: it returns the account and the
// limiter's result of an admitted request; any other it answers (401, 429,
// or the limiter's 503), logs, and returns a nil account.
func (g *Gateway) admit(ctx *fasthttp.RequestCtx, start time.Time, requestID []byte) (*accounts.Account, limiter.Result) {
	d := g.decideKey(ctx.Request.Header.PeekBytes(strAuthorization), start, shardOf(ctx))
	switch d.verdict {
	case admitted:
		return d.acct, d.res
	case unauthorized:
		apierr.Write(ctx, fasthttp.StatusUnauthorized, d.body401)
		if d.acct == nil {
			d.acct = g.none
		}
	case limiterDown:
		apierr.Write(ctx, fasthttp.StatusServiceUnavailable, apierr.LimiterUnavailable)
	case limited:
		apierr.WriteRateLimited(ctx, d.acct.Body429, d.res.Reset)
		apierr.SetRateHeaders(ctx, d.res.Limit, d.res.Remaining, d.res.Reset)
	}
	ctx.Response.Header.SetCanonical(strXRequestID, requestID)
	g.logRequest(ctx, d.acct, start, requestID, served{})
	return nil, d.res
}

// authorize returns the account of a request with Authorization header
// value authz, or nil and the reason it is refused.
func (g *Gateway) authorize(authz []byte) (*accounts.Account, auth.Reason) {
	if g.open != nil {
		return g.open, auth.ReasonOK
	}
	snap := g.keys.Load()
	if snap.Keys.Len() == 0 && g.cfg.AllowNoKeys {
		return g.failOpen, auth.ReasonOK
	}
	key, reason := auth.ParseAuthorization(authz)
	if reason == auth.ReasonOK {
		if id := snap.Keys.Lookup(key); id != nil {
			return snap.Account(&g.accounts, id), auth.ReasonOK
		}
		reason = auth.ReasonUnknown
	}
	return nil, reason
}

func writeText(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(strTextPlain)
	ctx.Response.SetBodyRaw(body)
}

// served is what the access log says of how a request was served.
type served modelroute.Served

// logRequest counts the request in acct's metrics and the latency
// histogram, and writes its access-log line.
func (g *Gateway) logRequest(ctx *fasthttp.RequestCtx, acct *accounts.Account, start time.Time, requestID []byte, sv served) {
	g.logRequestAs(ctx, acct, start, requestID, sv, true)
}

// logRequestAs is logRequest, logging the method and path as unknown ("-")
// unless known is set.
func (g *Gateway) logRequestAs(ctx *fasthttp.RequestCtx, acct *accounts.Account, start time.Time, requestID []byte, sv served, known bool) {
	v := reqlog.Of(ctx, known, g.fullLog(), g.cfg.TrustedProxies)
	g.logView(acct, start, requestID, sv, &v)
}

// fullLog reports whether the access log writes a line's every field
// (JSON lines, or an AccessLogger), not only the text line's.
func (g *Gateway) fullLog() bool {
	return g.accessLog != nil && (g.cfg.AccessLogFormat == logsink.FormatJSON || g.sink == nil)
}

// logView counts a request in acct's metrics and the latency histogram,
// and writes its access-log line.
func (g *Gateway) logView(acct *accounts.Account, start time.Time, requestID []byte, sv served, v *reqlog.View) {
	latency := time.Since(start)
	acct.Stats.Request(v.Status, v.Shard)
	g.metrics.latency.Observe(latency, v.Shard)
	if g.accessLog != nil {
		g.writeLog(v.Entry(acct.KeyID, start, latency, modelroute.Served(sv), g.fullLog()), requestID)
	}
}

// expected is a request that expectContinue admitted on its head: its
// admission, kept for the handler, and what the error handler logs if the
// body never comes (fasthttp then resets the request, user values
// included).
type expected struct {
	admission
	method, path []byte
}
