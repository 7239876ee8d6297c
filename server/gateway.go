package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/accounts"
	"github.com/authgate/authgate/internal/adminguard"
	"github.com/authgate/authgate/internal/inspect"
	"github.com/authgate/authgate/internal/keywatch"
	"github.com/authgate/authgate/internal/listen"
	"github.com/authgate/authgate/internal/metering"
	"github.com/authgate/authgate/internal/modelroute"
	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/internal/relay"
	"github.com/authgate/authgate/internal/safelog"
	"github.com/authgate/authgate/internal/stats"
	"github.com/authgate/authgate/limiter/tokens"
	"github.com/authgate/authgate/logsink"
)

// Gateway is authgate's request path: authentication, rate limiting and
// access logging, in front of its proxy (Handler, Serve) or of your own
// handler (Wrap, WrapHTTP). Build it with New; the zero value is not
// usable. Its methods are safe for concurrent use. Every goroutine it
// starts (keys watch, health checks, access-log writer, admin listener)
// ends with Close.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	keys      atomic.Pointer[accounts.Snapshot]
	accounts  accounts.Registry
	open      *accounts.Account // the account of every request when no key is checked
	none      *accounts.Account // key_id "-": requests refused before a key is known
	failOpen  *accounts.Account // key_id "no-keys-configured" (AllowNoKeys)
	metrics   *gatewayMetrics
	admin     adminServer
	proxy     *proxy.Proxy
	inspect   *inspect.Budget // bodies read for their model
	models    stats.ByName
	tokens    *metering.Counter
	router    *modelroute.Router
	sink      *logsink.Sink // the file sink; nil without one
	accessLog AccessLogger  // sink or Config.AccessLogger; nil: no access log
	srv       *fasthttp.Server
	cert      *listen.Certificate // nil: plain HTTP
	conns     *listen.Limits      // MaxConns and MaxConnsPerIP, applied by Serve's listener
	parker    *netconn.Parker     // idle connections' (Config.ParkIdleAfter); nil: none park
	relay     *relay.Relay        // streams' (Config.NoStreamRelay); nil: none is relayed
	watcher   *keywatch.Watcher   // nil: the keys file is not watched

	recorders sync.Pool // *statusRecorder, for WrapHTTP
	entries   sync.Pool // *pooledEntry, for an AccessLogger

	reloadMu  sync.Mutex // serialises Reload
	closed    atomic.Bool
	logClosed atomic.Bool // Close has closed the access log
	draining  atomic.Bool // Shutdown's drain phase: every response closes its connection

	limiterFailing atomic.Bool // Config.Limiter's last decision failed
}

