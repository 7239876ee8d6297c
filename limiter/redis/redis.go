package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/rueidis"

	"github.com/authgate/authgate/limiter"
)

// Defaults of Config.
const (
	DefaultTimeout   = 50 * time.Millisecond
	DefaultKeyPrefix = "authgate:rl:"
)

// ErrUnavailable is returned (wrapped) by Limiter.Allow while Redis
// cannot be reached: after a failed call, until a background probe reaches
// it again.
var ErrUnavailable = errors.New("redis unavailable")

// slidingWindowScript is the whole decision, run atomically by Redis.
//
// KEYS[1] is the key_id's sorted set: one member per admission in the
// window, scored by its time in microseconds of Redis's own clock (TIME),
// so replicas whose clocks disagree still share one timeline.
// ARGV: limit, window in µs, a member name unique to this request; and,
// from tests only (Limiter.callerClock), the now in µs to decide at
// instead of TIME.
//
// The semantics are limiter.Window's: an admission at t counts while now-t < window
// (it leaves at exactly t+window); a request is admitted iff fewer than
// limit admissions remain, and only an admitted one is recorded. The set
// expires one window after its newest admission, so idle key_ids cost
// nothing. Should Redis's clock step backwards, admissions recorded "in the
// future" stay in the window longer: fewer requests are admitted, never
// more.
//
// Returns {admitted 0/1, admissions in the window after the decision, µs
// until the oldest of them leaves (the window when there is none)}.
const slidingWindowScript = `
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local admitted = 0
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1)
  n = n + 1
  admitted = 1
end
local reset = window
if n > 0 then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  reset = tonumber(oldest[2]) + window - now
end
return {admitted, n, reset}
`

// Config configures New.
type Config struct {
	// URL is redis://[user:password@]host[:port][/db] or rediss:// for
	// TLS (also ?db=N, ?dial_timeout=…). It is a secret: it never appears
	// in an error or log.
	URL string

	// Timeout bounds each decision's round trip to Redis; a decision that
	// takes longer fails with ErrUnavailable. The zero value means
	// DefaultTimeout (50 ms).
	Timeout time.Duration

	// Window is the sliding window's length; the zero value means 60 s.
	// Every replica sharing a Redis must use the same one.
	Window time.Duration

	// KeyPrefix names the sorted sets: KeyPrefix + key_id. The zero value
	// means DefaultKeyPrefix. Gateways that must not share limits can
	// use one Redis with different prefixes.
	KeyPrefix string

	// Logger receives a line when Redis becomes unreachable and when it is
	// reached again (once per transition); nil discards them.
	Logger *slog.Logger
}

// Limiter is a sliding-window rate limiter whose state lives in Redis, so
// that every process using the same Redis (and KeyPrefix) shares one
// window per key_id: N replicas together admit at most a key_id's limit in
// any window, under any interleaving.
//
// Each decision is one atomic Lua script call (EVALSHA, auto-pipelined by
// rueidis with the other requests in flight): a sorted set of admission
// times per key_id, trimmed to the window, on Redis's clock. See
// slidingWindowScript for the exact semantics, which are limiter.Window's.
//
// Local pre-check: a refused decision tells how long until the key_id's
// oldest admission leaves the window; until then every request of that
// key_id would be refused too (admissions only leave by time, and refused
// requests are not recorded), so Allow refuses them without a round trip.
// The pre-check is conservative: it ends at the earliest instant the slot
// could free on Redis's clock. A changed limit ends it at once.
//
// Failures: a call that fails or exceeds Timeout returns an error wrapping
// ErrUnavailable and marks Redis down; while down, Allow fails at
// once (no request waits on a dead Redis) and one background probe PINGs
// Redis every 250 ms, reconnecting, until it answers. The caller decides
// what a failed decision means (the gateway's REDIS_FAILURE_MODE).
type Limiter struct {
	client  rueidis.Client
	script  *rueidis.Lua
	prefix  string
	window  time.Duration
	winArg  string
	timeout time.Duration
	log     *slog.Logger
	host    string // for logs: host:port, no credentials

	// callerClock makes the script decide at Allow's now rather than at
	// Redis's TIME, so that tests step through fixed instants; set only
	// by tests, before the first Allow.
	callerClock bool

	// member names are id + "-" + seq: unique across processes.
	id  string
	seq atomic.Uint64

	down    atomic.Bool
	lastErr atomic.Pointer[error]
	probing atomic.Bool
	closed  chan struct{}
	once    sync.Once

	blocks [blockShards]blockShard

	// Counters for metrics.
	calls, failures, prechecked atomic.Uint64
}

const blockShards = 32

// blockShard holds key_ids known to be at their limit, with the instant
// their slot frees and the limit that was full. Entries exist only while a
// key_id is blocked (at most one window), so the map is bounded by the
// number of key_ids refused in the last window.
type blockShard struct {
	mu sync.Mutex
	m  map[string]block
	_  [40]byte // keep shards on separate cache lines
}

