package tokens

import (
	"sync"
	"time"
)

const (
	// defaultPeriod is the window length used when none is given.
	defaultPeriod = time.Minute
	// bucketsPerPeriod is how many time buckets a period is cut into.
	bucketsPerPeriod = 600
)

// epoch is the origin of a Window's int64 nanosecond times: the UTC
// midnight before the process started, with the monotonic reading of the
// start moved back to it. now.Sub(epoch) uses the monotonic clock for
// times from time.Now, so a wall-clock step does not move a window;
// instants without a monotonic reading (time.Unix, time.Date in tests) use
// wall differences, so their buckets start at whole multiples of the
// bucket width since a UTC midnight.
var epoch = func() time.Time {
	start := time.Now()
	return start.Add(-time.Duration(floorMod(start.UnixNano(), dayNanos)))
}()

// noLast is a latest-instant-seen before the first: earlier than every time.
const noLast = -1 << 63

// Window is the tokens-per-minute limit of one key_id: the committed and
// reserved tokens of the requests admitted in any period are at most Limit,
// plus the estimation error (see the package comment for the semantics).
//
// Algorithm: time is cut into buckets of width period/600; bucket k holds
// the instants [k*width, (k+1)*width) and the tokens of the requests
// admitted in it, committed (used) and in flight (reserved), in a ring of
// period/width+2 buckets. Bucket k leaves the window when its last instant
// does, at (k+1)*width-1+period, so no token leaves before its own
// admission time + period, and none more than width-1 ns after. Running
// sums of the buckets in the window make a decision O(1); expiring buckets
// is amortised O(1); a refusal adds up the buckets from the oldest holding
// tokens until enough would have left (up to 600 steps when the tokens are
// spread over the whole window, a few when they came in a burst).
//
// Time never runs backwards inside a Window: a now earlier than the latest
// instant it has been given is treated as that instant, so a clock that
// jumps back may delay admissions but never admits over the limit.
//
// Memory: the struct, and from the first admission a ring of 602 buckets
// of 16 bytes (9.6 KB whatever the limit and the traffic).
//
// The zero value is a Window that is off, with a 60 s period. A Window is
// safe for concurrent use; each method holds a mutex for a few
// instructions. Time is a parameter: the gateway passes time.Now(), tests
// fixed instants.
type Window struct {
	mu sync.Mutex
	window
}

// window is the state of a Window, or of a Limiter's TPM limit, guarded by
// its owner's mutex.
type window struct {
	limit  int64 // 0: off, everything admitted and nothing recorded
	period int64 // nanoseconds, > 0
	width  int64 // a bucket's width in nanoseconds, >= 1
	last   int64 // the latest instant given, since epoch (noLast before)

	// ring holds buckets lo..hi (lo > hi: none), bucket k at
	// ring[mod(k, len(ring))]; nil until the first admission. Every bucket
	// in lo..hi is in the window as of last; every slot outside is zero.
	ring   []bucket
	lo, hi int64
	// No bucket before oldest or after newest holds tokens; retryAt raises
	// oldest and resetAt lowers newest past empty buckets, lazily.
	oldest, newest int64

	used, reserved int64 // the sums over lo..hi
	inflight       int64 // reservations not yet ended, in the window or not
	excess         int64 // the estimation error: the sum of commits' excess
}

// bucket is the tokens of the requests admitted in one bucket's instants.
type bucket struct {
	used     int64 // committed by requests that have ended
	reserved int64 // reserved by requests in flight
}

// NewWindow returns an empty Window admitting at most limit tokens in any
// period. A limit of 0 or less turns it off (every request admitted,
// nothing recorded, Limit 0); a period of zero or less means 60 s.
// NewWindow allocates only the struct; the ring is allocated by the first
// admission.
func NewWindow(limit int64, period time.Duration) *Window {
	w := new(Window)
	w.init(limit, period)
	return w
}