// New builds a Gateway from cfg: it loads the keys, opens the access log and
// prepares the upstream client. It returns an error (never exits) when a
// setting is invalid, when the keys cannot be loaded (wrapping ErrNoKeys when
// authentication is on, AllowNoKeys is off and no key is usable), when the
// TLS certificate cannot be loaded, or when the access log cannot be opened.
// Close releases what New opened.
func New(cfg Config) (*Gateway, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger}
	g.admin.guard = adminguard.New(cfg.AdminToken)
	g.accounts.Period = cfg.RateWindow
	g.accounts.Store = cfg.TokenStore
	g.accounts.StoreFailure = map[FailureMode]tokens.FailureMode{FailureOpen: tokens.FailOpen, FailureClosed: tokens.FailClosed}[cfg.LimiterFailureMode]
	if err := g.accounts.OpenTokens(cfg.RateWindow, cfg.StateDir); err != nil {
		return nil, err
	}
	g.accounts.DefaultTPM, g.accounts.DefaultTPD = cfg.DefaultTPM, cfg.DefaultTPD

	cert, err := listen.NewCertificate(cfg.TLSCertFile, cfg.TLSKeyFile, g.log)
	if err != nil {
		return nil, err
	}
	g.cert = cert
	var tlsConf *tls.Config
	if cert != nil {
		tlsConf = cert.Config()
	}
	g.conns = listen.NewLimits(cfg.MaxConns, cfg.MaxConnsPerIP, cfg.TrustedProxies, tlsConf, g.log)

	if !cfg.NoStreamRelay && cert == nil {
		if g.relay, err = relay.New(relay.Config{}); err != nil {
			g.log.Warn("streams will not be relayed", "err", err)
			g.relay = nil
		}
	}
	p, err := proxy.New(proxy.Config{
		Upstreams:      cfg.Upstreams,
		Aliases:        cfg.ModelAliases,
		APIKey:         cfg.UpstreamAPIKey,
		Timeout:        cfg.UpstreamTimeout,
		WriteTimeout:   cfg.WriteTimeout,
		HealthPath:     cfg.HealthCheckPath,
		HealthInterval: cfg.HealthCheckInterval,
		Dial:           cfg.UpstreamDial,
		MaxBody:        int64(cfg.MaxRequestBody),
		Trusted:        cfg.TrustedProxies,
		Logger:         cfg.Logger,
		NewMeter:       g.streamMeter,
		Relay:          g.relay,
		Resume:         g.resume,
	})
	if err != nil {
		return nil, err
	}
	g.proxy = p
	g.tokens = metering.New(p.Listed)
	g.tokens.Off = cfg.NoMetering
	g.inspect = inspect.NewBudget(min(cfg.InspectMaxBody, cfg.MaxRequestBody), cfg.InspectMemory)
	g.router = &modelroute.Router{Proxy: p, Inspect: g.inspect, Tokens: g.tokens, Models: &g.models,
		WriteTimeout: cfg.WriteTimeout, DefaultMaxTokens: cfg.DefaultMaxTokens}

	var keysStamp keywatch.Stamp // taken before loading, so that a change during the load is seen
	if cfg.watchesKeysFile() {
		keysStamp = keywatch.StampOf(cfg.KeysFile)
	}
	switch {
	case cfg.DisableAuth:
		g.log.Warn("authentication is DISABLED: every request is accepted without a key (AUTH_ENABLED=false)")
		g.open = accounts.NewShared(KeyIDAuthDisabled)
	default:
		keys, err := g.loadKeys()
		if err != nil && !cfg.AllowNoKeys {
			return nil, err
		}
		if keys == nil {
			keys, _ = auth.NewKeySet(nil)
		}
		g.publish(keys)
	}

	switch {
	case cfg.AccessLogger != nil:
		g.accessLog = cfg.AccessLogger
	case cfg.AccessLog != "":
		sink, err := logsink.New(logsink.Config{
			Path:     cfg.AccessLog,
			Format:   cfg.AccessLogFormat,
			ErrorLog: g.log,
		})
		if err != nil {
			return nil, err
		}
		g.sink = sink
		g.accessLog = sink
	}

	g.initMetrics()
	g.srv = &fasthttp.Server{
		Handler:               g.Handler,
		ErrorHandler:          g.errorHandler,
		HeaderReceived:        g.headerReceived,
		Name:                  "authgate",
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		NoDefaultDate:         false,
		MaxRequestBodySize:    cfg.MaxRequestBody,
		ReadTimeout:           cfg.ReadTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		WriteTimeout:          cfg.WriteTimeout, // streams: per piece, see exchange.Read
		// The connection limits are the listener's (listen.Limits), which
		// answers in JSON and keeps the socket visible; fasthttp's
		// Concurrency is a backstop above MaxConns.
		Concurrency:           listen.BackstopConcurrency(cfg.MaxConns),
		ReadBufferSize:        cfg.MaxHeaderBytes,
		CloseOnShutdown:       true,
		SecureErrorLogMessage: true,
		Logger:                &safelog.FasthttpLogger{L: g.log, Ignore: proxy.ErrClientLeft},
		// The handler reads the clock itself (the log's time, the
		// latency): fasthttp need not read it too.
		LazyRequestTime: true,

		// Bodies are read only once a request is admitted, and streamed
		// to the upstream: see body.go. Multipart bodies too: fasthttp
		// would otherwise read one whole, to parse it, before the handler.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ExpectHandler:                g.expectContinue,

		// A relayed stream's connection is the relay's once the handler
		// returns, then the server's again (resume); CloseGently closes
		// the connections it hijacks itself.
		KeepHijackedConns: true,
	}
	if cfg.ParkIdleAfter > 0 && cfg.ParkIdleAfter < cfg.IdleTimeout && cert == nil {
		if g.parker, err = netconn.NewParker(cfg.ParkIdleAfter, cfg.IdleTimeout, g.serveParked); err != nil {
			g.log.Warn("idle connections will not be parked", "err", err)
		} else {
			g.srv.ConnState = listen.ConnState
			g.srv.MaxIdleWorkerDuration = cfg.ParkIdleAfter // a parked connection's worker waits no longer than it did
		}
	}
	g.proxy.Start()
	if cfg.watchesKeysFile() {
		g.watcher = keywatch.Start(cfg.KeysFile, keysStamp, g.Reload, g.log)
	}
	return g, nil
}

