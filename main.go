// Command authgate is an API-key gateway for OpenAI-compatible inference
// servers. See README.md and docs/.
//
//	authgate serve                      the gateway (configured by environment and flags)
//	authgate demo                       gateway + two mock upstreams + a generated key
//	authgate mock-upstream --listen A   a fake OpenAI-compatible server
//	authgate keys gen --id ID           print a new keys-file line
//	authgate keys hash                  print the sha256: form of a key read on stdin
//	authgate keys check FILE            check a keys file
//
// Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authgate/authgate/internal/upstreamspec"
	"github.com/authgate/authgate/limiter/redis"
	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/server"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr))
}

// env looks up an environment variable, like os.LookupEnv.
type env func(string) (string, bool)

const usage = `usage: authgate COMMAND [flags]

commands:
  serve                       run the gateway (see 'authgate serve --help')
  demo                        gateway on 127.0.0.1:8080 + two mock upstreams + a generated key
  mock-upstream --listen ADDR a fake OpenAI-compatible server
  keys gen --id ID            print a new "ID:sk-..." keys-file line
  keys hash                   read a key on stdin, print its sha256: form
  keys check FILE             check a keys file; exit 1 if any line is invalid
`

// run is main without os.Exit, for tests.
func run(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], getenv, stdout, stderr)
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "mock-upstream":
		return runMockUpstream(args[1:], stdout, stderr)
	case "keys":
		return runKeys(args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "authgate: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
}

// serveConfig is everything `serve` reads from its environment and flags.
type serveConfig struct {
	gw            server.Config
	listen        string
	admin         string // admin listener address; empty: none
	shutdownGrace time.Duration
	redisURL      string        // REDIS_URL; empty: limits in this process
	redisTimeout  time.Duration // REDIS_TIMEOUT
	redisLease    time.Duration // REDIS_LEASE
}

// setting is one configuration value: an environment variable and a flag
// of the same meaning. A flag wins over its variable; an empty variable
// counts as unset, except for those in emptyIsSet.
type setting struct {
	env, flag, def, usage string
	apply                 func(c *serveConfig, v string) error
}

// emptyIsSet lists the settings whose variable, set but empty, is a value
// rather than unset: ADMIN_ADDR= disables the admin listener.
var emptyIsSet = map[string]bool{"ADMIN_ADDR": true}

// secretSettings may hold credentials (a key, a URL with a password): their
// values are never repeated in an error message.
var secretSettings = map[string]bool{"UPSTREAM_URL": true, "UPSTREAM_API_KEY": true, "REDIS_URL": true, "ADMIN_TOKEN": true}

