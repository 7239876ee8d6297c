package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/forwarded"
	"github.com/authgate/authgate/internal/hopbyhop"
	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/internal/openai"
	"github.com/authgate/authgate/internal/relay"
	"github.com/authgate/authgate/internal/safelog"
	"github.com/authgate/authgate/internal/target"
	"github.com/authgate/authgate/internal/upstreamspec"
)

// Config is a Proxy's configuration. Zero fields mean what each says.
type Config struct {
	// Upstreams are the base URLs of the upstream servers, each
	// optionally followed by its options (see upstreamspec.ParseUpstreams).
	// Empty: every request is answered 502.
	Upstreams []string
	// Aliases maps model names clients may use to the models upstreams
	// serve (see upstreamspec.ParseAliases); nil: none. New copies it.
	Aliases map[string]string
	// APIKey, if set, is sent upstream as "Authorization: Bearer APIKey".
	APIKey string
	// Timeout bounds the wait for a response's head, and then for each
	// piece of a streamed body. It must be set.
	Timeout time.Duration
	// WriteTimeout bounds each write of a streamed piece to the client
	// (the client's connection's write deadline is renewed for it); zero:
	// none.
	WriteTimeout time.Duration
	// HealthPath is what the active health check GETs (after each
	// upstream's base path); HealthCheckTCP checks a TCP connection only.
	// Empty means DefaultHealthCheckPath, whose answer is also read as the
	// upstream's model list unless it declares its models.
	HealthPath string
	// HealthInterval is the time between two checks of an upstream; zero
	// or negative turns checks off, and passive ejection with them.
	HealthInterval time.Duration
	// Dial, if set, opens upstream connections instead of a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxBody bounds a chunked request body streamed upstream (413 past
	// it); a body of known length is refused before, by the caller.
	MaxBody int64
	// Trusted are the proxies in front whose forwarding headers are kept
	// (forwarded.Set).
	Trusted forwarded.Trusted
	// Logger receives upstream failures (throttled) and health changes.
	Logger *slog.Logger
	// NewMeter, if set, is called for each response streamed to the
	// client; a non-nil Meter it returns is told when the stream ends, and
	// has the events of a stream of server-sent events read as they pass
	// (meter.go).
	NewMeter func(ctx *fasthttp.RequestCtx) Meter
	// Relay, if set, relays chunked response bodies to plain-HTTP/1.1
	// clients outside the server (relay.go): the handler returns at once
	// and the server lets go of the connection, which it must then keep
	// open (fasthttp.Server.KeepHijackedConns). Only connections that
	// netconn.Wrap made are relayed. Resume is called with a client's
	// connection once its relayed stream has ended whole and the
	// connection is to be kept alive, to serve its next request.
	Relay  *relay.Relay
	Resume func(net.Conn)
}

// Proxy forwards admitted requests to the upstreams over pooled
// keep-alive connections. Method, path, query and body pass unchanged; the
// client's Authorization and hop-by-hop headers do not. Responses with a
// body of unknown or large size (server-sent events, chunked) are streamed
// to the client as the upstream sends them; others are read whole and
// passed on. Requests may be routed by the model they name: Resolve, then
// ServeModel (docs/http.md#models-and-routing). Build it with New; it
// starts no goroutine until Start, and Close stops them. Its methods are
// safe for concurrent use.
type Proxy struct {
	ups          []*upstream
	authHeader   []byte                               // "Bearer <APIKey>", or nil
	newMeter     func(ctx *fasthttp.RequestCtx) Meter // Config.NewMeter
	relay        *relay.Relay                         // Config.Relay; nil: fasthttp writes every stream
	resume       func(net.Conn)                       // Config.Resume
	timeout      time.Duration
	writeTimeout time.Duration // Config.WriteTimeout, renewed for each piece of a stream
	passive      bool          // mark an upstream down when it refuses connections
	anyPrefix    bool
	health       *healthChecker // nil when checks are off
	log          *slog.Logger
	errLog       safelog.Throttle

	sweeper *sweeper // nil unless started with health checks off
	maxBody int64    // Config.MaxBody, for a chunked request body

	trusted forwarded.Trusted // Config.Trusted, for the forwarding headers

	// Routing by model (route.go).
	table    atomic.Pointer[routeTable]
	aliases  map[string]alias // Config.Aliases by name; read-only
	aliasIDs []string         // its keys, sorted
	created  int64            // Unix time of New: "created" of made-up model entries

	hijackHook func() // tests: called as a relayed stream's hijack handler begins
}

