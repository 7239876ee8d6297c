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
)

// proxyStep is Handler's step: it routes the admitted request to an
// upstream (watching the client's connection meanwhile) and returns the
// upstream's name for the log.
func (g *Gateway) proxyStep(ctx *fasthttp.RequestCtx) string {
	acct, _ := ctx.UserValue(accountKey{}).(*accounts.Account)
	if !g.proxy.Routing() && acct.Access().Models == nil {
		// One pool and no model list: the upstream's own /v1/models is
		// the answer, and bodies stream through unread.
		return g.serve(ctx, "")
	}
	if (ctx.IsGet() || ctx.IsHead()) && g.proxy.ModelsKnown() {
		path := ctx.Path()
		if bytes.Equal(path, strModelsPath) || bytes.HasPrefix(path, strModelsPrefix) {
			g.serveModels(ctx, acct, path)
			return ""
		}
	}
	return g.routeModel(ctx, acct)
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
func (g *Gateway) routeModel(ctx *fasthttp.RequestCtx, acct *accounts.Account) string {
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
			ctx.Response.Header.SetCanonical(strRetryAfter, []byte("1"))
		}
		return ""
	}
	patterns := acct.Access().Models
	if !f.HasModel {
		// A key_id limited to some models may not leave the choice to the
		// upstream's default: a body that names none is refused.
		if (patterns != nil && f.Body != nil) || !g.proxy.DefaultPool() {
			writeJSON(ctx, fasthttp.StatusBadRequest, inspect.BodyNoModel)
			return ""
		}
		return g.serve(ctx, "")
	}
	setRequestModel(ctx, f.Model)
	served, known := g.proxy.Resolve(f.Model)
	if !known || !auth.MatchAnyModel(patterns, string(f.Model)) {
		writeJSON(ctx, fasthttp.StatusNotFound, apierr.ModelNotFound(f.Model))
		return ""
	}
	if served != string(f.Model) && f.Body != nil {
		// An alias: the upstream gets the model it serves. (A multipart
		// body keeps the alias: see docs/http.md#model-routing.)
		if !bytes.HasPrefix(ctx.Request.Header.ContentType(), strMultipart) {
			rewritten, err := openai.RewriteModel(nil, f.Body.Bytes(), served)
			if err != nil {
				writeJSON(ctx, fasthttp.StatusBadRequest, inspect.BodyBadJSON)
				return ""
			}
			ctx.Request.SetBodyRaw(rewritten)
		}
	}
	up := g.serve(ctx, served)
	g.models.Count(string(f.Model), ctx.Response.StatusCode(), shardOf(ctx))
	return up
}

// serveModels answers GET /v1/models and /v1/models/{id} from the
// upstreams' model lists, filtered by the key_id's access.
func (g *Gateway) serveModels(ctx *fasthttp.RequestCtx, acct *accounts.Account, path []byte) {
	patterns := acct.Access().Models
	if bytes.Equal(path, strModelsPath) {
		writeJSON(ctx, fasthttp.StatusOK, g.proxy.ModelListJSON(func(id string) bool { return auth.MatchAnyModel(patterns, id) }))
		return
	}
	id := path[len(strModelsPrefix):] // ctx.Path is decoded: ids with '/' work either way
	setRequestModel(ctx, id)
	entry, ok := g.proxy.ModelJSON(string(id))
	if !ok || !auth.MatchAnyModel(patterns, string(id)) {
		writeJSON(ctx, fasthttp.StatusNotFound, apierr.ModelNotFound(id))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, entry)
}

// modelKey is the user-value key of the model the request named, for the
// access log.
type modelKey struct{}

// setRequestModel records the model ctx's request named (cut to
// apierr.MaxShownModel bytes) for its access-log line.
func setRequestModel(ctx *fasthttp.RequestCtx, model []byte) {
	if len(model) > apierr.MaxShownModel {
		model = model[:apierr.MaxShownModel]
	}
	ctx.SetUserValue(modelKey{}, string(model))
}

// requestModelName is the model recorded for ctx's request, "" if none.
func requestModelName(ctx *fasthttp.RequestCtx) string {
	m, _ := ctx.UserValue(modelKey{}).(string)
	return m
}
