package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/adminguard"
	"github.com/authgate/authgate/internal/forwarded"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/internal/upstreamspec"
	"github.com/authgate/authgate/limiter/tokens"
	"github.com/authgate/authgate/logsink"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultRPM             = 100
	DefaultMaxTokens       = 4096
	DefaultUpstreamTimeout = 10 * time.Minute
	DefaultMaxRequestBody  = 32 << 20
	DefaultInspectMemory   = 256 << 20
	DefaultShutdownGrace   = 30 * time.Second
	DefaultReadTimeout     = 60 * time.Second
	DefaultIdleTimeout     = 120 * time.Second
	DefaultParkIdleAfter   = time.Second
	DefaultWriteTimeout    = 60 * time.Second
	DefaultMaxConns        = 10_000
	DefaultMaxHeaderBytes  = 16 << 10

	// RateWindow is the length of the sliding window every limit counts in,
	// unless Config.RateWindow says otherwise.
	RateWindow = time.Minute
)

// Pseudo key_ids under which requests are logged when no key is checked.
const (
	KeyIDAuthDisabled     = "auth-disabled"
	KeyIDNoKeysConfigured = "no-keys-configured"
	KeyIDNone             = "-"
)

// Config holds a Gateway's settings: the same ones as the CLI's environment
// variables and flags (docs/configuration.md#variables-and-flags). The zero value of every
// field is valid and means the documented default, except that, with
// authentication on, Keys or KeysFile must provide at least one key.
type Config struct {
	// DisableAuth passes every request without a key (AUTH_ENABLED=false),
	// logged under key_id "auth-disabled" and not rate-limited.
	// The zero value keeps authentication on.
	DisableAuth bool

	// KeysFile is the keys file (docs/keys-file.md#format). Ignored when Keys
	// is set.
	KeysFile string

	// Keys is an in-memory key set used instead of KeysFile: the pluggable
	// key source (tests, or keys kept elsewhere), built with auth.NewKeySet.
	// Gateway.SetKeys replaces it at run time; Reload applies it again. The
	// gateway does not modify it.
	Keys *auth.KeySet

	// KeySource, if set, supplies the keys instead of Keys and KeysFile
	// (see KeySource).
	KeySource KeySource

	// WatchKeysFile watches KeysFile and reloads it on change; ignored with
	// Keys, KeySource or DisableAuth. The watch is on the file's directory, so a
	// rename over the file and a swap of a symlink on its path (Kubernetes
	// Secret volumes) are seen as well as a write; a change applies within
	// about 100 ms, and within 1 s where only the 500 ms fingerprint poll
	// sees it. A change that leaves no valid key keeps the last good set,
	// as Reload does. The zero value reloads only when Reload is called.
	WatchKeysFile bool

	// AllowNoKeys restores the seed's fail-open mode: with authentication on
	// but no usable key (missing file or no valid line), every request passes
	// under key_id "no-keys-configured". The zero value fails closed: New
	// returns an error wrapping ErrNoKeys.
	AllowNoKeys bool

	// Limiter, if set, decides the rate limit instead of the built-in
	// per-key_id sliding windows (see Limiter): the Limiter of package
	// limiter/redis shares limits between replicas (the CLI builds one for
	// REDIS_URL); the gateway does not close it. The built-in windows still record every request it
	// admits, so that they hold this process's own recent admissions when
	// LimiterFailureMode "local" falls back on them; the admin /limits
	// snapshot shows these built-in windows.
	Limiter Limiter

	// LimiterFailureMode says what a request gets when Limiter fails to
	// decide (REDIS_FAILURE_MODE): FailureLocal (the zero value) decides it
	// with the built-in window of this process, FailureOpen admits it, and
	// FailureClosed answers 503 in OpenAI's shape
	// ("rate_limiter_unavailable"). It also applies to TokenStore.
	LimiterFailureMode FailureMode

	// TokenStore, if set, shares the token limits (tpm=, tpd=) and the
	// concurrency= slots between replicas (tokens.Store; the CLI builds
	// package limiter/redis's Tokens for REDIS_URL), LimiterFailureMode
	// saying what a request gets when it cannot decide (local: this
	// process's own limits). The gateway does not close it; a store with a
	// method WriteMetrics(io.Writer) adds its lines to /metrics.
	TokenStore tokens.Store

	// RateWindow is the length of the sliding window every limit counts in.
	// Zero means 60 s (the constant RateWindow);
	// tests use shorter windows. A Limiter is told the limit, not the
	// window: configure it with the same window.
	RateWindow time.Duration

	// DefaultRPM is the limit of a key_id without its own rpm= setting, in
	// any sliding 60 s window. Zero means DefaultRPM (100).
	DefaultRPM int

	// DefaultTPM and DefaultTPD are the token limits of a key_id without
	// its own tpm= or tpd= settings, per sliding 60 s window and per UTC
	// day; zero means none (docs/http.md#token-limits).
	DefaultTPM, DefaultTPD int64

	// NoMetering turns token metering off where no token limit needs it
	// (TOKEN_METERING=false; docs/http.md#token-metering).
	NoMetering bool

	// StateDir is where the key_ids' tokens of the UTC day are saved
	// (tokens.StateFile), every StateSaveInterval and on Close, and read
	// back by New, so that tpd= survives a restart; a crash loses at most
	// an interval. "" keeps them in memory only (docs/http.md#token-limits).
	StateDir string

	// DefaultMaxTokens is the output a token-limited request reserves at
	// admission when it sets no max_tokens (or max_completion_tokens,
	// max_output_tokens). Zero means DefaultMaxTokens (4,096).
	DefaultMaxTokens int

	// Upstreams are the base URLs of the upstream servers (http or https,
	// host and optional port and path prefix). Requests go to the healthy
	// one with the fewest requests in flight. Empty is valid for a gateway
	// used only to wrap handlers (Gateway.Wrap, Gateway.WrapHTTP): its own
	// Handler then answers every admitted request 502
	// ("upstream_unavailable"), and Ready does not wait for an upstream.
	Upstreams []string

	// ModelAliases maps alias to model (docs/configuration.md#models-and-routing).
	ModelAliases map[string]string

	// UpstreamAPIKey, when set, is sent upstream as "Authorization: Bearer …".
	// The client's own Authorization header never reaches the upstream.
	UpstreamAPIKey string

	// UpstreamTimeout bounds the wait for the upstream's response headers,
	// and then for each piece of a streamed body. Zero means
	// DefaultUpstreamTimeout (10 minutes: LLM answers are slow).
	UpstreamTimeout time.Duration

	// HealthCheckPath is what the active health check GETs on each upstream
	// (after its base path); a status below 500 passes. HealthCheckTCP ("-")
	// checks only that a TCP connection opens. Empty means
	// DefaultHealthCheckPath ("/v1/models").
	HealthCheckPath string

	// HealthCheckInterval is the time between two checks of an upstream.
	// Zero means DefaultHealthCheckInterval (2 s); negative turns active
	// checks off, and with them passive ejection (an upstream that refused
	// a connection would otherwise never rejoin).
	HealthCheckInterval time.Duration

	// UpstreamDial, if set, opens connections to upstreams instead of a
	// net.Dialer (tests and benchmarks use in-memory pipes).
	UpstreamDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// MaxRequestBody is the largest request body accepted, in bytes; larger
	// ones are answered 413 without reaching the upstream.
	// Zero means DefaultMaxRequestBody (32 MiB).
	MaxRequestBody int

	// InspectMaxBody is the largest body the gateway reads to find the
	// model it names, when it must (docs/http.md#model-routing); a larger
	// one is answered 413 then. Zero means MaxRequestBody.
	InspectMaxBody int

	// InspectMemory bounds the bytes held at once by all the bodies being
	// read for their model; a request that would pass it is answered 503
	// with Retry-After: 1. Zero means DefaultInspectMemory (256 MiB).
	InspectMemory int64

	// AccessLog is the access log path, "-" for standard output. Empty means
	// no access log (the CLI always sets one).
	AccessLog string

	// AccessLogger, if set, receives the access log instead of a file sink
	// (AccessLog and AccessLogFormat are then ignored), every Entry field
	// filled in; AccessLogFunc adapts a plain function. Gateway.Close
	// closes it.
	AccessLogger AccessLogger

	// AccessLogFormat selects the access log's line format.
	AccessLogFormat logsink.Format

	// DrainDelay is the first phase of Shutdown: for this long the gateway
	// keeps accepting but answers every request with "Connection: close",
	// so that keep-alive clients reconnect (to a successor bound to the same
	// port) before the listener closes. Zero means no drain phase.
	DrainDelay time.Duration

	// ReadTimeout bounds reading one request, headers and body, from a
	// client: from a new connection's opening, or from the first byte of a
	// kept-alive connection's next request. A client still sending when it
	// expires (a slowloris dribbling its headers) gets 408 and is
	// disconnected. Zero means DefaultReadTimeout (60 s). ReadTimeout,
	// IdleTimeout and WriteTimeout are exact: each is the net package's
	// deadline, set as fasthttp asks.
	ReadTimeout time.Duration

	// IdleTimeout bounds how long an idle keep-alive connection is kept.
	// Zero means DefaultIdleTimeout (120 s).
	IdleTimeout time.Duration

	// ParkIdleAfter is how long a plain-HTTP keep-alive connection waits
	// for its next request holding a goroutine and its buffers; after that
	// it waits parked, with neither, until its client sends (Linux only).
	// Zero means DefaultParkIdleAfter (1 s); negative, or not below
	// IdleTimeout, never parks.
	ParkIdleAfter time.Duration

	// NoStreamRelay keeps every streamed response in fasthttp's hands.
	// Otherwise (Linux, plain HTTP/1.1) a chunked stream from an upstream
	// is relayed outside the server once its head is written, on an event
	// loop of the gateway's own, with neither a goroutine nor buffers
	// per stream (docs/http.md#relayed-streams).
	NoStreamRelay bool

	// WriteTimeout bounds writing a response to a client that does not
	// read it: a response held whole (errors, bodies up to 1 MiB) must be
	// written within WriteTimeout, and a streamed one each piece within
	// WriteTimeout of the upstream sending it. The wait for the upstream
	// is not counted, so a stream may last as long as the upstream keeps
	// sending (UpstreamTimeout bounds its pauses). A client too slow is
	// disconnected, and its upstream request cancelled. Zero means
	// DefaultWriteTimeout (60 s).
	WriteTimeout time.Duration

	// MaxConns is the most client connections open at once, idle
	// keep-alive ones included; a connection beyond it is answered 503
	// (OpenAI's error shape, code "too_many_connections") and closed
	// without being served. Zero means DefaultMaxConns (10,000).
	//
	// Both limits are applied by the listener of Gateway.Serve, as it
	// accepts; a server running Wrap's handler applies its own.
	MaxConns int

	// MaxConnsPerIP is the most client connections open at once from one
	// IP address; a connection beyond it is answered 429 (code
	// "too_many_connections") and closed. Connections from TrustedProxies
	// are not counted: the limit applies as a connection is accepted,
	// before any header says whom a proxy carries, and a proxy's one
	// address carries many clients. Zero means no limit, the right
	// setting behind a load balancer not listed in TrustedProxies.
	MaxConnsPerIP int

	// TrustedProxies are the proxies in front of the gateway whose
	// forwarding headers are believed (TRUSTED_PROXIES; see
	// ParseTrustedProxies). A request whose peer (the TCP connection's far
	// end, IPv4-mapped addresses unmapped) is in one of them keeps its
	// X-Forwarded-For and Forwarded, extended with the peer, its
	// X-Forwarded-Proto and X-Real-Ip; its client, in the access log, is
	// the rightmost X-Forwarded-For address not itself in TrustedProxies.
	// From any other peer the upstream gets X-Forwarded-For: the peer,
	// X-Forwarded-Proto: the scheme the gateway served, and none of the
	// peer's own forwarding headers. The zero value trusts no peer. New
	// copies the slice.
	TrustedProxies []netip.Prefix

	// MaxHeaderBytes is the largest request head (request line and
	// headers) read; a larger one is answered 431. It is also each
	// connection's read buffer size. Zero means DefaultMaxHeaderBytes
	// (16 KiB); at least 1 KiB.
	MaxHeaderBytes int

	// TLSCertFile and TLSKeyFile, both set, make the public listener speak
	// HTTPS only (TLS 1.2 or later, HTTP/1.1): a PEM certificate chain,
	// leaf first, and its PEM private key. New loads them and fails naming
	// the file at fault, or the missing one when only one is set;
	// Gateway.ReloadTLS reads them again. Both empty means plain HTTP.
	TLSCertFile string
	TLSKeyFile  string

	// AdminToken, when set, is required of every request to AdminHandler
	// (ServeAdmin) as "Authorization: Bearer <AdminToken>" (ADMIN_TOKEN);
	// a request without it is answered 401, one with it is served whatever
	// its Host and address. At least 16 characters, none of them
	// whitespace or control characters (CheckAdminToken). The zero value
	// requires no token: AdminHandler then refuses Hosts that DNS
	// rebinding could use and serves pprof only on loopback connections
	// (see AdminHandler).
	AdminToken string

	// Logger receives operational messages (never keys). Nil means
	// slog.Default().
	Logger *slog.Logger
}