// settings lists serve's configuration (docs/configuration.md#variables-and-flags). Defaults
// that depend on DATA_DIR are filled in by loadServeConfig.
var settings = []setting{
	{"AUTH_ENABLED", "auth-enabled", "true", "false: accept every request without a key", func(c *serveConfig, v string) error {
		b, err := strconv.ParseBool(v)
		c.gw.DisableAuth = !b
		return err
	}},
	{"DATA_DIR", "data-dir", "/data", "base of the default keys file and access log paths", func(*serveConfig, string) error { return nil }},
	{"AUTH_KEYS_FILE", "keys-file", "", "keys file (default $DATA_DIR/api_keys.txt)", func(c *serveConfig, v string) error {
		c.gw.KeysFile = v
		return nil
	}},
	{"TOKEN_METERING", "token-metering", "true", "read the token usage of every answer and stream (false: only of key_ids with tpm= or tpd=)", func(c *serveConfig, v string) error {
		b, err := strconv.ParseBool(v)
		c.gw.NoMetering = !b
		return err
	}},
	{"TOKENS_PER_MINUTE", "tpm", "0", "default token limit per key_id in any sliding 60 s window, 0 for none (keys file: tpm=)", func(c *serveConfig, v string) error {
		n, err := parseCount(v, 0)
		c.gw.DefaultTPM = int64(n)
		return err
	}},
	{"TOKENS_PER_DAY", "tpd", "0", "default token limit per key_id per UTC day, 0 for none (keys file: tpd=)", func(c *serveConfig, v string) error {
		n, err := parseCount(v, 0)
		c.gw.DefaultTPD = int64(n)
		return err
	}},
	{"DEFAULT_MAX_TOKENS", "default-max-tokens", "4096", "output tokens a token-limited request reserves when it sets no max_tokens", func(c *serveConfig, v string) error {
		n, err := parseCount(v, 1)
		c.gw.DefaultMaxTokens = n
		return err
	}},
	{"MAX_REQUESTS_PER_MINUTE", "rpm", "100", "default limit per key_id in any sliding 60 s window", func(c *serveConfig, v string) error {
		n, err := strconv.Atoi(v)
		if err == nil && n < 1 {
			err = errors.New("must be at least 1")
		}
		c.gw.DefaultRPM = n
		return err
	}},
	{"LISTEN_ADDR", "listen", ":8080", "public listener address", func(c *serveConfig, v string) error {
		c.listen = v
		return checkListenAddr(v)
	}},
	{"UPSTREAM_URL", "upstream", "", "upstream base URL(s), comma-separated, each optionally followed by models=ID|ID... (required)", func(c *serveConfig, v string) error {
		ups, err := server.ParseUpstreams(v)
		c.gw.Upstreams = ups
		return err
	}},
	{"MODEL_ALIASES", "model-aliases", "", "model names clients may use for models upstreams serve: alias=model, comma-separated", func(c *serveConfig, v string) error {
		aliases, err := upstreamspec.ParseAliases(v)
		c.gw.ModelAliases = aliases
		return err
	}},
	{"UPSTREAM_API_KEY", "upstream-api-key", "", "sent upstream as 'Authorization: Bearer ...' when set", func(c *serveConfig, v string) error {
		c.gw.UpstreamAPIKey = v
		if strings.ContainsAny(v, "\r\n") {
			return errors.New("must not contain line breaks")
		}
		return nil
	}},
	{"ACCESS_LOG", "access-log", "", "access log path, '-' for stdout (default $DATA_DIR/logs/api_access.log)", func(c *serveConfig, v string) error {
		c.gw.AccessLog = v
		return nil
	}},
	{"ACCESS_LOG_FORMAT", "access-log-format", "text", "access log format: text or json", func(c *serveConfig, v string) error {
		f, err := logsink.ParseFormat(v)
		c.gw.AccessLogFormat = f
		return err
	}},
	{"UPSTREAM_HEALTH_PATH", "health-path", "/v1/models", "path each upstream's health check GETs; '-' for a TCP connect check", func(c *serveConfig, v string) error {
		if v != server.HealthCheckTCP && !strings.HasPrefix(v, "/") {
			return errors.New("must start with / (or be - for a TCP check)")
		}
		c.gw.HealthCheckPath = v
		return nil
	}},
	{"UPSTREAM_HEALTH_INTERVAL", "health-interval", "2s", "time between two health checks of an upstream; 'off' disables them", func(c *serveConfig, v string) error {
		d, err := parseDurationOrOff(v)
		c.gw.HealthCheckInterval = d
		return err
	}},
	{"UPSTREAM_TIMEOUT", "upstream-timeout", "10m", "longest wait for the upstream's response", func(c *serveConfig, v string) error {
		d, err := parsePositiveDuration(v)
		c.gw.UpstreamTimeout = d
		return err
	}},
	{"MAX_REQUEST_BODY", "max-request-body", "32MiB", "larger request bodies are answered 413", func(c *serveConfig, v string) error {
		n, err := parseSize(v)
		c.gw.MaxRequestBody = n
		return err
	}},
	{"INSPECT_MAX_BODY", "inspect-max-body", "", "largest body read to find its model, when routing needs it (default: MAX_REQUEST_BODY); larger ones are answered 413", func(c *serveConfig, v string) error {
		n, err := parseSize(v)
		c.gw.InspectMaxBody = n
		return err
	}},
	{"INSPECT_MEMORY", "inspect-memory", "256MiB", "most memory held at once by bodies read for their model; past it, 503", func(c *serveConfig, v string) error {
		n, err := parseSize(v)
		c.gw.InspectMemory = int64(n)
		return err
	}},
	{"SHUTDOWN_GRACE", "shutdown-grace", "30s", "how long a stop waits for requests in flight", func(c *serveConfig, v string) error {
		d, err := parsePositiveDuration(v)
		c.shutdownGrace = d
		return err
	}},
	{"SHUTDOWN_DRAIN", "shutdown-drain", "1s", "first phase of a stop: keep accepting, closing each connection after its response ('0s' skips it)", func(c *serveConfig, v string) error {
		d, err := time.ParseDuration(v)
		if err == nil && d < 0 {
			err = errors.New("must not be negative")
		}
		c.gw.DrainDelay = d
		return err
	}},
	// Limits against slow and hostile clients (docs/http.md#hostile-clients).
	{"READ_TIMEOUT", "read-timeout", "60s", "longest time to read a request, headers and body, counted from a new connection's opening or a kept-alive connection's first byte (slowloris); 408", func(c *serveConfig, v string) error {
		d, err := parsePositiveDuration(v)
		c.gw.ReadTimeout = d
		return err
	}},
	{"WRITE_TIMEOUT", "write-timeout", "60s", "longest a write to a client may wait (a whole response, or one piece of a stream; a stream's pauses are not counted)", func(c *serveConfig, v string) error {
		d, err := parsePositiveDuration(v)
		c.gw.WriteTimeout = d
		return err
	}},
	{"IDLE_TIMEOUT", "idle-timeout", "120s", "how long an idle keep-alive connection is kept", func(c *serveConfig, v string) error {
		d, err := parsePositiveDuration(v)
		c.gw.IdleTimeout = d
		return err
	}},
	{"PARK_IDLE_AFTER", "park-idle-after", "1s", "how long an idle plain-HTTP keep-alive connection keeps its goroutine and buffers before it waits parked, with neither (Linux); 'off' never parks", func(c *serveConfig, v string) error {
		d, err := parseDurationOrOff(v)
		c.gw.ParkIdleAfter = d
		return err
	}},
	{"STREAM_RELAY", "stream-relay", "true", "relay chunked streams to plain-HTTP/1.1 clients on the gateway's own event loop, without a goroutine or buffers per stream (Linux); false leaves them to the HTTP server", func(c *serveConfig, v string) error {
		b, err := strconv.ParseBool(v)
		c.gw.NoStreamRelay = !b
		return err
	}},
	{"MAX_CONNS", "max-conns", "10000", "most client connections at once, idle ones included; more are answered 503", func(c *serveConfig, v string) error {
		n, err := parseCount(v, 1)
		c.gw.MaxConns = n
		return err
	}},
	{"MAX_CONNS_PER_IP", "max-conns-per-ip", "0", "most client connections at once from one IP address, 0 for no limit (keep 0 behind a load balancer); more are answered 429", func(c *serveConfig, v string) error {
		n, err := parseCount(v, 0)
		c.gw.MaxConnsPerIP = n
		return err
	}},
	{"TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated CIDRs or IPs of the proxies in front whose X-Forwarded-For, Forwarded, X-Forwarded-Proto and X-Real-IP are believed and extended (not counted by MAX_CONNS_PER_IP); any other client's are replaced", func(c *serveConfig, v string) error {
		ps, err := server.ParseTrustedProxies(v)
		c.gw.TrustedProxies = ps
		return err
	}},
	{"MAX_HEADER_BYTES", "max-header-bytes", "16KiB", "largest request line and headers together; larger are answered 431", func(c *serveConfig, v string) error {
		n, err := parseSize(v)
		if err == nil && n < 1<<10 {
			err = errors.New("must be at least 1KiB")
		}
		c.gw.MaxHeaderBytes = n
		return err
	}},
	{"ADMIN_ADDR", "admin-listen", "127.0.0.1:9090", "admin listener (/metrics, /limits, /debug/pprof/); empty disables it", func(c *serveConfig, v string) error {
		c.admin = v
		if v == "" {
			return nil
		}
		return checkListenAddr(v)
	}},
	{"ADMIN_TOKEN", "admin-token", "", "bearer token every admin request must carry (16+ characters; pass it in the environment: a flag shows in ps); unset: Host localhost or an IP address only, pprof on loopback only", func(c *serveConfig, v string) error {
		c.gw.AdminToken = v
		return server.CheckAdminToken(v)
	}},
	{"AUTH_ALLOW_NO_KEYS", "allow-no-keys", "false", "fail open (accept all requests) when no valid key is configured", func(c *serveConfig, v string) error {
		b, err := strconv.ParseBool(v)
		c.gw.AllowNoKeys = b
		return err
	}},
	{"TLS_CERT_FILE", "tls-cert", "", "PEM certificate chain (leaf first): with TLS_KEY_FILE, the public listener speaks HTTPS only; reread on SIGHUP", func(c *serveConfig, v string) error {
		c.gw.TLSCertFile = v
		return nil
	}},
	{"TLS_KEY_FILE", "tls-key", "", "PEM private key of TLS_CERT_FILE; reread on SIGHUP", func(c *serveConfig, v string) error {
		c.gw.TLSKeyFile = v
		return nil
	}},
	{"REDIS_URL", "redis-url", "", "redis:// or rediss:// URL (user, password, /db): limits shared by every replica using it; empty keeps them in this process", func(c *serveConfig, v string) error {
		c.redisURL = v
		if v == "" {
			return nil
		}
		return redis.CheckURL(v)
	}},
	{"REDIS_FAILURE_MODE", "redis-failure-mode", "local", "when Redis cannot decide: local (this process's own limits), open (admit) or closed (503)", func(c *serveConfig, v string) error {
		m, err := server.ParseFailureMode(v)
		c.gw.LimiterFailureMode = m
		return err
	}},
	{"REDIS_TIMEOUT", "redis-timeout", "50ms", "longest wait for Redis's decision; longer applies REDIS_FAILURE_MODE", func(c *serveConfig, v string) error {
		d, err := parsePositiveDuration(v)
		c.redisTimeout = d
		return err
	}},
	{"REDIS_LEASE", "redis-lease", "15s", "how long a request's shared slot and token reservation outlive a replica that stops renewing them (killed)", func(c *serveConfig, v string) error {
		d, err := parsePositiveDuration(v)
		c.redisLease = d
		return err
	}},
}

