package server

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// proxy forwards admitted requests to an upstream over pooled keep-alive
// connections. Method, path, query and body pass unchanged; the client's
// Authorization and hop-by-hop headers do not.
//
// This version sends everything to one upstream, the first configured; the
// type keeps the per-upstream state in upstream so that a balancer over
// several can replace pick without touching serve.
type proxy struct {
	ups        []*upstream
	authHeader []byte // "Bearer <UPSTREAM_API_KEY>", or nil
	log        *slog.Logger
	errLog     throttle
}

// upstream is one upstream server.
type upstream struct {
	name   string // the base URL as configured, for logs
	scheme []byte
	host   []byte // Host header value
	prefix []byte // base path prepended to every request path, or nil
	client *fasthttp.HostClient
}

func newProxy(cfg *Config) (*proxy, error) {
	p := &proxy{log: cfg.Logger}
	if cfg.UpstreamAPIKey != "" {
		p.authHeader = []byte("Bearer " + cfg.UpstreamAPIKey)
	}
	for _, raw := range cfg.Upstreams {
		u, err := parseUpstream(raw)
		if err != nil {
			return nil, err
		}
		port := u.Port()
		if port == "" {
			port = "80"
			if u.Scheme == "https" {
				port = "443"
			}
		}
		up := &upstream{
			name:   raw,
			scheme: []byte(u.Scheme),
			host:   []byte(u.Host),
			client: &fasthttp.HostClient{
				Addr:                          net.JoinHostPort(u.Hostname(), port),
				IsTLS:                         u.Scheme == "https",
				NoDefaultUserAgentHeader:      true,
				DisableHeaderNamesNormalizing: true,
				DisablePathNormalizing:        true,
				ReadTimeout:                   cfg.UpstreamTimeout,
				MaxConns:                      8192,
				MaxConnWaitTimeout:            5 * time.Second,
				ReadBufferSize:                16 << 10,
				SecureErrorLogMessage:         true,
			},
		}
		if prefix := strings.TrimSuffix(u.EscapedPath(), "/"); prefix != "" {
			up.prefix = []byte(prefix)
		}
		p.ups = append(p.ups, up)
	}
	return p, nil
}

// pick chooses the upstream for the next request.
func (p *proxy) pick() *upstream { return p.ups[0] }

// serve forwards ctx's request and fills ctx's response: the upstream's, or
// an OpenAI-shaped 502/504 when it cannot be had. requestID is sent upstream
// and returned to the client. It returns the upstream's name, for the log.
func (p *proxy) serve(ctx *fasthttp.RequestCtx, requestID []byte) string {
	up := p.pick()
	req := &ctx.Request
	clientClose := req.Header.ConnectionClose()

	removeHopByHop(&req.Header)
	req.Header.DelBytes(strAuthorization)
	if p.authHeader != nil {
		req.Header.SetBytesKV(strAuthorization, p.authHeader)
	}
	req.Header.SetBytesKV(strXRequestID, requestID)
	appendForwardedFor(ctx)
	if up.prefix != nil {
		var buf [256]byte
		uri := append(append(buf[:0], up.prefix...), req.Header.RequestURI()...)
		req.Header.SetRequestURIBytes(uri)
	}
	uri := req.URI()
	uri.DisablePathNormalizing = true
	uri.SetSchemeBytes(up.scheme)
	uri.SetHostBytes(up.host)

	err := up.client.Do(req, &ctx.Response)
	if err != nil {
		status := upstreamErrorStatus(err)
		ctx.Response.Reset()
		ctx.Response.SetStatusCode(status)
		ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
		if status == fasthttp.StatusGatewayTimeout {
			ctx.Response.SetBodyRaw(body504)
		} else {
			ctx.Response.SetBodyRaw(body502)
		}
		if n, ok := p.errLog.allow(time.Now()); ok {
			p.log.Error("upstream request failed", "upstream", up.name, "status", status, "err", err, "suppressed", n)
		}
	} else {
		removeResponseHopByHop(&ctx.Response.Header)
	}
	// The upstream connection's lifetime is not the client's: keep the
	// client's connection open unless the client asked to close it.
	ctx.Response.Header.ResetConnectionClose()
	if clientClose {
		ctx.Response.SetConnectionClose()
	}
	ctx.Response.Header.SetBytesKV(strXRequestID, requestID)
	return up.name
}

