package server

import (
	"bytes"
	"encoding/json"
	"net"
	"time"

	"github.com/authgate/authgate/internal/accounts"
	"github.com/authgate/authgate/internal/adminguard"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/internal/safelog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// The admin listener's routes (docs/operations.md#admin-and-metrics).
var (
	strMetricsPath = []byte("/metrics")
	strLimitsPath  = []byte("/limits")
	strPprofPath   = []byte("/debug/pprof")
	strPprofPrefix = []byte("/debug/pprof/")

	strContentTypeMetrics = []byte("text/plain; version=0.0.4; charset=utf-8")
	strNotFound           = []byte("not found\n")
	strMethodNotAllowed   = []byte("method not allowed\n")
	strAllowGetHead       = []byte("GET, HEAD")
	strUnauthorized       = []byte("unauthorized: send Authorization: Bearer <admin token>\n")
	strHostNotAllowed     = []byte("Host not allowed\n")
	strWWWAuthenticate    = []byte("WWW-Authenticate")
	strBearer             = []byte("Bearer")
)

// AdminHandler is the admin listener's fasthttp.RequestHandler:
//
//	GET /metrics        Prometheus metrics (names begin with authgate_)
//	GET /limits         every key_id in use: {"KEY_ID": {"requests_last_minute": n, "rate_limit": N, "in_flight": n}, …}
//	/debug/pprof/…      Go's profiles (net/http/pprof's endpoints)
//
// and 404 for anything else. It shows key_ids, never a key. Access:
//
//   - With Config.AdminToken set, every request must carry
//     "Authorization: Bearer <AdminToken>"; one without it, or with another
//     token, is answered 401 (WWW-Authenticate: Bearer). With the token,
//     any Host is answered and pprof is served on any address.
//   - Without a token (none configured), a request is answered only if its
//     Host is localhost or an IP literal (v4, or v6 in brackets), with any
//     port, or if it has no Host and came to a loopback address; any
//     other Host is answered 403. A page in a browser can reach a loopback
//     listener only through a DNS name it rebinds to 127.0.0.1, so it is
//     refused, while Prometheus scraping by IP address is not.
//   - Without a token, pprof is served only on connections that arrived
//     on a loopback address (or a Unix socket); elsewhere /debug/pprof/
//     answers 404, as if absent.
//
// Without a token, /metrics and /limits are open to anyone who can reach
// the listener by IP address: bind it to loopback (the CLI's default) or a
// private network, or set AdminToken.
func (g *Gateway) AdminHandler(ctx *fasthttp.RequestCtx) {
	trusted, status := g.admin.guard.Admit(ctx)
	switch status {
	case fasthttp.StatusUnauthorized:
		ctx.Response.Header.SetCanonical(strWWWAuthenticate, strBearer)
		writeText(ctx, status, strUnauthorized)
		return
	case fasthttp.StatusForbidden:
		writeText(ctx, status, strHostNotAllowed)
		return
	}
	path := ctx.Path()
	switch {
	case bytes.Equal(path, strMetricsPath):
		if !getOrHead(ctx) {
			return
		}
		ctx.Response.Header.SetContentTypeBytes(strContentTypeMetrics)
		g.WriteMetrics(ctx)
	case bytes.Equal(path, strLimitsPath):
		if !getOrHead(ctx) {
			return
		}
		b, err := json.Marshal(g.Limits(time.Now()))
		if err != nil {
			panic("BUG: cannot encode the limits snapshot: " + err.Error())
		}
		ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
		ctx.Response.SetBodyRaw(append(b, '\n'))
	case (bytes.Equal(path, strPprofPath) || bytes.HasPrefix(path, strPprofPrefix)) && !trusted && !adminguard.LocalIsLoopback(ctx):
		writeText(ctx, fasthttp.StatusNotFound, strNotFound)
	case bytes.Equal(path, strPprofPath):
		ctx.Redirect("/debug/pprof/", fasthttp.StatusMovedPermanently)
	case bytes.HasPrefix(path, strPprofPrefix):
		pprofhandler.PprofHandler(ctx)
	default:
		writeText(ctx, fasthttp.StatusNotFound, strNotFound)
	}
}

// getOrHead reports whether ctx's method is GET or HEAD; if not, it
// answers 405.
func getOrHead(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	writeText(ctx, fasthttp.StatusMethodNotAllowed, strMethodNotAllowed)
	ctx.Response.Header.SetBytesKV(strAllow, strAllowGetHead)
	return false
}

var strAllow = []byte("Allow")

// KeyLimit is one key_id's entry in the /limits snapshot.
type KeyLimit = accounts.KeyLimit

// Limits returns the limiter state at now of every key_id that has any (a
// key_id gets it on its first request), by key_id. The map is the
// caller's.
func (g *Gateway) Limits(now time.Time) map[string]KeyLimit { return g.accounts.Limits(now) }

// adminServer is the admin listener's state: its token, and its servers
// (stopped by Close).
type adminServer struct {
	guard adminguard.Guard // Config.AdminToken
	adminguard.Servers
}

// ServeAdmin serves AdminHandler on ln, with a server of its own, until
// Shutdown or Close (which stop it without waiting for admin requests in
// flight, a long profile say). It may be called for several listeners. It
// returns nil after Shutdown or Close, else the listener's error; called
// after them, it closes ln and returns nil at once.
func (g *Gateway) ServeAdmin(ln net.Listener) error {
	return g.admin.Serve(ln, func() *fasthttp.Server {
		return &fasthttp.Server{
			Handler:               g.AdminHandler,
			Name:                  "authgate-admin",
			NoDefaultServerHeader: true,
			ReadTimeout:           g.cfg.ReadTimeout,
			IdleTimeout:           g.cfg.IdleTimeout,
			CloseOnShutdown:       true,
			SecureErrorLogMessage: true,
			Logger:                &safelog.FasthttpLogger{L: g.log, Ignore: proxy.ErrClientLeft},
		}
	})
}