// FailureMode is Config.LimiterFailureMode: what to do with a request when
// the configured Limiter cannot decide it.
type FailureMode string

// The failure modes, named as REDIS_FAILURE_MODE spells them.
const (
	FailureLocal  FailureMode = "local"
	FailureOpen   FailureMode = "open"
	FailureClosed FailureMode = "closed"
)

// ParseFailureMode returns the FailureMode s names.
func ParseFailureMode(s string) (FailureMode, error) {
	switch m := FailureMode(s); m {
	case FailureLocal, FailureOpen, FailureClosed:
		return m, nil
	}
	return "", fmt.Errorf("unknown failure mode %q: want local, open or closed", s)
}

// ErrNoKeys is returned by New when authentication is on, AllowNoKeys is
// off, and no usable key was found.
var ErrNoKeys = errors.New("server: no valid API key configured")

// ErrNoUpstream is returned by ParseUpstreams for an empty value.
var ErrNoUpstream = upstreamspec.ErrNoUpstream

// ParseUpstreams splits a comma-separated UPSTREAM_URL value into base URLs
// and checks each one: scheme http or https, a host, no query, fragment or
// user info. Blank items are an error, not skipped. Errors never show a
// password.
func ParseUpstreams(s string) ([]string, error) { return upstreamspec.ParseUpstreams(s) }