type block struct {
	until time.Time
	limit int
}

// New connects to the Redis at cfg.URL and returns its limiter.
//
// A URL that does not parse, and a Redis that refuses the connection's
// handshake (wrong password, unknown database), are errors. A Redis that
// cannot be reached yet is not: the limiter starts down (Allow fails with
// ErrUnavailable), logs it, and connects as soon as Redis answers.
func New(cfg Config) (*Limiter, error) {
	opt, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// One connection (per node of a Cluster), auto-pipelined; no
	// client-side cache; dial and handshake bounded so that the probe, not
	// a request, waits on them.
	// One pipelined connection, not several: the probe that marks Redis up
	// again then also reconnects the connection requests use.
	opt.PipelineMultiplex = -1
	opt.DisableCache = true
	opt.DisableRetry = true
	opt.ClientName = "authgate"
	// Under load, wait up to 20 µs after each flush to gather the next
	// requests' commands into one write: fewer syscalls on both sides, for
	// at most 20 µs more latency when idle (rueidis's suggested value).
	opt.MaxFlushDelay = 20 * time.Microsecond
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = max(cfg.Timeout*10, time.Second)
	}
	opt.ConnWriteTimeout = max(cfg.Timeout*20, 2*time.Second)

	var id [8]byte
	_, _ = rand.Read(id[:])
	r := &Limiter{
		script:  rueidis.NewLuaScript(slidingWindowScript),
		prefix:  cfg.KeyPrefix,
		window:  cfg.Window,
		winArg:  strconv.FormatInt(cfg.Window.Microseconds(), 10),
		timeout: cfg.Timeout,
		log:     cfg.Logger,
		host:    opt.InitAddress[0],
		id:      hex.EncodeToString(id[:]),
		closed:  make(chan struct{}),
	}
	for i := range r.blocks {
		r.blocks[i].m = make(map[string]block)
	}
	// A Redis Cluster is found by asking the node of the URL (and those of
	// its addr= parameters); one that cannot be reached yet is taken for a
	// single Redis, connected to when it answers.
	client, err := rueidis.NewClient(opt)
	if client == nil {
		opt.ForceSingleClient = true
		client, err = rueidis.NewClient(opt)
	}
	if client == nil {
		return nil, fmt.Errorf("redis at %s: %w", r.host, err)
	}
	r.client = client
	if err != nil {
		if rerr, ok := rueidis.IsRedisErr(err); ok {
			client.Close()
			return nil, fmt.Errorf("redis at %s refused the connection: %s", r.host, rerr.Error())
		}
		r.fail(err)
	}
	return r, nil
}

// CheckURL reports whether s is a URL New accepts, without
// connecting. Its errors never contain the URL.
func CheckURL(s string) error {
	_, err := parseURL(s)
	return err
}