// loadServeConfig builds serve's configuration from args and the
// environment. Errors name the variable or flag at fault.
func loadServeConfig(args []string, getenv env, stderr io.Writer) (*serveConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flagVals := map[string]string{}
	for _, s := range settings {
		name := s.flag
		fs.Func(name, fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def), func(v string) error {
			flagVals[name] = v
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	value := func(s setting) (v, source string, explicit bool) {
		if v, ok := flagVals[s.flag]; ok {
			return v, "--" + s.flag, true
		}
		if v, ok := getenv(s.env); ok && (v != "" || emptyIsSet[s.env]) {
			return v, s.env, true
		}
		return s.def, s.env, false
	}

	c := &serveConfig{}
	dataDir := "/data"
	for _, s := range settings {
		v, source, explicit := value(s)
		if s.env == "DATA_DIR" {
			dataDir = v
		}
		if !explicit && s.def == "" {
			continue
		}
		if err := s.apply(c, v); err != nil {
			if secretSettings[s.env] {
				return nil, fmt.Errorf("invalid %s: %w", source, err)
			}
			return nil, fmt.Errorf("invalid %s %q: %w", source, v, err)
		}
	}
	if c.gw.KeysFile == "" {
		c.gw.KeysFile = filepath.Join(dataDir, "api_keys.txt")
	}
	if c.gw.AccessLog == "" {
		c.gw.AccessLog = filepath.Join(dataDir, "logs", "api_access.log")
	}
	if fi, err := os.Stat(dataDir); err == nil && fi.IsDir() {
		c.gw.StateDir = dataDir // the tokens of the day survive a restart
	}
	if len(c.gw.Upstreams) == 0 {
		return nil, errors.New("UPSTREAM_URL (or --upstream) is required")
	}
	if c.gw.TLSCertFile != "" && c.gw.TLSKeyFile == "" {
		return nil, errors.New("TLS_KEY_FILE (or --tls-key) is required when TLS_CERT_FILE is set")
	}
	if c.gw.TLSKeyFile != "" && c.gw.TLSCertFile == "" {
		return nil, errors.New("TLS_CERT_FILE (or --tls-cert) is required when TLS_KEY_FILE is set")
	}
	return c, nil
}

// runServe is `authgate serve`.
func runServe(args []string, getenv env, stdout, stderr io.Writer) int {
	cfg, err := loadServeConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "authgate serve: %v\n", err)
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg.gw.Logger = logger
	cfg.gw.WatchKeysFile = true // the keys file is watched as well as reloaded on SIGHUP
	if cfg.redisURL != "" {
		r, err := newRedisLimiter(cfg, logger)
		if err != nil {
			fmt.Fprintf(stderr, "authgate serve: %v\n", err)
			return exitUsage
		}
		defer r.Close()
		cfg.gw.Limiter = r
		tk := redis.NewTokens(r, redis.TokensConfig{Period: cfg.gw.RateWindow, Lease: cfg.redisLease})
		defer tk.Close() // before r.Close
		cfg.gw.TokenStore = tk
	}
	gw, err := server.New(cfg.gw)
	if err != nil {
		fmt.Fprintf(stderr, "authgate serve: %v\n", err)
		return exitUsage
	}
	ln, err := server.Listen(cfg.listen, logger)
	if err != nil {
		gw.Close()
		fmt.Fprintf(stderr, "authgate serve: %v\n", err)
		return exitFailure
	}
	logger.Info("authgate serving", "listen", ln.Addr().String(), "upstreams", strings.Join(cfg.gw.Upstreams, ","),
		"auth", !cfg.gw.DisableAuth, "rpm", cfg.gw.DefaultRPM, "access_log", cfg.gw.AccessLog, "tls", gw.TLSEnabled())
	if cfg.admin != "" {
		adminLn, err := server.Listen(cfg.admin, logger)
		if err != nil {
			ln.Close()
			gw.Close()
			fmt.Fprintf(stderr, "authgate serve: admin listener: %v\n", err)
			return exitFailure
		}
		logAdminListener(logger, adminLn.Addr(), cfg.gw.AdminToken != "")
		// It stops when the gateway does (Shutdown and Close stop it).
		go func() {
			if err := gw.ServeAdmin(adminLn); err != nil {
				logger.Error("admin listener failed", "err", err)
			}
		}()
	}
	return serveUntilSignal(gw, ln, cfg.shutdownGrace, logger)
}

// newRedisLimiter builds the limiter that shares every key_id's window
// through REDIS_URL. A URL that does not parse, or a Redis that refuses the
// credentials, is an error; a Redis not reachable yet is not (the failure
// mode applies until it is).
func newRedisLimiter(cfg *serveConfig, logger *slog.Logger) (*redis.Limiter, error) {
	r, err := redis.New(redis.Config{URL: cfg.redisURL, Timeout: cfg.redisTimeout, Window: cfg.gw.RateWindow})
	if err != nil {
		return nil, fmt.Errorf("redis (REDIS_URL): %w", err)
	}
	mode := cmp.Or(cfg.gw.LimiterFailureMode, server.FailureLocal)
	logger.Info("rate limits are shared through redis", "redis", r.String(),
		"failure_mode", string(mode), "timeout", cmp.Or(cfg.redisTimeout, redis.DefaultTimeout))
	if err := r.Err(); err != nil {
		logger.Warn("redis is not reachable yet; requests are decided by the failure mode until it is",
			"redis", r.String(), "failure_mode", string(mode), "err", err)
	}
	return r, nil
}

// logAdminListener logs what the admin listener on addr serves, and to
// whom (see server.Gateway.AdminHandler), warning when it is open beyond
// this machine without a token.
func logAdminListener(logger *slog.Logger, addr net.Addr, token bool) {
	listen := addr.String()
	tcp, _ := addr.(*net.TCPAddr)
	switch {
	case token:
		logger.Info("admin listener serving /metrics, /limits and /debug/pprof/ to requests bearing ADMIN_TOKEN", "listen", listen)
	case tcp != nil && tcp.IP.IsLoopback():
		logger.Info("admin listener serving /metrics, /limits and /debug/pprof/ to requests for Host localhost or an IP address", "listen", listen)
	default:
		logger.Info("admin listener serving /metrics and /limits to requests for Host localhost or an IP address; /debug/pprof/ only on loopback connections", "listen", listen)
		logger.Warn("the admin listener is not on a loopback address and ADMIN_TOKEN is unset: "+
			"/metrics and /limits are open to anyone who can reach it, and /debug/pprof/ is not served on it "+
			"except to connections made to a loopback address; set ADMIN_TOKEN to require a token", "listen", listen)
	}
}

// serveUntilSignal serves gw on ln until SIGINT or SIGTERM, then drains for
// at most grace. SIGHUP reloads the keys and, with TLS on, the certificate;
// SIGUSR1 reopens the access log.
func serveUntilSignal(gw *server.Gateway, ln net.Listener, grace time.Duration, logger *slog.Logger) int {
	if grace == 0 {
		grace = server.DefaultShutdownGrace
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln) }()
	for {
		select {
		case err := <-served:
			logger.Error("listener failed", "err", err)
			gw.Close()
			return exitFailure
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				if err := gw.Reload(); err != nil {
					logger.Error("keys reload failed", "trigger", "SIGHUP", "err", err)
				} else {
					logger.Info("keys reloaded", "trigger", "SIGHUP")
				}
				if gw.TLSEnabled() {
					// Success is logged by the gateway ("TLS certificate loaded").
					if err := gw.ReloadTLS(); err != nil {
						logger.Error("TLS certificate reload failed", "err", err)
					}
				}
			case syscall.SIGUSR1:
				if err := gw.ReopenAccessLog(); err != nil {
					logger.Error("access log reopen failed", "err", err)
				} else {
					logger.Info("access log reopened")
				}
			default:
				logger.Info("stopping: draining requests in flight", "signal", sig.String(), "grace", grace.String())
				ctx, cancel := context.WithTimeout(context.Background(), grace)
				err := gw.Shutdown(ctx)
				cancel()
				<-served
				if err != nil {
					logger.Error("shutdown incomplete", "err", err)
					return exitFailure
				}
				logger.Info("stopped", "access_log_lines", gw.AccessLogStats().Written)
				return exitOK
			}
		}
	}
}

