package server

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/accounts"
	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/inspect"
	"github.com/authgate/authgate/internal/listen"
	"github.com/authgate/authgate/internal/openai"
)

// Routing by model and per-key model access (docs/http.md#model-routing):
// proxyStep looks inside a request's body for its model only when it must,
// because the upstreams do not all serve the same models (or there are
// aliases), or because the key_id has a model list; otherwise the body
// streams to the upstream untouched, as it always has. Every route that
// names a model passes through routeModel, the one place where a key_id's
// model list is checked; GET /v1/models and /v1/models/{id} are answered
// here from the upstreams' model lists, filtered the same way.

var (
	strModelsPath   = []byte("/v1/models")
	strModelsPrefix = []byte("/v1/models/")
	strMultipart    = []byte("multipart/")
	strOne          = []byte("1")
)

// proxyStep is Handler's step: it routes the admitted request to an
// upstream (watching the client's connection meanwhile) and returns the
// upstream's name and the model for the log.
func (g *Gateway) proxyStep(ctx *fasthttp.RequestCtx) served {
	acct, _ := ctx.UserValue(accountKey{}).(*accounts.Account)
	var sv served
	if !g.proxy.Routing() && acct.Access().Models == nil {
		// One pool and no model list: the upstream's own /v1/models is
		// the answer, and bodies stream through unread.
		sv.upstream = g.serve(ctx, "")
	} else if path := ctx.Path(); (ctx.IsGet() || ctx.IsHead()) && g.proxy.ModelsKnown() &&
		(bytes.Equal(path, strModelsPath) || bytes.HasPrefix(path, strModelsPrefix)) {
		return served{model: g.serveModels(ctx, acct, path)}
	} else {
		sv = g.routeModel(ctx, acct)
	}
	g.meter(ctx, acct, &sv)
	return sv
}

// meter reads the token usage of an upstream's response held whole (a
// stream is not metered here) and counts it under the key_id and the
// model: the one the request named, else the response's if an upstream
// lists it, else "" (docs/http.md#token-metering).
func (g *Gateway) meter(ctx *fasthttp.RequestCtx, acct *accounts.Account, sv *served) {
	if sv.upstream == "" || ctx.Response.IsBodyStream() || ctx.Response.StatusCode() != fasthttp.StatusOK {
		return
	}
	r := openai.ParseResponse(ctx.Response.Body())
	if !r.HasUsage {
		return
	}
	model := sv.model
	if model == "" && r.Model != nil {
		model, _ = g.proxy.Listed(r.Model)
	}
	sv.usage, sv.metered = r.Usage, true
	g.tokens.Add(acct.KeyID, model, int64(r.Usage.Prompt), int64(r.Usage.Completion))
}

// serve forwards ctx's request to the upstreams serving model ("" for the
// default pool), closing the client's connection gently if its body was
// left partly read.
func (g *Gateway) serve(ctx *fasthttp.RequestCtx, model string) string {
	up, bodyLeft := g.proxy.ServeModel(ctx, model)
	if bodyLeft {
		listen.CloseGently(ctx, g.cfg.WriteTimeout)
	}
	return up
}

// routeModel reads the model the request names and forwards it to the
// upstreams serving that model, if the key_id may use it.
func (g *Gateway) routeModel(ctx *fasthttp.RequestCtx, acct *accounts.Account) served {
	f := g.inspect.Model(&ctx.Request)
	if f.Body != nil {
		defer g.inspect.Release(f.Body)
	}
	if f.Status != 0 {
		ctx.SetStatusCode(f.Status)
		if f.ErrBody != nil {
			writeJSON(ctx, f.Status, f.ErrBody)
		}
		if f.Status == fasthttp.StatusServiceUnavailable {
			ctx.Response.Header.SetCanonical(strRetryAfter, strOne)
		}
		return served{}
	}
	patterns := acct.Access().Models
	if !f.HasModel {
		// A key_id limited to some models may not leave the choice to the
		// upstream's default: a body that names none is refused.
		if (patterns != nil && f.Body != nil) || !g.proxy.DefaultPool() {
			writeJSON(ctx, fasthttp.StatusBadRequest, inspect.BodyNoModel)
			return served{}
		}
		return served{upstream: g.serve(ctx, "")}
	}
	name, model, known := g.proxy.Resolve(f.Model)
	if !known || !auth.MatchAnyModel(patterns, name) {
		writeJSON(ctx, fasthttp.StatusNotFound, apierr.ModelNotFound(f.Model))
		if name == "" {
			name = string(f.Model[:min(len(f.Model), apierr.MaxShownModel)])
		}
		return served{model: shownModel(name)}
	}
	if model != name && f.Body != nil {
		// An alias: the upstream gets the model it serves. (A multipart
		// body keeps the alias: see docs/http.md#model-routing.)
		if !bytes.HasPrefix(ctx.Request.Header.ContentType(), strMultipart) {
			err := g.inspect.Rewrite(f.Body, func(dst, body []byte) []byte {
				return f.Request.AppendBody(dst, body, openai.Edit{Model: model})
			})
			if err != nil {
				writeJSON(ctx, fasthttp.StatusServiceUnavailable, inspect.BodyBusy)
				ctx.Response.Header.SetCanonical(strRetryAfter, strOne)
				return served{model: shownModel(name)}
			}
			ctx.Request.SetBodyRaw(f.Body.Bytes())
		}
	}
	up := g.serve(ctx, model)
	g.models.Count(name, ctx.Response.StatusCode(), shardOf(ctx))
	return served{upstream: up, model: shownModel(name)}
}

// serveModels answers GET /v1/models and /v1/models/{id} from the
// upstreams' model lists, filtered by the key_id's access, and returns the
// model the path names for the log ("" for the list).
func (g *Gateway) serveModels(ctx *fasthttp.RequestCtx, acct *accounts.Account, path []byte) string {
	patterns := acct.Access().Models
	if bytes.Equal(path, strModelsPath) {
		writeJSON(ctx, fasthttp.StatusOK, g.proxy.ModelListJSON(func(id string) bool { return auth.MatchAnyModel(patterns, id) }))
		return ""
	}
	id := string(path[len(strModelsPrefix):]) // ctx.Path is decoded: ids with '/' work either way
	entry, ok := g.proxy.ModelJSON(id)
	if !ok || !auth.MatchAnyModel(patterns, id) {
		writeJSON(ctx, fasthttp.StatusNotFound, apierr.ModelNotFound([]byte(id)))
	} else {
		writeJSON(ctx, fasthttp.StatusOK, entry)
	}
	return shownModel(id)
}

// shownModel is model as the access log shows it: cut to
// apierr.MaxShownModel bytes.
func shownModel(model string) string { return model[:min(len(model), apierr.MaxShownModel)] }
