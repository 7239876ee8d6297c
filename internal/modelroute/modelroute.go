// Package modelroute routes an admitted request by the model it names,
// with the key_id's model access checked in one place
// (docs/http.md#model-routing), and meters what comes back
// (docs/http.md#token-metering). A Router looks inside a request's body
// for its model only when it must: the upstreams do not all serve the
// same models (or there are aliases), or the key_id has a model list;
// otherwise the body streams to the upstream untouched. Every route that
// names a model passes through Serve's one check of the key_id's
// patterns; GET /v1/models and /v1/models/{id} are answered from the
// upstreams' model lists, filtered the same way.
package modelroute

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/inspect"
	"github.com/authgate/authgate/internal/listen"
	"github.com/authgate/authgate/internal/metering"
	"github.com/authgate/authgate/internal/openai"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/internal/stats"
	"github.com/authgate/authgate/limiter/tokens"
)

var (
	strModelsPath      = []byte("/v1/models")
	strModelsPrefix    = []byte("/v1/models/")
	strMultipart       = []byte("multipart/")
	strChatCompletions = []byte("/v1/chat/completions")
	strCompletions     = []byte("/v1/completions")
	strRetryAfter      = []byte("Retry-After")
	strOne             = []byte("1")
)

// Router routes requests to the upstreams of a Proxy. Its fields are set
// once, before use; its methods are safe for concurrent use.
type Router struct {
	Proxy   *proxy.Proxy
	Inspect *inspect.Budget
	Tokens  *metering.Counter
	Models  *stats.ByName // requests by model and status
	// WriteTimeout bounds the gentle close of a connection whose body was
	// left partly read.
	WriteTimeout time.Duration
	// DefaultMaxTokens is the output a token-limited request reserves
	// when it sets no max_tokens (docs/http.md#token-limits).
	DefaultMaxTokens int
}

// Served is how Serve served a request, for the access log: the upstream
// that served it, the model it named ("" for none), and the tokens the
// upstream reported for a response held whole, if Metered.
type Served struct {
	Upstream, Model string
	Usage           openai.Usage
	Metered         bool
	Estimated       bool // Usage was counted by the gateway, not reported
}

// Serve answers ctx's request of key_id keyID, whose model list is
// patterns (nil: every model) and whose token limits are lim (nil: none):
// it routes it to an upstream, watching the client's connection
// meanwhile, or answers it itself.
func (rt *Router) Serve(ctx *fasthttp.RequestCtx, keyID string, patterns []string, lim *tokens.Limiter) Served {
	var sv Served
	if !rt.Proxy.Routing() && patterns == nil && lim == nil {
		// One pool and no model list: the upstream's own /v1/models is
		// the answer, and bodies stream through unread.
		sv.Upstream = rt.serve(ctx, "")
	} else if path := ctx.Path(); (ctx.IsGet() || ctx.IsHead()) && rt.Proxy.ModelsKnown() &&
		(bytes.Equal(path, strModelsPath) || bytes.HasPrefix(path, strModelsPrefix)) {
		return Served{Model: rt.serveModels(ctx, patterns, path)}
	} else {
		return rt.route(ctx, keyID, patterns, lim)
	}
	rt.meterAnswer(ctx, &sv, keyID, false)
	return sv
}

// meterAnswer meters an upstream's 200 held whole, unless metering is off
// and no token limit (limited) needs it.
func (rt *Router) meterAnswer(ctx *fasthttp.RequestCtx, sv *Served, keyID string, limited bool) {
	if rt.Tokens.Off && !limited {
		return
	}
	if sv.Upstream != "" && !ctx.Response.IsBodyStream() && ctx.Response.StatusCode() == fasthttp.StatusOK {
		sv.Usage, sv.Metered = rt.Tokens.Response(keyID, sv.Model, ctx.Response.Body())
	}
}

// streamMeterKey is the user-value key of the proxy.Meter route made for a
// streamed request.
type streamMeterKey struct{}

// StreamMeter returns the proxy.Meter Serve made for ctx's request, if it
// read the request and it asked for a stream.
func StreamMeter(ctx *fasthttp.RequestCtx) (proxy.Meter, bool) {
	m, ok := ctx.UserValue(streamMeterKey{}).(proxy.Meter)
	return m, ok
}

// serve forwards ctx's request to the upstreams serving model ("" for the
// default pool), closing the client's connection gently if its body was
// left partly read.
func (rt *Router) serve(ctx *fasthttp.RequestCtx, model string) string {
	up, bodyLeft := rt.Proxy.ServeModel(ctx, model)
	if bodyLeft {
		listen.CloseGently(ctx, rt.WriteTimeout)
	}
	return up
}

