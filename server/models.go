package server

import (
	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/accounts"
	"github.com/authgate/authgate/internal/modelroute"
	"github.com/authgate/authgate/internal/proxy"
)

// proxyStep is Handler's step: it routes the admitted request by its
// model, within its key_id's model access (modelroute,
// docs/http.md#model-routing), and returns what the log says of it.
func (g *Gateway) proxyStep(ctx *fasthttp.RequestCtx) served {
	acct, _ := ctx.UserValue(accountKey{}).(*accounts.Account)
	return served(g.router.Serve(ctx, acct.KeyID, acct.Access().Models))
}

// streamMeter is the proxy's Config.NewMeter: the Meter the router made
// for the request, else one under its key_id and no model
// (docs/http.md#token-metering).
func (g *Gateway) streamMeter(ctx *fasthttp.RequestCtx) proxy.Meter {
	if m, ok := modelroute.StreamMeter(ctx); ok {
		return m
	}
	acct, _ := ctx.UserValue(accountKey{}).(*accounts.Account)
	return g.tokens.Stream(acct.KeyID, "", false)
}
