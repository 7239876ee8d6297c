package server

import (
	"errors"
	"time"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/accounts"
	"github.com/authgate/authgate/limiter"
)

// KeySource supplies a Gateway's keys: New reads it once, and Reload (and
// so SIGHUP) reads it again. The default source is the keys file,
// FileKeys(Config.KeysFile); Config.Keys is a fixed in-memory set; set
// Config.KeySource for keys kept elsewhere (a database, a secrets manager).
// A source is only called by one goroutine at a time.
type KeySource interface {
	// LoadKeys returns the current key set, with a warning for each entry
	// it skipped. An error, or a set without a key, keeps the gateway's
	// previous keys (a reload never fails open). Neither may contain a key.
	LoadKeys() (*auth.KeySet, []*auth.LineError, error)

	// String names the source in logs and errors; it must not contain a
	// secret.
	String() string
}

// FileKeys is the KeySource of a keys file at the path it holds
// (docs/keys-file.md#format), read with auth.Load.
type FileKeys string

// LoadKeys reads the keys file.
func (f FileKeys) LoadKeys() (*auth.KeySet, []*auth.LineError, error) { return auth.Load(string(f)) }

// String returns the file's path.
func (f FileKeys) String() string { return string(f) }

// Limiter decides whether a key_id may make one more request: the
// gateway's rate limit, when it is not the built-in one (an exact sliding
// window per key_id in this process, limiter.Window). Set Config.Limiter
// to share limits between processes (the Limiter of package limiter/redis,
// for several replicas) or to apply another policy. A Limiter that also has
// a method WriteMetrics(io.Writer) adds its own lines to /metrics.
//
// Allow is called once per authenticated request that is rate-limited,
// with the request's key_id (a string the gateway owns; it may be kept),
// the key_id's limit per Config.RateWindow (its rpm= setting, else
// Config.DefaultRPM) and the request's arrival time. It returns whether
// the request is admitted, and the Limit, Remaining and Reset the gateway
// puts in the x-ratelimit-*-requests headers (and, for a refused request,
// in retry-after-ms and Retry-After). It must be safe for concurrent use
// and should answer at once: the request waits for it. An admitted request
// must count against the limit, a refused one must not.
//
// A non-nil error means the limiter could not decide (its store is
// unreachable): nothing was recorded, and Config.LimiterFailureMode
// decides the request instead. A Limiter that also has a method
// Err() error reports through it whether it is currently failing; the
// gateway shows that in /readyz and its metrics.
type Limiter interface {
	Allow(keyID string, limit int, now time.Time) (limiter.Result, error)
}

// allow decides a request of acct arriving at now with the configured
// limiter, or acct's own window. ok is false when the configured limiter
// failed and the failure mode is closed: the request must then be answered
// 503.
func (g *Gateway) allow(acct *accounts.Account, now time.Time, shard uint32) (res limiter.Result, ok bool) {
	l := g.cfg.Limiter
	if l == nil {
		return acct.Window.AllowAt(now), true
	}
	res, err := l.Allow(acct.KeyID, acct.Window.Limit(), now)
	if err == nil {
		if res.Allowed {
			// This process's own admissions, for a local fallback.
			acct.Window.AllowAt(now)
		}
		if g.limiterFailing.Load() && g.limiterFailing.CompareAndSwap(true, false) {
			g.log.Info("rate limiter recovered: limits are shared again")
		}
		return res, true
	}
	mode := g.cfg.LimiterFailureMode
	if g.limiterFailing.CompareAndSwap(false, true) {
		g.log.Warn("rate limiter failed; requests are decided by the failure mode until it recovers",
			"failure_mode", string(mode), "err", err)
	}
	g.metrics.limiterFallback.Inc(shard)
	switch mode {
	case FailureOpen:
		res = acct.Window.AllowAt(now)
		res.Allowed = true
		return res, true
	case FailureClosed:
		return limiter.Result{}, false
	default:
		return acct.Window.AllowAt(now), true
	}
}

// limiterErr reports whether the configured limiter is failing, and why:
// by its Err method if it has one, else by its last decision.
func (g *Gateway) limiterErr() error {
	if e, ok := g.cfg.Limiter.(interface{ Err() error }); ok {
		return e.Err() // it knows, even between requests
	}
	if g.limiterFailing.Load() {
		return errLimiterFailing
	}
	return nil
}

var errLimiterFailing = errors.New("the rate limiter's last decision failed")