// route reads the model the request names and forwards it to the
// upstreams serving that model, if the key_id may use it.
func (rt *Router) route(ctx *fasthttp.RequestCtx, keyID string, patterns []string, lim *tokens.Limiter) Served {
	f := rt.Inspect.Model(&ctx.Request)
	if f.Body != nil {
		defer rt.Inspect.Release(f.Body)
	}
	if f.Status != 0 {
		ctx.SetStatusCode(f.Status)
		if f.ErrBody != nil {
			apierr.Write(ctx, f.Status, f.ErrBody)
		}
		if f.Status == fasthttp.StatusServiceUnavailable {
			ctx.Response.Header.SetCanonical(strRetryAfter, strOne)
		}
		return Served{}
	}
	if !f.HasModel {
		// A key_id limited to some models may not leave the choice to the
		// upstream's default: a body that names none is refused.
		if (patterns != nil && f.Body != nil) || !rt.Proxy.DefaultPool() {
			apierr.Write(ctx, fasthttp.StatusBadRequest, inspect.BodyNoModel)
			return Served{}
		}
		t, ok := rt.admit(ctx, lim, &f, keyID, "", "")
		if !ok || !rt.edit(ctx, &f, t, openai.Edit{IncludeUsage: t != nil && t.inject}) {
			return Served{}
		}
		sv := Served{Upstream: rt.serve(ctx, "")}
		rt.settle(ctx, t, &sv, keyID)
		return sv
	}
	name, model, known := rt.Proxy.Resolve(f.Model)
	if !known || !auth.MatchAnyModel(patterns, name) {
		apierr.Write(ctx, fasthttp.StatusNotFound, apierr.ModelNotFound(f.Model))
		if name == "" {
			name = string(f.Model[:min(len(f.Model), apierr.MaxShownModel)])
		}
		return Served{Model: shown(name)}
	}
	t, ok := rt.admit(ctx, lim, &f, keyID, shown(name), model)
	if !ok {
		return Served{Model: shown(name)}
	}
	edit := openai.Edit{IncludeUsage: t != nil && t.inject}
	if model != name {
		edit.Model = model // an alias: the upstream gets the model it serves
	}
	if !rt.edit(ctx, &f, t, edit) {
		return Served{Model: shown(name)}
	}
	sv := Served{Upstream: rt.serve(ctx, model), Model: shown(name)}
	rt.Models.Count(name, ctx.Response.StatusCode(), uint32(ctx.ConnID()))
	rt.settle(ctx, t, &sv, keyID)
	return sv
}

// edit applies e to the request's body, if it changes anything: the
// model an alias stands for, the stream's include_usage. A multipart body
// is left as it is (docs/http.md#model-routing). It reports false, having
// answered 503 and ended t's admission, when no buffer is free for the
// new body.
func (rt *Router) edit(ctx *fasthttp.RequestCtx, f *inspect.Found, t *ticket, e openai.Edit) bool {
	if (e.Model == "" && !e.IncludeUsage) || f.Body == nil || bytes.HasPrefix(ctx.Request.Header.ContentType(), strMultipart) {
		return true
	}
	r := &f.Request
	err := rt.Inspect.Rewrite(f.Body, func(dst, body []byte) []byte {
		return r.AppendBody(dst, body, e)
	})
	if err != nil {
		apierr.Write(ctx, fasthttp.StatusServiceUnavailable, inspect.BodyBusy)
		ctx.Response.Header.SetCanonical(strRetryAfter, strOne)
		t.finish(0)
		return false
	}
	ctx.Request.SetBodyRaw(f.Body.Bytes())
	return true
}

// serveModels answers GET /v1/models and /v1/models/{id} from the
// upstreams' model lists, filtered by the key_id's patterns, and returns
// the model the path names for the log ("" for the list).
func (rt *Router) serveModels(ctx *fasthttp.RequestCtx, patterns []string, path []byte) string {
	if bytes.Equal(path, strModelsPath) {
		apierr.Write(ctx, fasthttp.StatusOK, rt.Proxy.ModelListJSON(func(id string) bool { return auth.MatchAnyModel(patterns, id) }))
		return ""
	}
	id := string(path[len(strModelsPrefix):]) // ctx.Path is decoded: ids with '/' work either way
	entry, ok := rt.Proxy.ModelJSON(id)
	if !ok || !auth.MatchAnyModel(patterns, id) {
		apierr.Write(ctx, fasthttp.StatusNotFound, apierr.ModelNotFound([]byte(id)))
	} else {
		apierr.Write(ctx, fasthttp.StatusOK, entry)
	}
	return shown(id)
}

// usagePath reports whether a stream of path ends with the usage chunk
// include_usage asks for: chat completions and completions.
func usagePath(path []byte) bool {
	return bytes.Equal(path, strChatCompletions) || bytes.Equal(path, strCompletions)
}

// shown is model as the access log shows it: cut to apierr.MaxShownModel
// bytes.
func shown(model string) string { return model[:min(len(model), apierr.MaxShownModel)] }
