package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// The admin listener's routes (shared/SPEC.md section 6).
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
	strLocalhost          = []byte("localhost")
)

// AdminHandler is the admin listener's fasthttp.RequestHandler:
//
//	GET /metrics        Prometheus metrics (names begin with authgate_)
//	GET /limits         every key_id in use: {"KEY_ID": {"requests_last_minute": n, "rate_limit": N}, …}
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
	trusted := g.adminTokenPresented(ctx)
	if g.admin.token != nil && !trusted {
		ctx.Response.Header.SetCanonical(strWWWAuthenticate, strBearer)
		writeText(ctx, fasthttp.StatusUnauthorized, strUnauthorized)
		return
	}
	if !trusted && !adminHostAllowed(ctx) {
		writeText(ctx, fasthttp.StatusForbidden, strHostNotAllowed)
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
	case (bytes.Equal(path, strPprofPath) || bytes.HasPrefix(path, strPprofPrefix)) && !trusted && !localIsLoopback(ctx):
		writeText(ctx, fasthttp.StatusNotFound, strNotFound)
	case bytes.Equal(path, strPprofPath):
		ctx.Redirect("/debug/pprof/", fasthttp.StatusMovedPermanently)
	case bytes.HasPrefix(path, strPprofPrefix):
		pprofhandler.PprofHandler(ctx)
	default:
		writeText(ctx, fasthttp.StatusNotFound, strNotFound)
	}
}

// adminTokenPresented reports whether Config.AdminToken is set and ctx's
// Authorization header is "Bearer <AdminToken>" (the scheme in any letter
// case). The token is compared by its SHA-256 digest in constant time, so
// that neither its bytes nor its length show in the time taken.
func (g *Gateway) adminTokenPresented(ctx *fasthttp.RequestCtx) bool {
	if g.admin.token == nil {
		return false
	}
	tok, ok := bearerToken(ctx.Request.Header.PeekBytes(strAuthorization))
	if !ok {
		return false
	}
	sum := sha256.Sum256(tok)
	return subtle.ConstantTimeCompare(sum[:], g.admin.token[:]) == 1
}

// bearerToken returns the token of an Authorization header value
// "Bearer <token>": the scheme in any letter case, then spaces or tabs,
// then the token (outer spaces and tabs ignored). It reports false for any
// other value, a bare token included. tok is a subslice of h.
func bearerToken(h []byte) (tok []byte, ok bool) {
	v := trimOWS(h)
	if len(v) <= len(strBearer) || !bytes.EqualFold(v[:len(strBearer)], strBearer) || !isOWS(v[len(strBearer)]) {
		return nil, false
	}
	tok = trimOWS(v[len(strBearer):])
	return tok, len(tok) > 0
}

// isOWS reports whether c is HTTP optional whitespace: a space or a tab.
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS returns b without leading and trailing spaces and tabs.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// adminHostAllowed reports whether ctx's Host header names no host that
// DNS rebinding could point at this listener: localhost (in any letter
// case) or an IP literal, each with an optional port. A request without a
// Host (HTTP/1.0) is allowed only on a loopback connection.
func adminHostAllowed(ctx *fasthttp.RequestCtx) bool {
	host := ctx.Request.Header.Host()
	if len(host) == 0 {
		return localIsLoopback(ctx)
	}
	var name, port []byte
	if host[0] == '[' {
		end := bytes.IndexByte(host, ']')
		if end < 0 {
			return false
		}
		name, port = host[1:end], host[end+1:]
		ip, err := netip.ParseAddr(string(name))
		if err != nil || !ip.Is6() {
			return false
		}
	} else {
		name, port = host, nil
		if i := bytes.IndexByte(host, ':'); i >= 0 {
			name, port = host[:i], host[i:]
		}
		if !bytes.EqualFold(name, strLocalhost) {
			ip, err := netip.ParseAddr(string(name))
			if err != nil || !ip.Is4() {
				return false
			}
		}
	}
	if len(port) == 0 {
		return true
	}
	if port[0] != ':' {
		return false
	}
	for _, c := range port[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// localIsLoopback reports whether ctx's connection arrived on a loopback
// address or a Unix socket, neither of which a remote client can reach.
func localIsLoopback(ctx *fasthttp.RequestCtx) bool {
	switch a := ctx.LocalAddr().(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// minAdminTokenLen is the fewest characters a Config.AdminToken may have.
const minAdminTokenLen = 16

// CheckAdminToken returns nil if token is a valid Config.AdminToken: at
// least 16 characters of valid UTF-8, none of them whitespace or a control
// character. Its errors never show the token.
func CheckAdminToken(token string) error {
	if !utf8.ValidString(token) {
		return errors.New("must be valid UTF-8")
	}
	for _, r := range token {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return errors.New("must not contain whitespace or control characters")
		}
	}
	if utf8.RuneCountInString(token) < minAdminTokenLen {
		return fmt.Errorf("must be at least %d characters", minAdminTokenLen)
	}
	return nil
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
type KeyLimit struct {
	// RequestsLastMinute is the number of requests admitted in the sliding
	// window ending at the snapshot's instant.
	RequestsLastMinute int `json:"requests_last_minute"`
	// RateLimit is the key_id's limit per window.
	RateLimit int `json:"rate_limit"`
}

// Limits returns the limiter state at now of every key_id that has any (a
// key_id gets it on its first request), by key_id. The map is the
// caller's.
func (g *Gateway) Limits(now time.Time) map[string]KeyLimit {
	out := make(map[string]KeyLimit)
	g.accounts.each(func(a *account) {
		if a.window != nil {
			out[a.keyID] = KeyLimit{RequestsLastMinute: a.window.CountAt(now), RateLimit: a.window.Limit()}
		}
	})
	return out
}

// adminServer is the admin listener's state: its token, and its server,
// created by the first ServeAdmin and stopped by Close.
type adminServer struct {
	token *[sha256.Size]byte // SHA-256 of Config.AdminToken; nil: none

	mu     sync.Mutex
	srv    *fasthttp.Server // nil until the first ServeAdmin
	lns    []net.Listener   // listeners being served
	closed bool
}

// ServeAdmin serves AdminHandler on ln, with a server of its own, until
// Shutdown or Close (which stop it without waiting for admin requests in
// flight, a long profile say). It may be called for several listeners. It
// returns nil after Shutdown or Close, else the listener's error; called
// after them, it closes ln and returns nil at once.
func (g *Gateway) ServeAdmin(ln net.Listener) error {
	a := &g.admin
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		ln.Close()
		return nil
	}
	if a.srv == nil {
		a.srv = &fasthttp.Server{
			Handler:               g.AdminHandler,
			Name:                  "authgate-admin",
			NoDefaultServerHeader: true,
			ReadTimeout:           g.cfg.ReadTimeout,
			IdleTimeout:           g.cfg.IdleTimeout,
			CloseOnShutdown:       true,
			SecureErrorLogMessage: true,
			Logger:                &fasthttpLogger{l: g.log},
		}
	}
	srv := a.srv
	a.lns = append(a.lns, ln)
	a.mu.Unlock()

	err := srv.Serve(ln)
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return nil
	}
	return err
}

// stop closes the admin listeners and idle admin connections; admin
// requests in flight finish on their own.
func (a *adminServer) stop() {
	a.mu.Lock()
	a.closed = true
	srv, lns := a.srv, a.lns
	a.lns = nil
	a.mu.Unlock()
	if srv == nil {
		return
	}
	for _, ln := range lns {
		ln.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv.ShutdownWithContext(ctx) // closes idle connections; does not wait
}