// Health-check settings of Config.HealthCheckPath and HealthCheckInterval.
const (
	DefaultHealthCheckPath     = proxy.DefaultHealthCheckPath
	DefaultHealthCheckInterval = proxy.DefaultHealthCheckInterval
	// HealthCheckTCP as Config.HealthCheckPath checks that a TCP connection
	// can be opened, without an HTTP request.
	HealthCheckTCP = proxy.HealthCheckTCP
	// HealthCheckUserAgent is the User-Agent of health-check requests, so
	// that upstreams and their logs can tell them from clients' requests.
	HealthCheckUserAgent = proxy.HealthCheckUserAgent
)

// StatusClientClosed is logged for a request whose client went away before
// its response was sent (nginx's 499).
const StatusClientClosed = proxy.StatusClientClosed

// watchesKeysFile reports whether the gateway's configuration asks for a
// keys file watcher: WatchKeysFile, a keys file, no in-memory keys, and
// authentication on.
func (c *Config) watchesKeysFile() bool {
	return c.WatchKeysFile && c.KeysFile != "" && c.Keys == nil && c.KeySource == nil && !c.DisableAuth
}

// ParseTrustedProxies parses a TRUSTED_PROXIES value for
// Config.TrustedProxies: comma-separated CIDR prefixes (10.0.0.0/8,
// 2001:db8::/32) or bare IP addresses (a bare address is its /32 or /128).
// An empty or blank s is no proxy. The error names the item at fault: one
// that is empty, not an address or prefix, has a zone, or sets address
// bits beyond its prefix length (10.1.2.3/8, most likely a typo that would
// trust far more than meant).
func ParseTrustedProxies(s string) ([]netip.Prefix, error) { return forwarded.Parse(s) }