// loadKeys reads the configured key source (Config.KeySource, Keys or
// KeysFile). It returns ErrNoKeys (wrapped, naming the source) when the
// source has no valid key, and logs every skipped line by number and
// reason, never its key.
func (g *Gateway) loadKeys() (*auth.KeySet, error) {
	src, what, attr := g.cfg.KeySource, "key source", "source"
	if src == nil && g.cfg.Keys != nil {
		if g.cfg.Keys.Len() == 0 {
			return nil, fmt.Errorf("in-memory key set is empty: %w", ErrNoKeys)
		}
		return g.cfg.Keys, nil
	}
	if src == nil {
		if g.cfg.KeysFile == "" {
			return nil, fmt.Errorf("no keys file configured: %w", ErrNoKeys)
		}
		src, what, attr = FileKeys(g.cfg.KeysFile), "keys file", "file"
	}
	keys, warnings, err := src.LoadKeys()
	for _, w := range warnings {
		g.log.Warn(what+": line skipped", attr, src.String(), "line", w.Line, "reason", w.Error())
	}
	if err != nil && g.cfg.KeySource != nil {
		err = fmt.Errorf("cannot load keys from %s: %w", src, err)
	} else if err == nil && (keys == nil || keys.Len() == 0) {
		err = fmt.Errorf("%s %q holds no valid key", what, src.String())
	}
	if err != nil {
		if g.cfg.AllowNoKeys {
			g.log.Warn(what+" unusable and AUTH_ALLOW_NO_KEYS=true: accepting ALL requests without a key", attr, src.String(), "err", err)
		}
		return nil, fmt.Errorf("%w: %w", ErrNoKeys, err)
	}
	g.log.Info("keys loaded", attr, src.String(), "keys", keys.Len(), "key_ids", len(keys.Identities()))
	return keys, nil
}

// publish makes keys the key set of every request from now on.
func (g *Gateway) publish(keys *auth.KeySet) {
	g.accounts.Sync(keys, g.cfg.DefaultRPM)
	g.keys.Store(accounts.NewSnapshot(keys, g.cfg.DefaultRPM))
}