func (w *window) init(limit int64, period time.Duration) {
	if period <= 0 {
		period = defaultPeriod
	}
	w.limit = max(limit, 0)
	w.period = int64(period)
	w.width = max(int64(period)/bucketsPerPeriod, 1)
	w.last = noLast
}

// Reserve decides a request of n tokens arriving at now (a negative n
// counts as 0). It admits it iff the committed and reserved tokens of the
// requests admitted in (now-period, now], plus n, are at most Limit, and
// then reserves n at now: the caller must end the Reservation (Commit or
// Cancel). Otherwise it returns the zero Reservation and a Result of Kind
// TooLarge (n > Limit) or Limited.
//
// Reserve does not allocate, but for the ring on the first admission.
func (w *Window) Reserve(now time.Time, n int64) (Reservation, Result) {
	t, n := int64(now.Sub(epoch)), max(n, 0)
	w.mu.Lock()
	r := w.check(t, n)
	var res Reservation
	if r.Kind == Admitted {
		res = w.take(n, &w.mu)
	}
	w.mu.Unlock()
	return res, r
}

// check advances the window to t and returns the decision on n tokens, the
// Result as it will be once take records an admission. The caller holds
// the owner's mutex and, if admitted, calls take before unlocking it.
func (w *window) check(t, n int64) Result {
	if w.limit == 0 {
		return Result{Kind: Admitted, Scope: ScopeTPM, Requested: n}
	}
	t = max(t, w.last)
	w.last = t
	w.advance(t)
	counted := w.used + w.reserved
	switch {
	case n > w.limit:
		r := result(TooLarge, ScopeTPM, w.limit, counted, n)
		r.Reset = w.resetAt(t)
		return r
	case counted+n > w.limit:
		r := result(Limited, ScopeTPM, w.limit, counted, n)
		r.Reset = w.resetAt(t)
		r.RetryAfter = w.retryAt(t, counted+n-w.limit)
		return r
	}
	r := result(Admitted, ScopeTPM, w.limit, counted+n, n)
	if n > 0 {
		r.Reset = time.Duration(w.leaves(w.hi) - t)
	} else {
		r.Reset = w.resetAt(t)
	}
	return r
}

// take records an admission of n tokens at the instant check was given
// and returns its Reservation, to be committed under mu, the owner's
// mutex, which the caller holds; the zero Reservation if the limit is off.
func (w *window) take(n int64, mu *sync.Mutex) Reservation {
	if w.limit == 0 {
		return Reservation{}
	}
	w.ring[w.slot(w.hi)].reserved += n
	w.reserved += n
	w.inflight++
	if n > 0 {
		w.oldest, w.newest = min(w.oldest, w.hi), w.hi
	}
	return Reservation{mu: mu, w: w, unit: w.hi, n: n}
}

// advance expires the buckets that have left the window at t and makes
// the bucket of t the newest held, allocating the ring the first time.
// The caller holds the owner's mutex and has clamped t to w.last.
func (w *window) advance(t int64) {
	first := floorDiv(t-w.period+1, w.width) // the oldest bucket in the window at t
	now := floorDiv(t, w.width)
	if w.ring == nil {
		w.ring = make([]bucket, w.period/w.width+2)
		w.lo, w.hi, w.oldest, w.newest = first, now, now+1, first-1
		return
	}
	for ; w.lo < first && w.lo <= w.hi; w.lo++ {
		b := &w.ring[w.slot(w.lo)]
		w.used -= b.used
		w.reserved -= b.reserved
		*b = bucket{}
	}
	w.lo = max(w.lo, first)
	w.hi = now
}

// commit ends a reservation of n tokens taken in bucket k with actual
// tokens consumed. The caller holds the owner's mutex.
func (w *window) commit(k, n, actual int64) {
	w.inflight--
	w.excess += max(actual-n, 0)
	if k < w.lo {
		return // the bucket has left the window, and its tokens with it
	}
	b := &w.ring[w.slot(k)]
	b.reserved -= n
	b.used += actual
	w.reserved -= n
	w.used += actual
	if actual > 0 {
		w.oldest, w.newest = min(w.oldest, k), max(w.newest, k)
	}
}

