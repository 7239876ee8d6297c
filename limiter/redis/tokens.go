package redis

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/rueidis"

	"github.com/authgate/authgate/limiter/tokens"
)

// Defaults of TokensConfig.
const (
	DefaultTokenPrefix = "authgate:tk:"
	DefaultLease       = 15 * time.Second
)

// TokensConfig configures NewTokens.
type TokensConfig struct {
	// Period is the TPM window's length; the zero value means 60 s.
	// Every replica sharing a Redis must use the same one.
	Period time.Duration
	// Lease is how long a request's slot and reservation outlive the last
	// renewal: a process renews its requests' leases every Lease/3 while
	// they run, so one killed leaks nothing for longer than Lease. The
	// zero value means DefaultLease (15 s).
	Lease time.Duration
	// KeyPrefix starts the names of the keys (see Tokens); the zero value
	// means DefaultTokenPrefix.
	KeyPrefix string
}

// Tokens is a tokens.Store whose state lives in Redis, so that every
// process using the same Redis (and KeyPrefix) shares each key_id's TPM
// window, TPD day and requests in flight (docs/operations.md#several-replicas).
//
// A key_id has four keys, hash-tagged with its key_id so that they live on
// one node of a Redis Cluster and one script can update them atomically:
// PREFIX{key_id}:w, a hash of the window's buckets (period/600 wide: the
// tokens admitted in each, committed and reserved); PREFIX{key_id}:d, a
// hash of the UTC day's tokens and of the tokens reserved by requests in
// flight; PREFIX{key_id}:l and PREFIX{key_id}:c, sorted sets of the
// reservations and the slots held, each scored by its lease's expiry. Each
// decision is one script (Redis's own clock, TIME, so replicas whose
// clocks differ share one timeline) with tokens.Limiter's semantics:
// reserve at admission, reconcile at the end, a bucket leaves the window
// when its last instant does.
//
// Leases: while a request runs, its process renews its slot and its
// reservation every Lease/3; a lease not renewed for Lease expires at the
// next decision of its key_id. An expired slot is free; an expired
// reservation stops counting as in flight but its tokens stay in the
// window and the day as reserved (the request may have used them): a
// killed replica may overcharge, never undercharge. Finish after the
// lease expired still replaces the tokens in the window and the day.
//
// Failures are the Limiter's: Tokens shares its connection and its state,
// so a failed call marks Redis down for both, and while it is down Admit
// fails at once with an error wrapping ErrUnavailable.
type Tokens struct {
	r      *Limiter
	prefix string
	period time.Duration
	width  time.Duration
	lease  time.Duration
	args   [3]string // period, width, lease in µs

	// held is every lease of this process not yet finished, renewed by
	// renew until Close.
	mu      sync.Mutex
	held    map[*lease]struct{}
	stop    chan struct{}
	stopped sync.WaitGroup
	once    sync.Once

	renewals, renewFailures, lost atomic.Uint64
}

var _ tokens.Store = (*Tokens)(nil)