// maxBuffered is the largest response body read whole before it is passed
// on; larger ones, and those of unknown length, are streamed.
const maxBuffered = 1 << 20

// copyBodyMax is the largest body read whole that is copied into the
// client's response; a larger one's buffer is swapped in instead. Swapping
// small buffers made the exchange's response grow a buffer (an allocation)
// on most requests: the buffers of two pools change hands.
const copyBodyMax = 16 << 10

// Response bodies and header names of the proxy's own.
var (
	body502 = apierr.Body("The upstream server is unavailable", "api_error", "upstream_unavailable")
	body504 = apierr.Body("The upstream server timed out", "api_error", "upstream_timeout")

	strAuthorization   = []byte("Authorization")
	strXRequestID      = []byte("X-Request-Id")
	strAllow           = []byte("Allow")
	strContentTypeJSON = []byte("application/json")
)

// StatusClientClosed is logged for a request whose client went away before
// its response was sent (nginx's 499).
const StatusClientClosed = 499

// New builds a Proxy from cfg; an upstream URL that does not parse is an
// error.
func New(cfg Config) (*Proxy, error) {
	if cfg.HealthPath == "" {
		cfg.HealthPath = DefaultHealthCheckPath
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{log: cfg.Logger, timeout: cfg.Timeout, writeTimeout: cfg.WriteTimeout}
	p.maxBody = cfg.MaxBody
	p.trusted = cfg.Trusted
	p.newMeter = cfg.NewMeter
	p.relay, p.resume = cfg.Relay, cfg.Resume
	p.created = time.Now().Unix()
	if cfg.APIKey != "" {
		p.authHeader = []byte("Bearer " + cfg.APIKey)
	}
	if err := upstreamspec.CheckAliases(cfg.Aliases); err != nil {
		return nil, err
	}
	if len(cfg.Aliases) > 0 {
		p.aliases = make(map[string]alias, len(cfg.Aliases))
		for name, model := range cfg.Aliases {
			p.aliases[name] = alias{name: name, model: model}
		}
		p.aliasIDs = slices.Sorted(maps.Keys(p.aliases))
	}
	for i, raw := range cfg.Upstreams {
		up, err := newUpstream(raw, cfg.Dial, p.created)
		if err != nil {
			return nil, fmt.Errorf("upstream %d of %d: %w", i+1, len(cfg.Upstreams), err)
		}
		p.anyPrefix = p.anyPrefix || up.prefix != nil
		// Only the default path is an OpenAI model list
		// (docs/configuration.md#models-and-routing).
		up.discover = up.models.Load() == nil && cfg.HealthPath == DefaultHealthCheckPath && cfg.HealthInterval > 0
		p.ups = append(p.ups, up)
	}
	p.table.Store(p.buildTable())
	if cfg.HealthInterval > 0 && len(p.ups) > 0 {
		p.passive = true
		p.health = newHealthChecker(p.ups, &cfg, p.authHeader)
		p.health.afterRound = p.refreshTable
	}
	return p, nil
}

// Start begins the health checks, if any, and otherwise the sweep of idle
// upstream connections, which the health checker also does.
func (p *Proxy) Start() {
	if p.health != nil {
		go p.health.run()
		return
	}
	if len(p.ups) > 0 {
		pools := make([]*connPool, len(p.ups))
		for i, up := range p.ups {
			pools[i] = up.pool
		}
		p.sweeper = startSweeper(pools)
	}
}

// Healthy reports whether at least one upstream is healthy; false without
// upstreams.
func (p *Proxy) Healthy() bool {
	for _, up := range p.ups {
		if up.healthy.Load() {
			return true
		}
	}
	return false
}

// Close stops the health checks or the sweeper and closes idle upstream
// connections.
func (p *Proxy) Close() {
	if p.health != nil {
		p.health.stop()
	}
	p.sweeper.stop()
	for _, up := range p.ups {
		up.pool.close()
		if up.health.client != nil {
			up.health.client.CloseIdleConnections()
		}
	}
}

// Serve forwards ctx's request and fills ctx's response: the upstream's,
// or an OpenAI-shaped 502/504 when it cannot be had, or 499 when the
// client went away first; a request the proxy must not pass on (its
// method, target, version or Connection header) is answered 405 or 400.
// The caller has already set X-Request-Id on the request, and sets it on
// the response. Serve returns the name of the upstream tried last, for the
// log, and reports whether the client's body was left partly read: the
// caller must then close the client's connection (gently: the client may
// still be sending).
//
// A streamed request body is read as it is sent to the upstream. An
// upstream that cannot be connected to is retried once on another, which
// is safe since none of the body has been read yet; a request once sent
// never is.
//
// Serve uses every upstream: it is ServeModel(ctx, "").
func (p *Proxy) Serve(ctx *fasthttp.RequestCtx) (name string, bodyLeft bool) {
	return p.serve(ctx, p.table.Load().all)
}

// serve is Serve with the upstreams ups.
func (p *Proxy) serve(ctx *fasthttp.RequestCtx, ups []*upstream) (name string, bodyLeft bool) {
	req := &ctx.Request
	if !target.AllowedMethod(req.Header.Method()) {
		apierr.Write(ctx, fasthttp.StatusMethodNotAllowed, target.Body405)
		ctx.Response.Header.SetCanonical(strAllow, target.AllowedMethods)
		return "", false
	}
	if body := target.Check(req); body != nil {
		apierr.Write(ctx, fasthttp.StatusBadRequest, body)
		return "", false
	}
	if !req.Header.IsHTTP11() && !bytes.Equal(req.Header.Protocol(), strHTTP10) {
		apierr.Write(ctx, fasthttp.StatusBadRequest, target.Body400Version)
		return "", false
	}
	// The upstream is spoken to in HTTP/1.1 whatever the client spoke: its
	// connection is the pool's, kept alive.
	http11 := req.Header.IsHTTP11()
	req.Header.SetProtocolBytes(strHTTP11)
	clientClose := req.Header.ConnectionClose()
	if !hopbyhop.FromRequest(&req.Header) {
		apierr.Write(ctx, fasthttp.StatusBadRequest, target.Body400Connection)
		return "", false
	}
	req.Header.DelBytes(strExpect)
	req.Header.DelBytes(strAuthorization)
	if p.authHeader != nil {
		req.Header.SetCanonical(strAuthorization, p.authHeader)
	}
	forwarded.Set(ctx, p.trusted)
	var origURI []byte
	if p.anyPrefix {
		origURI = append([]byte(nil), req.Header.RequestURI()...)
	}

	var skip *upstream
	for attempt := 0; ; attempt++ {
		up := pick(ups, skip)
		if up == nil {
			p.fail(ctx, name, errNoHealthyUpstream)
			break
		}
		name = up.name
		if origURI != nil {
			req.SetRequestURIBytes(append(append(make([]byte, 0, len(up.prefix)+len(origURI)), up.prefix...), origURI...))
		}
		uri := req.URI()
		uri.DisablePathNormalizing = true
		uri.SetHostBytes(up.host)

		pc, err := up.pool.get()
		if err != nil {
			if p.passive {
				setHealth(up, false, err, p.log)
			}
			if attempt == 0 && len(ups) > 1 {
				skip = up // nothing was sent: try another upstream once
				continue
			}
			p.fail(ctx, name, err)
			break
		}
		up.inflight.Add(1)
		bodyLeft = p.roundTrip(ctx, up, pc, http11)
		break
	}
	if origURI != nil {
		// The access log shows the path the client asked for.
		req.SetRequestURIBytes(origURI)
	}
	// The upstream connection's lifetime is not the client's: keep the
	// client's connection open unless the client asked to close it, or the
	// rest of a body partly read is still to come on it (the caller's to
	// close).
	if ctx.Response.StatusCode() == StatusClientClosed {
		return name, false
	}
	ctx.Response.Header.ResetConnectionClose()
	if clientClose {
		ctx.Response.SetConnectionClose()
	}
	return name, bodyLeft
}

var (
	errNoHealthyUpstream = safelog.Fixed("no healthy upstream")
	errTooManyInterim    = safelog.Fixed("too many interim responses")
)

// roundTrip sends the request on pc, a streamed body as it reads it, then
// waits for the response, watching the client once the wait or the stream
// has lasted WatchDelay, and fills ctx's response. It owns pc and one count of up.inflight: it releases them
// itself, or hands them to the response's body stream. It reports whether
// the client's body was left partly read, in which case the client's
// connection must close.
//
// The watch is armed only once the body is read: it waits on the client's
// socket, and under TLS would hold the socket's read lock through the
// body's TLS records, which the body's reads then wait for.
func (p *Proxy) roundTrip(ctx *fasthttp.RequestCtx, up *upstream, pc *upConn, http11 bool) (bodyLeft bool) {
	x := exchangePool.Get().(*exchange)
	x.up, x.pc, x.timeout = up, pc, p.timeout
	x.client, x.writeTimeout = ctx.Conn(), p.writeTimeout
	upResp := &x.resp

	sent := time.Now() // when the request is sent, unless its body is still coming
	pc.SetWriteDeadline(sent.Add(p.timeout))
	body := &x.body
	if s := ctx.Request.BodyStream(); s != nil {
		size := ctx.Request.Header.ContentLength()
		*body = bodyReader{r: s, pc: pc, size: int64(size), limit: p.maxBody}
		if BodyPending(&ctx.Request) {
			body.timeout = p.timeout
		}
		ctx.Request.SetBodyStream(body, size)
	}
	err := pc.writeRequest(&ctx.Request)
	if err != nil {
		ctx.Request.CloseBodyStream() // if Write did not get to it
		bodyLeft, bodyErr := body.r != nil && !body.eof, body.err
		x.finish(false) // the upstream may have part of the request: never reused
		switch {
		case bodyErr == nil:
			p.fail(ctx, up.name, err)
		case ClientGone(bodyErr):
			clientClosed(ctx)
		default: // 413 for a chunked body over the limit, 408, 400
			ctx.Response.Reset()
			status, b := apierr.ForReadError(bodyErr)
			apierr.Write(ctx, status, b)
		}
		return bodyLeft
	}
	if body.r != nil && ctx.Request.Header.ContentLength() < 0 {
		// Chunked: the access log gets its length.
		ctx.Request.Header.SetContentLength(int(body.n))
	}

	x.armWatch()
	if body.timeout != 0 {
		sent = time.Now() // the body took its time: the wait starts now
	}
	pc.SetReadDeadline(sent.Add(p.timeout))
	pc.reader()
	var client net.Conn // whose stream may be relayed
	if p.relay != nil && http11 && !BodyPending(&ctx.Request) {
		client = ctx.Conn()
	}
	stream, relayed, err := p.readResponseHead(upResp, pc, ctx.IsHead(), client, &x.rs)
	if err != nil {
		gone := x.clientGone()
		x.finish(false)
		if gone {
			clientClosed(ctx)
			return false
		}
		p.fail(ctx, up.name, err)
		return false
	}

	h := &ctx.Response.Header
	upResp.Header.CopyTo(h)
	// CopyTo brings the upstream's framing along: the client gets HTTP/1.1
	// whatever the upstream spoke, and no Content-Type the upstream did not
	// send.
	h.SetProtocol(strHTTP11)
	h.SetNoDefaultContentType(true)
	hopbyhop.FromResponse(h)
	if !stream {
		if b := upResp.Body(); len(b) <= copyBodyMax {
			// Copied: each response keeps a buffer of its usual size.
			ctx.Response.SetBody(b)
		} else {
			// Swap the upstream's body buffer in: no copy.
			upResp.SwapBody(ctx.Response.SwapBody(upResp.SwapBody(nil)))
		}
		x.finish(true)
		return false
	}
	if relayed {
		p.startRelay(ctx, x)
		return false
	}
	size := upResp.Header.ContentLength()
	if size < 0 {
		size = -1 // chunked to the client, however the upstream framed it
		h.SetCanonical(strXAccelBuffering, strNo)
	} else if bytes.HasPrefix(upResp.Header.ContentType(), strEventStream) {
		h.SetCanonical(strXAccelBuffering, strNo)
	}
	x.inner = upResp.BodyStream()
	if p.newMeter != nil {
		if m := p.newMeter(ctx); m != nil {
			x.startMeter(m, m.Events() && bytes.HasPrefix(upResp.Header.ContentType(), strEventStream))
		}
	}
	pc.SetWriteDeadline(time.Time{})
	// The head goes to the client at once, so that it need not wait for the
	// first event; unless the first of the body came with it, when both go
	// in one write.
	ctx.Response.ImmediateHeaderFlush = pc.br.Buffered() == 0
	ctx.Response.SetBodyStream(x, size)
	return false
}

// readResponseHead reads the status line and headers (past any interim 1xx
// response) into resp, then either the whole body (stream false) or sets up
// resp.BodyStream to read it (stream true); or, if the body is chunked
// and may be relayed to client (non-nil), leaves it to the relay
// (relayed true), rs reserved in it (relay.Relay.Reserve): a stop waits for
// the stream from now on, though the relay starts it only once the
// handler has returned, after the server stopped counting the request.
func (p *Proxy) readResponseHead(resp *fasthttp.Response, pc *upConn, head bool, client net.Conn, rs *relay.Stream) (stream, relayed bool, err error) {
	for i := 0; ; i++ {
		if err := resp.Header.Read(pc.br); err != nil {
			return false, false, err
		}
		code := resp.StatusCode()
		if code >= 200 || code == fasthttp.StatusSwitchingProtocols {
			break
		}
		if i == 4 {
			return false, false, errTooManyInterim
		}
	}
	code := resp.StatusCode()
	if head || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified {
		resp.SkipBody = true
		return false, false, nil
	}
	size := resp.Header.ContentLength()
	stream = size < 0 || size > maxBuffered || bytes.HasPrefix(resp.Header.ContentType(), strEventStream)
	if stream && client != nil && size == -1 && code != fasthttp.StatusSwitchingProtocols && relaySockets(client, pc) && p.relay.Reserve(rs) == nil {
		return true, true, nil // -1: chunked
	}
	resp.StreamBody = stream
	return stream, false, resp.ReadBody(pc.br, 0)
}

// exchange is one request's use of an upstream connection. For a streamed
// response it is also the body stream handed to fasthttp: each Read passes
// on what the upstream sent (fasthttp writes it as a chunk and flushes it),
// waiting at most timeout; fasthttp calls CloseWithError when done, with the
// error that stopped it (client gone, upstream failed). finish then releases
// the connection: back to the pool after a complete body, closed otherwise,
// so that an upstream whose client left sees the disconnect. Exchanges are
// pooled.
type exchange struct {
	up           *upstream
	pc           *upConn
	resp         fasthttp.Response
	inner        io.Reader
	timeout      time.Duration
	client       net.Conn // the client's connection, for its write deadline
	writeTimeout time.Duration
	complete     bool
	closed       bool

	// A relayed stream's (relay.go).
	proxy     *Proxy
	ctx       *fasthttp.RequestCtx // until the hijack handler
	rs        relay.Stream
	head      []byte // the response head, for rs
	initial   []byte // what pc.br held of the body, for rs
	keepAlive bool   // the client's connection is kept after the stream
	hijacking bool   // the hijack handler drops ctx's body stream: x
	hijackFn  fasthttp.HijackHandler
	relayFn   func(relay.Result)
	endingFn  func(*relay.Result)

	body bodyReader // the request's streamed body on its way up

	meter       Meter               // a metered stream's (meter.go); nil if none
	meterEvents bool                // its events are read as they pass
	events      openai.StreamReader // reads a metered stream

	// The client watch, started by watchTimer once the exchange has lasted
	// WatchDelay (see armWatch). wmu guards watch and watchOff between the
	// timer's goroutine and the request's.
	wmu        sync.Mutex
	watch      *clientWatch
	watchOff   bool // set by finish: the timer must not start a watch
	watchTimer *time.Timer
}

var exchangePool sync.Pool

func init() {
	// Not in exchangePool's declaration: an exchange's methods refer to
	// the pool.
	exchangePool.New = func() any {
		x := &exchange{watchOff: true}
		x.hijackFn, x.relayFn, x.endingFn = x.hijacked, x.relayEnded, x.relayEnding
		x.watchTimer = time.AfterFunc(time.Hour, x.lateWatch)
		x.watchTimer.Stop()
		return x
	}
}

// WatchDelay is how long an exchange lasts before its client is watched.
// Watching costs a goroutine, a peek at the client's socket and two
// deadline updates; most exchanges with a fast upstream end sooner, and a
// client that leaves one of those costs the upstream at most this much
// work. A generation, a stream or a slow upstream is watched from then on.
const WatchDelay = 20 * time.Millisecond

// armWatch makes the client be watched from WatchDelay on, until finish.
func (x *exchange) armWatch() {
	x.wmu.Lock()
	x.watchOff = false
	x.wmu.Unlock()
	x.watchTimer.Reset(WatchDelay)
}

// lateWatch runs on watchTimer's goroutine: it starts the watch, unless
// the exchange has finished. A call left over from an earlier use of a
// pooled exchange finds watchOff set, or starts the current exchange's
// watch early, which is harmless.
func (x *exchange) lateWatch() {
	x.wmu.Lock()
	if !x.watchOff && x.watch == nil {
		x.watch = startWatch(x.client, netconn.RawConnOf(x.client))
		x.watch.attach(x.pc)
	}
	x.wmu.Unlock()
}

// clientGone reports whether the watch saw the client go away.
func (x *exchange) clientGone() bool {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	return x.watch.clientGone()
}

// stopWatch ends the watch, if one started, and keeps a late timer from
// starting one; it reports whether the client went away.
func (x *exchange) stopWatch() bool {
	x.watchTimer.Stop()
	x.wmu.Lock()
	w := x.watch
	x.watch, x.watchOff = nil, true
	x.wmu.Unlock()
	return w.stop()
}

// ErrClientLeft is what a streamed response body's Read returns when the
// client watch saw the client leave and closed the upstream connection
// under the read: the client's doing, which fasthttpLogger does not log
// (fasthttp would log the closed upstream connection as an error serving
// the client's).
const ErrClientLeft = safelog.Fixed("client left")

func (x *exchange) Read(b []byte) (int, error) {
	if x.meterEvents {
		return x.events.Read(b)
	}
	return x.readUpstream(b)
}

// readUpstream reads the next piece of the upstream's body into b.
func (x *exchange) readUpstream(b []byte) (int, error) {
	x.pc.SetReadDeadline(time.Now().Add(x.timeout))
	n, err := x.inner.Read(b)
	if errors.Is(err, io.EOF) {
		x.complete = true
	} else if err != nil && x.clientGone() {
		err = ErrClientLeft
	}
	if x.writeTimeout > 0 {
		// fasthttp writes what Read returns (or the body's end) next, under
		// the one write deadline it set before the response: renew it, so
		// that WriteTimeout bounds each piece's write, never the wait for
		// the upstream, and a long stream is not cut.
		x.client.SetWriteDeadline(time.Now().Add(x.writeTimeout))
	}
	return n, err
}

// CloseWithError is called by fasthttp once it has written the body, or
// failed to.
func (x *exchange) CloseWithError(err error) error {
	if x.hijacking {
		return nil // the relay has the stream
	}
	if !x.closed {
		x.closed = true
		x.finish(err == nil && x.complete)
	}
	return nil
}

// finish ends the exchange: it stops the client watch, returns the
// connection to the pool (reuse, and the upstream did not ask to close it)
// or closes it, and recycles x.
func (x *exchange) finish(reuse bool) {
	x.rs.Unreserve() // if the relay never started the stream
	if x.stopWatch() {
		reuse = false // the watch may have closed the connection
	}
	reuse = reuse && !x.resp.ConnectionClose()
	if !reuse {
		x.pc.Close() // first, so that closing the body stream reads nothing
	}
	if x.inner != nil {
		x.resp.CloseBodyStream()
	}
	x.endMeter()
	if reuse {
		x.up.pool.put(x.pc)
	}
	x.up.inflight.Add(-1)
	x.resp.Reset()
	x.up, x.pc, x.inner, x.client = nil, nil, nil, nil
	x.proxy, x.ctx, x.keepAlive = nil, nil, false
	if cap(x.initial) > maxInitial {
		x.initial = nil
	}
	x.rs.Client, x.rs.Upstream, x.rs.Head, x.rs.Initial = nil, nil, nil, nil
	x.rs.Ending, x.rs.Done = nil, nil
	x.complete, x.closed = false, false
	x.body = bodyReader{}
	exchangePool.Put(x)
}

// clientClosed records that the client left before its response.
func clientClosed(ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(StatusClientClosed)
	ctx.Response.SetConnectionClose()
}

// fail answers an upstream failure in OpenAI's shape and logs it,
// throttled so that a dead upstream does not flood the log.
func (p *Proxy) fail(ctx *fasthttp.RequestCtx, upName string, err error) {
	status := upstreamErrorStatus(err)
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
	if status == fasthttp.StatusGatewayTimeout {
		ctx.Response.SetBodyRaw(body504)
	} else {
		ctx.Response.SetBodyRaw(body502)
	}
	if n, ok := p.errLog.Allow(time.Now()); ok {
		p.log.Error("upstream request failed", "upstream", upName, "status", status,
			"err", safelog.Class(err, "malformed response"), "suppressed", n)
	}
}

// upstreamErrorStatus maps an error from reaching the upstream to the
// status the client gets: 504 when the upstream timed out, 502 otherwise
// (connection refused or reset, DNS failure, dial timeout, bad response).
func upstreamErrorStatus(err error) int {
	var de *errDial
	if errors.As(err, &de) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return fasthttp.StatusBadGateway
	}
	if safelog.IsTimeout(err) {
		return fasthttp.StatusGatewayTimeout
	}
	return fasthttp.StatusBadGateway
}

var (
	strExpect          = []byte("Expect")
	strXAccelBuffering = []byte("X-Accel-Buffering")
	strEventStream     = []byte("text/event-stream")
	strNo              = []byte("no")
	strHTTP11          = []byte("HTTP/1.1")
	strHTTP10          = []byte("HTTP/1.0")
)