// leaves returns the instant bucket k leaves the window: when its last
// instant, (k+1)*width-1, is period old.
func (w *window) leaves(k int64) int64 {
	return (k+1)*w.width - 1 + w.period
}

// slot returns bucket k's index in the ring.
func (w *window) slot(k int64) int {
	return int(floorMod(k, int64(len(w.ring))))
}

// resetAt returns the time from t until every token in the window has left
// it: until the newest bucket holding tokens leaves. The caller holds the
// owner's mutex and has advanced the window to t.
func (w *window) resetAt(t int64) time.Duration {
	if w.newest < w.lo {
		return 0
	}
	for i := w.slot(w.newest); w.newest >= w.lo; w.newest-- {
		if b := &w.ring[i]; b.used+b.reserved > 0 {
			return time.Duration(w.leaves(w.newest) - t)
		}
		if i--; i < 0 {
			i = len(w.ring) - 1
		}
	}
	return 0
}

// retryAt returns the time from t until need tokens have left the window:
// the buckets leave oldest first, so it is when the first bucket at which
// their running sum reaches need leaves. The caller holds the owner's
// mutex, has advanced the window to t, and need is at most the tokens in
// the window.
func (w *window) retryAt(t, need int64) time.Duration {
	w.oldest = max(w.oldest, w.lo)
	freed := int64(0)
	for k, i := w.oldest, w.slot(w.oldest); k <= w.hi; k++ {
		b := &w.ring[i]
		if freed += b.used + b.reserved; freed >= need {
			return time.Duration(w.leaves(k) - t)
		}
		if freed == 0 {
			w.oldest = k + 1
		}
		if i++; i == len(w.ring) {
			i = 0
		}
	}
	panic("BUG: tokens.Window: the window holds fewer tokens than its sums")
}

// UsageAt returns the tokens counted in the window at now: committed by
// requests that have ended (used) and reserved by requests in flight, both
// of requests admitted in the window. A now earlier than the latest instant
// the Window was given is treated as that instant. UsageAt records and
// forgets nothing, so the admin /limits page may call it at any time.
func (w *Window) UsageAt(now time.Time) (used, reserved int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.usageAt(int64(now.Sub(epoch)))
}

// usageAt is UsageAt at t; the caller holds the owner's mutex.
func (w *window) usageAt(t int64) (used, reserved int64) {
	if w.ring == nil {
		return 0, 0
	}
	t = max(t, w.last)
	used, reserved = w.used, w.reserved
	first := floorDiv(t-w.period+1, w.width)
	for k := w.lo; k < first && k <= w.hi; k++ {
		b := w.ring[w.slot(k)]
		used -= b.used
		reserved -= b.reserved
	}
	return used, reserved
}

// InFlight returns the number of reservations not yet ended, including
// those admitted before the current window.
func (w *Window) InFlight() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inflight
}

// EstimationError returns the estimation error since the Window was made:
// the sum, over every commit, of the tokens committed over the
// reservation. It only grows; export it as a counter.
func (w *Window) EstimationError() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.excess
}

// Limit returns the current limit; 0 means off.
func (w *Window) Limit() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.limit
}

// SetLimit changes the limit, as when a reload changes a key_id's tpm=;
// 0 or less turns the Window off. The tokens counted are kept, so
// lowering the limit is exact (requests are refused until enough tokens
// leave the window), and reservations taken before keep their meaning.
// While off, admissions are not recorded: turning the limit back on counts
// from the tokens still recorded.
func (w *Window) SetLimit(limit int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setLimit(limit)
}

// setLimit is SetLimit; the caller holds the owner's mutex.
func (w *window) setLimit(limit int64) {
	if w.period == 0 {
		w.init(0, 0) // a zero window
	}
	w.limit = max(limit, 0)
}

// floorDiv returns a/b rounded towards minus infinity; b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// floorMod returns a mod b in [0, b); b > 0.
func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
