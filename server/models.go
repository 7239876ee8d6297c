package server

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/accounts"
	"github.com/authgate/authgate/internal/forwarded"
	"github.com/authgate/authgate/internal/modelroute"
	"github.com/authgate/authgate/internal/openai"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/internal/reqlog"
	"github.com/authgate/authgate/limiter/tokens"
)

// proxyStep is Handler's step: it routes the admitted request by its
// model, within its key_id's model access (modelroute,
// docs/http.md#model-routing), and returns what the log says of it.
func (g *Gateway) proxyStep(ctx *fasthttp.RequestCtx) served {
	acct, _ := ctx.UserValue(accountKey{}).(*accounts.Account)
	var lim *tokens.Limiter
	if acct.TokenLimited() {
		lim = acct.Tokens
	}
	return served(g.router.Serve(ctx, acct.KeyID, acct.Access().Models, lim))
}

// streamMeter is the proxy's Config.NewMeter: the Meter the router made
// for the request, else one under its key_id and no model
// (docs/http.md#token-metering), within a streamLog that writes the
// request's access-log line when the stream ends, with its tokens.
func (g *Gateway) streamMeter(ctx *fasthttp.RequestCtx) proxy.Meter {
	acct, _ := ctx.UserValue(accountKey{}).(*accounts.Account)
	m, ok := modelroute.StreamMeter(ctx)
	if !ok {
		m = g.tokens.Stream(acct.KeyID, "", false)
	}
	sl := &streamLog{Meter: m, g: g, ctx: ctx}
	ctx.SetUserValue(streamLogKey{}, sl)
	return sl
}

// estimator is a Meter that estimates a stream's usage (modelroute's).
type estimator interface {
	Estimate(contentEvents int) (openai.Usage, bool)
}

// streamLogKey is the user-value key of a request's streamLog.
type streamLogKey struct{}

// streamLog is a stream's Meter that also writes the request's log line
// (and metrics) as the stream ends, with its tokens and whole duration:
// the handler hands it the line's fields (hold) as it returns, and the
// stream ends after, as fasthttp writes it, while the request is ctx's.
type streamLog struct {
	proxy.Meter
	g     *Gateway
	ctx   *fasthttp.RequestCtx // nil once detached: view holds what is logged of it
	view  reqlog.View
	buf   []byte // view's method and path
	held  bool
	acct  *accounts.Account
	start time.Time
	rid   [forwarded.MaxRequestID]byte
	ridN  int
	sv    served
	slot  accounts.Slot // the request's concurrency slot
}

// takeStreamLog returns and forgets ctx's streamed response's streamLog.
func takeStreamLog(ctx *fasthttp.RequestCtx) *streamLog {
	sl, _ := ctx.UserValue(streamLogKey{}).(*streamLog)
	if sl == nil {
		return nil
	}
	ctx.RemoveUserValue(streamLogKey{})
	if !ctx.Response.IsBodyStream() {
		return nil // the stream was not handed to fasthttp: log now
	}
	return sl
}

// hold keeps the request's log line's fields and slot for StreamEnded.
func (sl *streamLog) hold(acct *accounts.Account, start time.Time, requestID []byte, sv served, slot accounts.Slot) {
	sl.acct, sl.start, sl.sv, sl.held, sl.slot = acct, start, sv, true, slot
	sl.ridN = copy(sl.rid[:], requestID)
}

// Detach keeps what the log line needs of the request: the proxy relays
// the stream outside the server, which releases the request's RequestCtx
// before the stream ends.
func (sl *streamLog) Detach() {
	sl.view = reqlog.Of(sl.ctx, true, sl.g.fullLog(), sl.g.cfg.TrustedProxies)
	sl.buf = sl.view.Keep(sl.buf)
	sl.ctx = nil
}

// StreamEnded meters the stream, then writes its log line.
func (sl *streamLog) StreamEnded(u openai.Usage, hasUsage bool, contentEvents int) {
	sl.Meter.StreamEnded(u, hasUsage, contentEvents)
	if !sl.held {
		return // the handler logged the request itself
	}
	sl.held = false
	sl.slot.Release()
	if hasUsage {
		sl.sv.Usage, sl.sv.Metered = u, true
	} else if e, ok := sl.Meter.(estimator); ok {
		sl.sv.Usage, sl.sv.Metered = e.Estimate(contentEvents)
		sl.sv.Estimated = sl.sv.Metered
	}
	if sl.ctx == nil {
		sl.g.logView(sl.acct, sl.start, sl.rid[:sl.ridN], sl.sv, &sl.view)
		return
	}
	sl.g.logRequest(sl.ctx, sl.acct, sl.start, sl.rid[:sl.ridN], sl.sv)
}