// Reload reads the key source again and, if it yields at least one valid key,
// swaps it in atomically: requests in flight keep the set they started with,
// and key_ids that remain keep their limiter state. On any failure the
// current keys stay in force and the error says why (a reload never fails
// open). With authentication disabled it does nothing.
func (g *Gateway) Reload() error {
	if g.cfg.DisableAuth {
		return nil
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	keys, err := g.loadKeys()
	g.metrics.countReload(err)
	if err != nil {
		if g.cfg.AllowNoKeys && g.keys.Load().Keys.Len() == 0 {
			return err // still fail-open, as before
		}
		return fmt.Errorf("reload failed, keeping the previous keys: %w", err)
	}
	g.publish(keys)
	return nil
}

// SetKeys makes keys the gateway's key source from now on, in place of
// Config.Keys or Config.KeysFile (a later Reload, or the keys-file watch,
// applies keys again), and applies it as Reload does: atomically, key_ids
// that remain keep their limiter state, and an empty or nil set is refused
// with an error wrapping ErrNoKeys, the current keys staying in force. The
// gateway does not modify keys; the caller must not either. With
// authentication disabled it does nothing.
func (g *Gateway) SetKeys(keys *auth.KeySet) error {
	if g.cfg.DisableAuth {
		return nil
	}
	if keys == nil || keys.Len() == 0 {
		return fmt.Errorf("key set is empty, keeping the previous keys: %w", ErrNoKeys)
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	g.cfg.Keys = keys
	g.publish(keys)
	return nil
}

// Ready reports whether the gateway can serve traffic: keys are loaded (or
// none is required), at least one upstream is healthy (when
// Config.Upstreams names any: a gateway used only through Wrap or WrapHTTP
// needs none), and it is not draining for a stop (so that a load balancer
// probing /readyz moves away). /readyz answers 200 when Ready, else 503.
func (g *Gateway) Ready() bool {
	ready, _ := g.readiness()
	return ready
}

// readiness is Ready with the /readyz body that explains it: "ok", or
// "not ready", each followed by the state of a failing Limiter. With
// LimiterFailureMode closed a failing Limiter makes the gateway not ready,
// since it would answer every rate-limited request 503.
func (g *Gateway) readiness() (bool, []byte) {
	if g.draining.Load() || (len(g.cfg.Upstreams) > 0 && !g.proxy.Healthy()) ||
		!(g.cfg.DisableAuth || g.cfg.AllowNoKeys || g.keys.Load().Keys.Len() > 0) {
		return false, strNotReady
	}
	if g.cfg.Limiter == nil || g.open != nil || g.limiterErr() == nil {
		return true, strOK
	}
	switch g.cfg.LimiterFailureMode {
	case FailureClosed:
		return false, strNotReadyLimiterClosed
	case FailureOpen:
		return true, strOKLimiterOpen
	default:
		return true, strOKLimiterLocal
	}
}

// Serve accepts connections on ln until Shutdown. It returns nil after a
// Shutdown, else the listener's error.
//
// Config.MaxConns and MaxConnsPerIP are applied as connections are
// accepted: one beyond either is answered 503 or 429 and closed without
// being served (see listen.Limits). The counts are the Gateway's, shared by
// every listener it serves.
//
// Each accepted connection is wrapped, beneath TLS, in a netconn.Conn (the
// connection limits, the first read's check, parking when idle for
// Config.ParkIdleAfter): a request handler sees the
// wrapper, not a *net.TCPConn, in ctx.Conn().
func (g *Gateway) Serve(ln net.Listener) error {
	if err := g.srv.Serve(listen.Wrap(ln, g.conns, g.cert, listen.CheckBareLFHead, g.parker)); err != nil && !g.closed.Load() {
		return err
	}
	return nil
}

// serveParked serves a parked connection its client has written to, and
// logs its error as fasthttp's worker pool logs those of the others.
// resume serves again a connection whose relayed stream has ended: it
// waits parked for the next request, or on a goroutine of its own; or it
// is closed if the gateway is stopping.
func (g *Gateway) resume(c net.Conn) {
	if g.closed.Load() || g.draining.Load() {
		c.Close()
		return
	}
	if !g.parker.Park(c) {
		go g.serveParked(c)
	}
}

func (g *Gateway) serveParked(c net.Conn) {
	if err := g.srv.ServeConn(c); listen.LogServeError(err) {
		g.srv.Logger.Printf("error when serving connection %q<->%q: %v", c.LocalAddr(), c.RemoteAddr(), err)
	}
}

// Shutdown stops accepting connections, waits for requests in flight until
// ctx is done, then closes the access log (writing and syncing every line)
// and stops the admin listener, which serves until then. It returns ctx's
// error if requests were still running at the deadline.
func (g *Gateway) Shutdown(ctx context.Context) error {
	if d := g.cfg.DrainDelay; d > 0 {
		// Keep accepting for a moment, answering every request with
		// "Connection: close", so that keep-alive clients move to a new
		// connection (a new process on the same SO_REUSEPORT port) before
		// the listener closes, instead of racing a request against the
		// close of their idle connection.
		g.draining.Store(true)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	g.closed.Store(true)
	g.parker.Close()
	err := g.srv.ShutdownWithContext(ctx)
	if err == nil {
		err = g.relay.Wait(ctx) // streams the server let go of
	}
	return errors.Join(err, g.Close())
}

// Close stops the keys watch and the health checks, flushes and closes the
// access log (the file sink, or calls Config.AccessLogger's Close),
// releases upstream connections and stops the admin listener
// (ServeAdmin). It does not wait for requests in flight: use Shutdown, or
// call Close after the server running Wrap's or WrapHTTP's handlers has
// stopped. Close is idempotent; it returns the access log's error.
func (g *Gateway) Close() error {
	g.closed.Store(true)
	g.parker.Close()
	g.watcher.Stop()
	g.admin.Stop()
	g.relay.Close() // ends the streams left, which log their lines
	g.proxy.Close()
	if err := g.accounts.CloseTokens(); err != nil {
		g.log.Error("cannot save the tokens of the day", "dir", g.cfg.StateDir, "err", err)
	}
	if g.accessLog != nil && g.logClosed.CompareAndSwap(false, true) {
		return g.accessLog.Close()
	}
	return nil
}

// AccessLogStats returns the access log file sink's counters; zero without
// one (no AccessLog, or an AccessLogger in its place).
func (g *Gateway) AccessLogStats() logsink.Stats {
	if g.sink == nil {
		return logsink.Stats{}
	}
	return g.sink.Stats()
}

// ReopenAccessLog reopens the access log file (after logrotate moved it).
// Without a file sink it does nothing.
func (g *Gateway) ReopenAccessLog() error {
	if g.sink == nil {
		return nil
	}
	return g.sink.Reopen()
}

// TLSEnabled reports whether the public listener speaks HTTPS
// (Config.TLSCertFile and TLSKeyFile are set).
func (g *Gateway) TLSEnabled() bool { return g.cert != nil }

// ReloadTLS reads Config.TLSCertFile and TLSKeyFile again and, if they hold
// a valid certificate and its key, serves it from the next TLS handshake
// on; connections already open keep the certificate they were opened with.
// On failure the current certificate stays in force and the error names
// the file at fault. With TLS off it does nothing and returns nil. It is
// safe to call concurrently with serving (the CLI calls it on SIGHUP).
func (g *Gateway) ReloadTLS() error {
	if g.cert == nil {
		return nil
	}
	if err := g.cert.Reload(); err != nil {
		return fmt.Errorf("TLS reload failed, keeping the previous certificate: %w", err)
	}
	return nil
}

// Listen opens a TCP listener on addr with SO_REUSEPORT, so that a new
// authgate can bind the same port while an old one drains. Where the
// system has no SO_REUSEPORT it falls back to a plain listener and logs
// that it did (log may be nil).
func Listen(addr string, log *slog.Logger) (net.Listener, error) { return listen.Listen(addr, log) }