// admitScript decides one request; see Tokens. KEYS: w, d, l, c.
// ARGV: TPM, TPD, concurrency, n, the lease's member name, lease, period,
// bucket width (µs); and, from tests only, the now in µs.
// Returns {admitted 0/1, slots held, window tokens, day tokens, µs until
// the window's tokens have all left, µs until enough have left for n to
// fit (TPM over), µs until the newest bucket leaves once n is in it,
// bucket, day, now}.
const admitScript = expireLua + windowLua + `
local now = tonumber(ARGV[9])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tpm, tpd, conc, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local member, lease = ARGV[5], tonumber(ARGV[6])
period, width = tonumber(ARGV[7]), tonumber(ARGV[8])
expire(now)
local inflight = redis.call('ZCARD', KEYS[4])
local cur = math.floor(now / width)
local today = math.floor(now / 86400000000)
local used, lo, hi = 0, nil, nil
if tpm > 0 then used, lo, hi = trim(now) end
local day = 0
if tpd > 0 then
  local d = redis.call('HMGET', KEYS[2], 'day', 't')
  if tonumber(d[1]) == today then day = tonumber(d[2]) or 0 end
end
local ok = (conc <= 0 or inflight < conc) and (tpm <= 0 or used + n <= tpm) and (tpd <= 0 or day + n <= tpd)
local reset, retry = 0, 0
if used > 0 then reset = leaves(newest(lo, hi)) - now end
if tpm > 0 and n <= tpm and used + n > tpm then
  local need, freed = used + n - tpm, 0
  local f = {}
  for b = lo, hi do f[#f + 1] = b end
  local v = redis.call('HMGET', KEYS[1], unpack(f))
  for i, b in ipairs(f) do
    freed = freed + (tonumber(v[i]) or 0)
    if freed >= need then retry = leaves(b) - now break end
  end
end
if ok then
  local exp = now + lease
  if conc > 0 then
    redis.call('ZADD', KEYS[4], exp, member)
    redis.call('PEXPIRE', KEYS[4], math.ceil(lease / 1000) * 2)
  end
  if tpm > 0 or tpd > 0 then
    if tpm > 0 and n > 0 then
      redis.call('HINCRBY', KEYS[1], cur, n)
      redis.call('HINCRBY', KEYS[1], 's', n)
      if not lo then redis.call('HSET', KEYS[1], 'lo', cur) end
      if not hi or cur > hi then redis.call('HSET', KEYS[1], 'hi', cur) end
      redis.call('PEXPIRE', KEYS[1], math.ceil((period + width) / 1000) + 1000)
    end
    if tpd > 0 then
      local d = redis.call('HGET', KEYS[2], 'day')
      if tonumber(d) ~= today then redis.call('HSET', KEYS[2], 'day', today, 't', 0) end
      redis.call('HINCRBY', KEYS[2], 't', n)
    end
    redis.call('ZADD', KEYS[3], exp, member .. ':' .. n)
    redis.call('HINCRBY', KEYS[2], 'r', n)
    redis.call('PEXPIRE', KEYS[3], math.ceil(lease / 1000) * 2)
    redis.call('PEXPIRE', KEYS[2], 172800000)
  end
end
return {ok and 1 or 0, inflight, used, day, reset, retry, leaves(cur) - now, cur, today, now}
`

// windowLua is the TPM window's hash (KEYS[1]): a field per bucket
// holding the tokens admitted in it, 's' their sum, 'lo' and 'hi' the
// oldest and newest buckets that may hold tokens. A bucket b leaves the
// window when its last instant does, at leaves(b). trim drops the
// buckets that left, so a decision costs O(1) amortised, not a pass over
// the 600 buckets of a full window; a refusal alone reads them all, to
// find its retry time.
const windowLua = `
local period, width
local function leaves(b) return (b + 1) * width + period - 1 end
local function trim(now)
  local h = redis.call('HMGET', KEYS[1], 's', 'lo', 'hi')
  local sum, lo, hi = tonumber(h[1]) or 0, tonumber(h[2]), tonumber(h[3])
  if not lo then return 0, nil, nil end
  local first = math.floor((now - period + 1) / width)
  if hi < first then
    redis.call('DEL', KEYS[1])
    return 0, nil, nil
  end
  if lo < first then
    local f = {}
    for b = lo, first - 1 do f[#f + 1] = b end
    local v = redis.call('HMGET', KEYS[1], unpack(f))
    for i = 1, #f do sum = sum - (tonumber(v[i]) or 0) end
    redis.call('HDEL', KEYS[1], unpack(f))
    lo = first
    redis.call('HSET', KEYS[1], 's', sum, 'lo', lo)
  end
  return sum, lo, hi
end
local function newest(lo, hi)
  while hi > lo and (tonumber(redis.call('HGET', KEYS[1], hi)) or 0) <= 0 do hi = hi - 1 end
  return hi
end
`