// close releases idle upstream connections.
func (p *proxy) close() {
	for _, up := range p.ups {
		up.client.CloseIdleConnections()
	}
}

// upstreamErrorStatus maps an error from the upstream client to the status
// the client gets: 504 when the upstream timed out, 502 otherwise
// (connection refused or reset, DNS failure, dial timeout, bad response).
func upstreamErrorStatus(err error) int {
	if errors.Is(err, fasthttp.ErrDialTimeout) {
		return fasthttp.StatusBadGateway
	}
	if isTimeout(err) {
		return fasthttp.StatusGatewayTimeout
	}
	return fasthttp.StatusBadGateway
}

// isTimeout reports whether err is a timeout of fasthttp or of the network.
func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hopByHop are the headers that describe one connection, not the message
// (RFC 9110 section 7.6.1), removed in both directions.
var hopByHop = [][]byte{
	[]byte("Connection"),
	[]byte("Proxy-Connection"),
	[]byte("Keep-Alive"),
	[]byte("Proxy-Authenticate"),
	[]byte("Proxy-Authorization"),
	[]byte("Te"),
	[]byte("Trailer"),
	[]byte("Transfer-Encoding"),
	[]byte("Upgrade"),
}

var strConnection = []byte("Connection")

// removeHopByHop deletes the headers named in Connection, then the fixed
// hop-by-hop list, from a request header.
func removeHopByHop(h *fasthttp.RequestHeader) {
	forEachToken(h.PeekBytes(strConnection), h.DelBytes)
	for _, k := range hopByHop {
		h.DelBytes(k)
	}
}

// removeResponseHopByHop is removeHopByHop for a response header.
func removeResponseHopByHop(h *fasthttp.ResponseHeader) {
	forEachToken(h.PeekBytes(strConnection), h.DelBytes)
	for _, k := range hopByHop {
		h.DelBytes(k)
	}
}

// forEachToken calls f with each comma-separated, trimmed, non-empty token
// of v. v is copied first, since f may delete the header v belongs to.
func forEachToken(v []byte, f func([]byte)) {
	if len(v) == 0 {
		return
	}
	var buf [256]byte
	v = append(buf[:0], v...)
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		if tok = bytes.TrimSpace(tok); len(tok) > 0 {
			f(tok)
		}
	}
}

// appendForwardedFor appends the client's address to X-Forwarded-For.
func appendForwardedFor(ctx *fasthttp.RequestCtx) {
	addr, ok := ctx.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return
	}
	ip, ok := netip.AddrFromSlice(addr.IP)
	if !ok {
		return
	}
	var buf [256]byte
	v := append(buf[:0], ctx.Request.Header.PeekBytes(strXForwardedFor)...)
	if len(v) > 0 {
		v = append(v, ", "...)
	}
	v = ip.Unmap().AppendTo(v)
	ctx.Request.Header.SetBytesKV(strXForwardedFor, v)
}

// throttle lets one event through per interval and counts the rest.
type throttle struct {
	last       atomic.Int64 // unix nanoseconds of the last event let through
	suppressed atomic.Int64
}

const throttleInterval = 5 * time.Second

// allow reports whether an event at now may be logged, and how many were
// suppressed since the last one that was.
func (t *throttle) allow(now time.Time) (int64, bool) {
	last := t.last.Load()
	if now.UnixNano()-last < int64(throttleInterval) || !t.last.CompareAndSwap(last, now.UnixNano()) {
		t.suppressed.Add(1)
		return 0, false
	}
	return t.suppressed.Swap(0), true
}