// parseURL parses a redis:// or rediss:// URL; its errors never
// contain the URL (it may hold a password).
func parseURL(s string) (rueidis.ClientOption, error) {
	if s == "" {
		return rueidis.ClientOption{}, errors.New("no redis URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return rueidis.ClientOption{}, fmt.Errorf("not a valid URL: %v", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return rueidis.ClientOption{}, fmt.Errorf("scheme %q: want redis:// or rediss://", u.Scheme)
	}
	if u.Host == "" {
		return rueidis.ClientOption{}, errors.New("no host: want redis://[user:password@]host[:port][/db]")
	}
	opt, err := rueidis.ParseURL(s)
	if err != nil {
		// rueidis's messages are "redis: what: value"; the value, a part of
		// the URL, is left out (a mistyped URL may put the password there).
		parts := strings.SplitN(err.Error(), ": ", 3)
		return rueidis.ClientOption{}, errors.New(strings.Join(parts[:min(len(parts), 2)], ": "))
	}
	return opt, nil
}

// Allow decides a request of keyID, whose limit per window is limit, that
// arrived at now. The Result has limiter.Window.AllowAt's meaning. The error, when
// not nil, wraps ErrUnavailable: nothing was decided (the request is
// not recorded anywhere). A limit below 1 refuses without a round trip.
func (r *Limiter) Allow(keyID string, limit int, now time.Time) (limiter.Result, error) {
	if limit <= 0 {
		return limiter.Result{Reset: r.window}, nil
	}
	sh := &r.blocks[shardIndex(keyID)]
	sh.mu.Lock()
	if b, ok := sh.m[keyID]; ok {
		if wait := b.until.Sub(now); wait > 0 && b.limit == limit {
			sh.mu.Unlock()
			r.prechecked.Add(1)
			return limiter.Result{Limit: limit, Reset: wait}, nil
		}
		delete(sh.m, keyID)
	}
	sh.mu.Unlock()

	if r.down.Load() {
		return limiter.Result{}, r.downErr()
	}
	r.calls.Add(1)
	seq := r.seq.Add(1)
	member := r.id + "-" + strconv.FormatUint(seq, 36)
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	args := []string{strconv.Itoa(limit), r.winArg, member}
	if r.callerClock {
		args = append(args, strconv.FormatInt(now.UnixMicro(), 10))
	}
	vals, err := r.script.Exec(ctx, r.client, []string{r.prefix + keyID}, args).AsIntSlice()
	cancel()
	if err == nil && len(vals) != 3 {
		err = fmt.Errorf("script returned %d values, want 3", len(vals))
	}
	if err != nil {
		return limiter.Result{}, r.failed(err, r.prefix+keyID)
	}
	res := limiter.Result{
		Allowed:   vals[0] == 1,
		Limit:     limit,
		Remaining: max(limit-int(vals[1]), 0),
		Reset:     time.Duration(max(vals[2], 1)) * time.Microsecond,
	}
	if !res.Allowed {
		sh.mu.Lock()
		sh.m[keyID] = block{until: now.Add(res.Reset), limit: limit}
		sh.mu.Unlock()
	}
	return res, nil
}

// Err returns nil while Redis is reachable, else why it is not (wrapping
// ErrUnavailable).
func (r *Limiter) Err() error {
	if !r.down.Load() {
		return nil
	}
	return r.downErr()
}

// Stats are a Redis limiter's counters since it was made.
type Stats struct {
	Calls      uint64 // decisions sent to Redis
	Failures   uint64 // of them, failed or timed out
	Prechecked uint64 // refused locally, without a round trip
}

// Stats returns the limiter's counters.
func (r *Limiter) Stats() Stats {
	return Stats{Calls: r.calls.Load(), Failures: r.failures.Load(), Prechecked: r.prechecked.Load()}
}

// WriteMetrics writes the limiter's counters in Prometheus text format:
// authgate_redis_calls_total, authgate_redis_failures_total and
// authgate_redis_prechecked_total. The gateway's /metrics calls it on a
// Config.Limiter that has it.
func (r *Limiter) WriteMetrics(w io.Writer) {
	st := r.Stats()
	metrics.WriteCounterUint64(w, "authgate_redis_calls_total", st.Calls)
	metrics.WriteCounterUint64(w, "authgate_redis_failures_total", st.Failures)
	metrics.WriteCounterUint64(w, "authgate_redis_prechecked_total", st.Prechecked)
}

// String names the Redis (host:port) without credentials.
func (r *Limiter) String() string { return "redis://" + r.host }

// Close stops the probe and closes the connection.
func (r *Limiter) Close() {
	r.once.Do(func() {
		close(r.closed)
		r.client.Close()
	})
}

func (r *Limiter) downErr() error {
	if p := r.lastErr.Load(); p != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, *p)
	}
	return ErrUnavailable
}

// failed counts a call that failed with err and returns the error to
// report, wrapping ErrUnavailable. A WRONGTYPE error means one key
// (named by key) was overwritten by something else: that key_id fails,
// the others do not. Any other error marks Redis down (fail).
func (r *Limiter) failed(err error, key string) error {
	r.failures.Add(1)
	if wrongType(err) {
		return fmt.Errorf("%w: key %s: %v", ErrUnavailable, key, err)
	}
	r.fail(err)
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// wrongType reports whether err is Redis's WRONGTYPE: a key holding
// another type than the script expects.
func wrongType(err error) bool {
	rerr, ok := rueidis.IsRedisErr(err)
	return ok && strings.HasPrefix(rerr.Error(), "WRONGTYPE")
}

// fail marks Redis down after err and starts the probe, logging the
// transition once.
func (r *Limiter) fail(err error) {
	r.lastErr.Store(&err)
	if r.down.CompareAndSwap(false, true) {
		r.log.Warn("redis limiter: redis unreachable; decisions fail until it answers again", "redis", r.host, "err", err)
	}
	if r.probing.CompareAndSwap(false, true) {
		go r.probe()
	}
}

// probe PINGs Redis every 250 ms until it answers, then marks it up.
func (r *Limiter) probe() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.closed:
			r.probing.Store(false)
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(r.timeout*4, 500*time.Millisecond))
		err := r.client.Do(ctx, r.client.B().Ping().Build()).Error()
		cancel()
		if err != nil {
			r.lastErr.Store(&err)
			continue
		}
		// Probing ends before Redis is marked up, so that a failure in
		// between starts a new probe rather than none.
		r.probing.Store(false)
		if r.down.CompareAndSwap(true, false) {
			r.log.Info("redis limiter: redis reachable again", "redis", r.host)
		}
		return
	}
}

// shardIndex spreads key_ids over the block shards (FNV-1a).
func shardIndex(s string) int {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return int(h % blockShards)
}