// finishScript ends one lease; see Tokens. KEYS: w, d, l, c. ARGV: the
// slot's member ("" for none), the reservation's member ("" for none),
// n, actual, bucket (-1: TPM off), day (-1: TPD off), period, width;
// and, from tests only, the now in µs. Returns 1 if the reservation's
// lease was still held.
const finishScript = windowLua + `
local now = tonumber(ARGV[9])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[4], ARGV[1]) end
local held = 0
if ARGV[2] ~= '' then
  local n, actual = tonumber(ARGV[3]), tonumber(ARGV[4])
  local b, day = tonumber(ARGV[5]), tonumber(ARGV[6])
  period, width = tonumber(ARGV[7]), tonumber(ARGV[8])
  held = redis.call('ZREM', KEYS[3], ARGV[2])
  if held == 1 then redis.call('HINCRBY', KEYS[2], 'r', -n) end
  local delta = actual - n
  if delta ~= 0 then
    if b >= 0 then
      local _, lo = trim(now)
      local v = lo and b >= lo and tonumber(redis.call('HGET', KEYS[1], b))
      if v then
        local nv = math.max(v + delta, 0)
        if nv == 0 then redis.call('HDEL', KEYS[1], b) else redis.call('HSET', KEYS[1], b, nv) end
        redis.call('HINCRBY', KEYS[1], 's', nv - v)
      end
    end
    if day >= 0 and tonumber(redis.call('HGET', KEYS[2], 'day')) == day then
      local t = tonumber(redis.call('HGET', KEYS[2], 't')) or 0
      redis.call('HSET', KEYS[2], 't', math.max(t + delta, 0))
    end
  end
end
return held
`

// renewScript extends the leases of one key_id held by this process.
// KEYS: w, d, l, c. ARGV: lease (µs), the number of slot members, then
// the slot members, then the reservation members. Leases already expired
// are removed first, not brought back. Returns how many were still held.
const renewScript = expireLua + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
expire(now)
local lease, ns, held = tonumber(ARGV[1]), tonumber(ARGV[2]), 0
for i = 3, #ARGV do
  local key = KEYS[4]
  if i > ns + 2 then key = KEYS[3] end
  held = held + redis.call('ZADD', key, 'XX', 'CH', now + lease, ARGV[i])
end
for k = 3, 4 do
  if redis.call('EXISTS', KEYS[k]) == 1 then redis.call('PEXPIRE', KEYS[k], math.ceil(lease / 1000) * 2) end
