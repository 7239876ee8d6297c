package modelroute

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/inspect"
	"github.com/authgate/authgate/internal/openai"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/limiter/tokens"
)

var (
	strRateLimitLimitTokens  = []byte("x-ratelimit-limit-tokens")
	strRateLimitRemainTokens = []byte("x-ratelimit-remaining-tokens")
	strRateLimitResetTokens  = []byte("x-ratelimit-reset-tokens")
)

// ticket is what a read request carries to its end: its admission under
// its key_id's token limits (reserve at admission, reconcile at the end:
// docs/http.md#token-limits), and for a stream the Meter of its events.
// It is the request's proxy.Meter, so that a streamed response finishes
// the admission when it ends, however it ends; any other finishes it as
// the router returns (settle).
type ticket struct {
	meter   proxy.Meter // the stream's metering.Meter; nil for a request not streamed
	inject  bool        // the gateway asked for the stream's usage
	limited bool        // adm holds a reservation
	adm     tokens.Admission
	res     tokens.Result // the admission's, for the headers
	prompt  int64         // the prompt's upper bound
	read    bool          // the body was read: prompt is known
}

// admit decides a read request under lim (nil: no token limit): it
// returns the request's ticket (nil for one neither streamed nor
// limited), or answers 429 and reports false. keyID and model (its name
// in the metrics) are the stream's meter's; served is the model the
// upstream is asked for ("" for the default pool).
func (rt *Router) admit(ctx *fasthttp.RequestCtx, lim *tokens.Limiter, f *inspect.Found, keyID, model, served string) (*ticket, bool) {
	r := &f.Request
	if lim == nil && !r.Stream {
		return nil, true
	}
	// A stream that did not ask for its usage is asked for it, and its
	// usage chunk kept from the client; unless it asked for running usage
	// alone, which include_usage would turn on in every chunk, or an
	// upstream that may serve it refuses stream_options.
	t := &ticket{
		inject: r.Stream && !r.IncludeUsage && !r.ContinuousUsage && usagePath(ctx.Path()) && rt.Proxy.AcceptsStreamOptions(served) &&
			(lim != nil || !rt.Tokens.Off),
		prompt: int64(r.PromptBound),
		read:   f.Body != nil,
	}
	if r.Stream {
		t.meter = rt.Tokens.Stream(keyID, model, t.inject)
	}
	if lim != nil {
		n := int64(0)
		if f.Body != nil {
			out := r.MaxTokens
			if out <= 0 {
				out = rt.DefaultMaxTokens
			}
			n = t.prompt + int64(out)*int64(max(r.N, 1))
		}
		adm, res := lim.Admit(time.Now(), n)
		if !res.Allowed() {
			refuseTokens(ctx, keyID, res)
			return nil, false
		}
		t.adm, t.res, t.limited = adm, res, true
	}
	ctx.SetUserValue(streamMeterKey{}, t)
	return t, true
}

// settle meters an answer held whole, and ends t's admission unless the
// answer is a stream, whose end does (StreamEnded). Token-limited
// responses get their x-ratelimit-*-tokens headers.
func (rt *Router) settle(ctx *fasthttp.RequestCtx, t *ticket, sv *Served, keyID string) {
	rt.meterAnswer(ctx, sv, keyID, t != nil && t.limited)
	if t == nil {
		return
	}
	if t.limited {
		setTokenHeaders(ctx, t.res)
	}
	if ctx.Response.IsBodyStream() {
		return
	}
	switch {
	case sv.Metered:
		t.finish(int64(sv.Usage.Total))
	case sv.Upstream == "" || ctx.Response.StatusCode() >= 400:
		t.finish(0) // not served, or refused by the upstream
	default:
		t.finish(t.adm.Tokens()) // served without a usage: the reservation stands
	}
}

// finish ends t's admission with actual tokens; once. A nil t has none.
func (t *ticket) finish(actual int64) {
	if t != nil {
		t.adm.Finish(actual)
	}
}

// Events reports whether the stream's events are read: to reconcile a
// token-limited request, to drop an injected usage chunk, or to meter.
func (t *ticket) Events() bool {
	return t.limited || t.inject || (t.meter != nil && t.meter.Events())
}

// DropUsageChunk is the stream's meter's.
func (t *ticket) DropUsageChunk() bool { return t.meter != nil && t.meter.DropUsageChunk() }

// Estimate is the usage of a stream that reported none: a prompt token
// per four bytes of its body, and a completion token per content event
// (docs/http.md#token-metering); false if the body was not read or the
// stream is not metered.
func (t *ticket) Estimate(contentEvents int) (openai.Usage, bool) {
	if !t.read || !t.Events() { // not read, or not metered
		return openai.Usage{}, false
	}
	p := int((t.prompt + 3) / 4)
	return openai.Usage{Prompt: p, Completion: contentEvents, Total: p + contentEvents}, true
}

// StreamEnded meters the stream, by its usage or else its Estimate, and
// ends its admission with the tokens it reported, or, without a usage,
// its prompt's bound and a token per content event, at most the
// reservation (docs/http.md#token-limits).
func (t *ticket) StreamEnded(u openai.Usage, hasUsage bool, contentEvents int) {
	if t.meter != nil {
		if est, ok := t.Estimate(contentEvents); !hasUsage && ok {
			t.meter.StreamEnded(est, true, contentEvents)
		} else {
			t.meter.StreamEnded(u, hasUsage, contentEvents)
		}
	}
	if hasUsage {
		t.finish(int64(u.Total))
	} else {
		t.finish(min(t.adm.Tokens(), t.prompt+int64(contentEvents)))
	}
}

// refuseTokens answers the 429 of a request refused by a token limit, in
// OpenAI's words, with the retry time when waiting helps.
func refuseTokens(ctx *fasthttp.RequestCtx, keyID string, res tokens.Result) {
	if res.Kind == tokens.Unavailable {
		// Shared limits that cannot be decided, failure mode closed.
		apierr.Write(ctx, fasthttp.StatusServiceUnavailable, apierr.LimiterUnavailable)
		apierr.SetRetry(ctx, time.Second)
		return
	}
	msg := tokens.AppendMessage(nil, keyID, res)
	apierr.Write(ctx, fasthttp.StatusTooManyRequests, apierr.Body(string(msg), "tokens", tokens.Code(res)))
	if res.Kind == tokens.Limited {
		apierr.SetRetry(ctx, res.RetryAfter)
	}
	setTokenHeaders(ctx, res)
}

// setTokenHeaders sets the x-ratelimit-*-tokens headers of res.
func setTokenHeaders(ctx *fasthttp.RequestCtx, res tokens.Result) {
	if res.Limit <= 0 {
		return
	}
	var buf [24]byte
	h := &ctx.Response.Header
	h.SetCanonical(strRateLimitLimitTokens, strconv.AppendInt(buf[:0], res.Limit, 10))
	h.SetCanonical(strRateLimitRemainTokens, strconv.AppendInt(buf[:0], res.Remaining, 10))
	h.SetCanonical(strRateLimitResetTokens, apierr.AppendDuration(buf[:0], res.Reset))
}