// CheckAdminToken returns nil if token is a valid Config.AdminToken: at
// least 16 characters of valid UTF-8, none of them whitespace or a control
// character. Its errors never show the token.
func CheckAdminToken(token string) error { return adminguard.CheckToken(token) }

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.DefaultMaxTokens == 0 {
		c.DefaultMaxTokens = DefaultMaxTokens
	}
	if c.DefaultRPM == 0 {
		c.DefaultRPM = DefaultRPM
	}
	if c.UpstreamTimeout == 0 {
		c.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if c.MaxRequestBody == 0 {
		c.MaxRequestBody = DefaultMaxRequestBody
	}
	if c.InspectMaxBody == 0 {
		c.InspectMaxBody = c.MaxRequestBody
	}
	if c.InspectMemory == 0 {
		c.InspectMemory = DefaultInspectMemory
	}
	if c.HealthCheckPath == "" {
		c.HealthCheckPath = DefaultHealthCheckPath
	}
	if c.HealthCheckInterval == 0 {
		c.HealthCheckInterval = DefaultHealthCheckInterval
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ParkIdleAfter == 0 {
		c.ParkIdleAfter = DefaultParkIdleAfter
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LimiterFailureMode == "" {
		c.LimiterFailureMode = FailureLocal
	}
	if c.RateWindow == 0 {
		c.RateWindow = RateWindow
	}
	c.TrustedProxies = forwarded.Normalize(c.TrustedProxies)
	return c
}

// validate reports the first setting that is out of range.
func (c *Config) validate() error {
	switch {
	case c.DefaultRPM < 1:
		return fmt.Errorf("default rpm %d: must be at least 1", c.DefaultRPM)
	case c.UpstreamTimeout < 0:
		return fmt.Errorf("upstream timeout %v: must not be negative", c.UpstreamTimeout)
	case c.MaxRequestBody < 0:
		return fmt.Errorf("max request body %d: must not be negative", c.MaxRequestBody)
	case c.InspectMaxBody < 0 || c.InspectMemory < 0:
		return fmt.Errorf("inspection bounds must not be negative (max body %d, memory %d)", c.InspectMaxBody, c.InspectMemory)
	case c.InspectMemory < int64(min(c.InspectMaxBody, c.MaxRequestBody)):
		return fmt.Errorf("inspect memory %d: must hold at least one body of the inspection bound (%d)", c.InspectMemory, min(c.InspectMaxBody, c.MaxRequestBody))
	case c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0:
		return fmt.Errorf("timeouts must not be negative (read %v, write %v, idle %v)", c.ReadTimeout, c.WriteTimeout, c.IdleTimeout)
	case c.MaxConns < 0 || c.MaxConnsPerIP < 0:
		return fmt.Errorf("connection limits must not be negative (max conns %d, per IP %d)", c.MaxConns, c.MaxConnsPerIP)
	case c.MaxHeaderBytes < 1<<10:
		return fmt.Errorf("max header bytes %d: must be at least 1024", c.MaxHeaderBytes)
	case c.HealthCheckPath != HealthCheckTCP && !strings.HasPrefix(c.HealthCheckPath, "/"):
		return fmt.Errorf("health check path %q: must start with / (or be %q for a TCP check)", c.HealthCheckPath, HealthCheckTCP)
	case strings.ContainsAny(c.UpstreamAPIKey, "\r\n"):
		return errors.New("upstream API key must not contain line breaks")
	case c.RateWindow < 0:
		return fmt.Errorf("rate window %v: must not be negative", c.RateWindow)
	}
	if c.AdminToken != "" {
		if err := CheckAdminToken(c.AdminToken); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	}
	if _, err := ParseFailureMode(string(c.LimiterFailureMode)); err != nil {
		return fmt.Errorf("limiter failure mode: %w", err)
	}
	for i, p := range c.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("trusted proxy %d of %d: not a valid prefix", i+1, len(c.TrustedProxies))
		}
	}
	return nil
}