end
return held
`

// expireLua ends the leases of a key_id past their expiry: a slot is
// free; a reservation stops counting as in flight (the d hash's r), its
// tokens staying in the window and the day. KEYS as admitScript's.
const expireLua = `
local function expire(now)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  if #gone > 0 then
    local r = 0
    for _, m in ipairs(gone) do r = r + (tonumber(string.match(m, ':(%d+)$')) or 0) end
    redis.call('HINCRBY', KEYS[2], 'r', -r)
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
end
`

var (
	admitLua  = rueidis.NewLuaScript(admitScript)
	finishLua = rueidis.NewLuaScript(finishScript)
	renewLua  = rueidis.NewLuaScript(renewScript)
)

// NewTokens returns the token Store of the Redis r is connected to, which
// shares r's connection and its state: r must not be closed before the
// Tokens. Close stops its renewals.
func NewTokens(r *Limiter, cfg TokensConfig) *Tokens {
	if cfg.Period <= 0 {
		cfg.Period = time.Minute
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultTokenPrefix
	}
	width := max(cfg.Period/600, time.Microsecond)
	t := &Tokens{
		r:      r,
		prefix: cfg.KeyPrefix,
		period: cfg.Period,
		width:  width,
		lease:  cfg.Lease,
		args: [3]string{
			strconv.FormatInt(cfg.Period.Microseconds(), 10),
			strconv.FormatInt(width.Microseconds(), 10),
			strconv.FormatInt(cfg.Lease.Microseconds(), 10),
		},
		held: make(map[*lease]struct{}),
		stop: make(chan struct{}),
	}
	t.stopped.Add(1)
	go t.renew()
	return t
}

// keys returns keyID's four keys: w, d, l, c.
func (t *Tokens) keys(keyID string) []string {
	tag := t.prefix + "{" + keyID + "}:"
	return []string{tag + "w", tag + "d", tag + "l", tag + "c"}
}

// lease is an admitted request's hold on its slot and reservation.
type lease struct {
	t           *Tokens
	keyID       string
	slot, res   string // members; "" for none
	n           int64
	bucket, day int64 // -1 for a limit off
}

// Admit implements tokens.Store: one script call decides keyID's request
// of n tokens under lim and, if it is admitted, takes its slot and
// reservation, leased. The error, when not nil, wraps ErrUnavailable.
func (t *Tokens) Admit(keyID string, lim tokens.Limits, n int64) (tokens.Lease, tokens.Result, error) {
	n = max(n, 0)
	tok := lim.TPM > 0 || lim.TPD > 0
	if !tok && lim.Concurrency <= 0 {
		return noLease{}, tokens.Result{Kind: tokens.Admitted, Requested: n}, nil
	}
	r := t.r
	if r.down.Load() {
		return nil, tokens.Result{}, r.downErr()
	}
	r.calls.Add(1)
	member := r.id + "-" + strconv.FormatUint(r.seq.Add(1), 36)
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	vals, err := admitLua.Exec(ctx, r.client, t.keys(keyID), []string{
		strconv.FormatInt(lim.TPM, 10), strconv.FormatInt(lim.TPD, 10), strconv.FormatInt(lim.Concurrency, 10),
		strconv.FormatInt(n, 10), member, t.args[2], t.args[0], t.args[1]}).AsIntSlice()
	cancel()
	if err == nil && len(vals) != 10 {
		err = fmt.Errorf("script returned %d values, want 10", len(vals))
	}
	if err != nil {
		return nil, tokens.Result{}, r.failed(err, t.prefix+"{"+keyID+"}")
	}
	us := func(v int64) time.Duration { return time.Duration(max(v, 0)) * time.Microsecond }
	c := tokens.Counts{InFlight: vals[1], WindowUsed: vals[2], DayUsed: vals[3],
		Reset: us(vals[4]), RetryAfter: us(vals[5]), NewReset: us(vals[6])}
	now := time.UnixMicro(vals[9])
	res := tokens.Decide(lim, c, n, now)
	if vals[0] != 1 {
		if res.Allowed() {
			// Decide and the script disagree: only a limit changed
			// between them could do that; the script's refusal stands.
			res.Kind = tokens.Limited
		}
		return nil, res, nil
	}
	l := &lease{t: t, keyID: keyID, n: n, bucket: -1, day: -1}
	if lim.Concurrency > 0 {
		l.slot = member
	}
	if tok {
		l.res = member + ":" + strconv.FormatInt(n, 10)
		if lim.TPM > 0 {
			l.bucket = vals[7]
		}
		if lim.TPD > 0 {
			l.day = vals[8]
		}
	}
	t.mu.Lock()
	t.held[l] = struct{}{}
	t.mu.Unlock()
	return l, res, nil
}

// noLease is the Lease of a request no limit of the Store holds.
type noLease struct{}

func (noLease) Finish(int64) {}

// Finish ends the lease with the tokens the request used (see Tokens). If
// Redis cannot be reached, the lease is left to expire: its slot frees
// after the lease, its reservation stays counted as used.
func (l *lease) Finish(actual int64) {
	t := l.t
	t.mu.Lock()
	_, held := t.held[l]
	delete(t.held, l)
	t.mu.Unlock()
	if !held {
		return // finished already
	}
	r := t.r
	if r.down.Load() {
		t.lost.Add(1)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(r.timeout, time.Second))
	defer cancel()
	err := finishLua.Exec(ctx, r.client, t.keys(l.keyID), []string{l.slot, l.res,
		strconv.FormatInt(l.n, 10), strconv.FormatInt(max(actual, 0), 10),
		strconv.FormatInt(l.bucket, 10), strconv.FormatInt(l.day, 10), t.args[0], t.args[1]}).Error()
	if err != nil {
		t.lost.Add(1)
		r.failed(err, t.prefix+"{"+l.keyID+"}")
	}
}

// renew renews the leases held every lease/3, until Close.
func (t *Tokens) renew() {
	defer t.stopped.Done()
	tick := time.NewTicker(t.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		t.renewOnce()
	}
}

// renewOnce renews every lease held, one script call per key_id, all in
// one round trip.
func (t *Tokens) renewOnce() {
	type members struct{ slots, res []string }
	by := map[string]*members{}
	t.mu.Lock()
	for l := range t.held {
		m := by[l.keyID]
		if m == nil {
			m = &members{}
			by[l.keyID] = m
		}
		if l.slot != "" {
			m.slots = append(m.slots, l.slot)
		}
		if l.res != "" {
			m.res = append(m.res, l.res)
		}
	}
	t.mu.Unlock()
	if len(by) == 0 || t.r.down.Load() {
		return
	}
	execs := make([]rueidis.LuaExec, 0, len(by))
	for keyID, m := range by {
		args := make([]string, 0, 2+len(m.slots)+len(m.res))
		args = append(args, t.args[2], strconv.Itoa(len(m.slots)))
		args = append(append(args, m.slots...), m.res...)
		execs = append(execs, rueidis.LuaExec{Keys: t.keys(keyID), Args: args})
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(t.lease/3, time.Second))
	defer cancel()
	for _, res := range renewLua.ExecMulti(ctx, t.r.client, execs...) {
		t.renewals.Add(1)
		if err := res.Error(); err != nil {
			t.renewFailures.Add(1)
			if !wrongType(err) { // one key_id's keys overwritten: not Redis down
				t.r.fail(err)
			}
		}
	}
}

// Usage is one key_id's state in Redis, for the admin /limits page and
// tests.
type Usage = tokens.StoreUsage

// Usage returns keyID's state in Redis; expired leases are not counted.
func (t *Tokens) Usage(keyID string) (Usage, error) {
	r := t.r
	ctx, cancel := context.WithTimeout(context.Background(), max(r.timeout, time.Second))
	defer cancel()
	vals, err := usageLua.Exec(ctx, r.client, t.keys(keyID), []string{t.args[0], t.args[1]}).AsIntSlice()
	if err == nil && len(vals) != 5 {
		err = fmt.Errorf("script returned %d values, want 5", len(vals))
	}
	if err != nil {
		return Usage{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return Usage{InFlight: vals[0], Reservations: vals[1], TokensReserved: vals[2], WindowTokens: vals[3], DayTokens: vals[4]}, nil
}

// usageScript reads a key_id's state, ending expired leases first. KEYS
// as admitScript's; ARGV: period, width (µs).
const usageScript = expireLua + windowLua + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
expire(now)
period, width = tonumber(ARGV[1]), tonumber(ARGV[2])
local used = trim(now)
local d = redis.call('HMGET', KEYS[2], 'day', 't', 'r')
local day = 0
if tonumber(d[1]) == math.floor(now / 86400000000) then day = tonumber(d[2]) or 0 end
return {redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[3]), tonumber(d[3]) or 0, used, day}
`

var usageLua = rueidis.NewLuaScript(usageScript)

// Held returns the number of leases this process holds.
func (t *Tokens) Held() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.held)
}

// WriteMetrics writes the store's counters in Prometheus text format:
// authgate_redis_token_leases (held by this process),
// authgate_redis_lease_renewals_total, authgate_redis_lease_renewal_failures_total
// and authgate_redis_leases_lost_total (finished while Redis could not be
// reached: left to expire).
func (t *Tokens) WriteMetrics(w io.Writer) {
	metrics.WriteGaugeUint64(w, "authgate_redis_token_leases", uint64(t.Held()))
	metrics.WriteCounterUint64(w, "authgate_redis_lease_renewals_total", t.renewals.Load())
	metrics.WriteCounterUint64(w, "authgate_redis_lease_renewal_failures_total", t.renewFailures.Load())
	metrics.WriteCounterUint64(w, "authgate_redis_leases_lost_total", t.lost.Load())
}

// Close stops renewing the leases held (they expire within the lease); it
// does not close the Limiter. Once.
func (t *Tokens) Close() {
	t.once.Do(func() {
		close(t.stop)
		t.stopped.Wait()
	})
}