// checkListenAddr checks that v is HOST:PORT with a port of 0 to 65535.
func checkListenAddr(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("want HOST:PORT, e.g. :8080 or 127.0.0.1:8080")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("port must be 0 to 65535")
	}
	return nil
}

// parsePositiveDuration parses a Go duration ("30s", "10m") that must be
// greater than zero.
func parsePositiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d <= 0 {
		err = errors.New("must be greater than zero")
	}
	return d, err
}

// parseDurationOrOff parses a positive duration, or "off" as -1 (the
// Config's "never").
func parseDurationOrOff(v string) (time.Duration, error) {
	if v == "off" {
		return -1, nil
	}
	return parsePositiveDuration(v)
}

// parseCount parses a whole number of at least least.
func parseCount(v string, least int) (int, error) {
	n, err := strconv.Atoi(v)
	if err == nil && n < least {
		err = fmt.Errorf("must be at least %d", least)
	}
	return n, err
}

// parseSize parses a byte size: a whole number with an optional unit B, KB,
// KiB, MB, MiB, GB or GiB (case-insensitive; KB = 1000, KiB = 1024).
func parseSize(v string) (int, error) {
	s := strings.TrimSpace(v)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, errors.New("want a number of bytes, e.g. 32MiB")
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]int64{"": 1, "b": 1, "kb": 1e3, "kib": 1 << 10, "mb": 1e6, "mib": 1 << 20, "gb": 1e9, "gib": 1 << 30}
	m, ok := mult[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (use B, KB, KiB, MB, MiB, GB or GiB)", s[i:])
	}
	if n > (1<<31-1)/m {
		return 0, errors.New("too large (at most 2GiB-1)")
	}
	if n == 0 {
		return 0, errors.New("must be greater than zero")
	}
	return int(n * m), nil
}
