package limiter

import (
	"sync"
	"time"
)

// defaultPeriod is the window length used when NewWindow is given none.
const defaultPeriod = time.Minute

// epoch is the origin of the int64 nanosecond timestamps kept in rings.
//
// It is captured once at start and never written again. now.Sub(epoch) uses
// the monotonic clock for times from time.Now, so a wall-clock step (NTP,
// daylight saving, an operator) does not move a window; instants without a
// monotonic reading, such as time.Unix in tests, use plain wall differences.
var epoch = time.Now()

// Window is the rate limit of one key_id: at most Limit admissions in any
// period (an exact sliding window, not a fixed one).
//
// Algorithm: a ring buffer holds the times of the last Limit admissions, the
// oldest at head. An admission at t stays in the window until exactly
// t+period: at now == t+period its slot is free again. AllowAt first pops the
// admissions that have left the window from the oldest end, then admits iff
// fewer than Limit remain, recording now at the newest end. A refused request
// is not recorded. Each admission is pushed once and popped at most once, so
// AllowAt is O(1) amortised and does not allocate.
//
// Time never runs backwards inside a Window: a now earlier than the newest
// recorded admission is treated as that admission's time. So a clock that
// jumps backwards can delay admissions, but it never admits more than Limit
// within any period.
//
// Memory: the struct only, until the first AllowAt allocates the ring: 64
// int64s (or Limit, if fewer), doubled whenever it is full and shorter than
// Limit. So a key_id costs 8 bytes per admission its window has held at
// once (rounded up to a power of two), at most 8*Limit bytes: a key_id with
// rpm=1000000 that makes 10 requests a minute costs 512 bytes, not 8 MB.
// Each doubling copies the ring, so AllowAt stays O(1) amortised.
//
// The zero value is not usable (it refuses every request, reporting Reset 0);
// create a Window with NewWindow. A Window is safe for concurrent use: every method holds a
// mutex for a few instructions, so concurrent requests never push a key over
// its limit. Call Allow in production and AllowAt with fixed instants in
// tests; CountAt reads the window without recording anything.
type Window struct {
	mu sync.Mutex

	// limit is the most admissions in one period; 0 refuses everything.
	limit int
	// period is the window length in nanoseconds, > 0 for a NewWindow.
	period int64
	// last is the newest admission ever recorded, in nanoseconds since epoch
	// (noLast before the first). It survives SetLimit, so the clamp of a
	// backwards clock does too.
	last int64
	// ring holds the n admissions in the window in time order, oldest at
	// ring[head], wrapping at len(ring) <= limit (see grow). nil until the first
	// AllowAt, and whenever limit is 0.
	ring []int64
	head int
	n    int
}

// noLast is Window.last before any admission: earlier than every time.
const noLast = -1 << 63

// Result is the outcome of one Window.AllowAt: the decision and what the
// gateway reports in its x-ratelimit-* and Retry-After headers.
type Result struct {
	// Allowed reports whether the request was admitted (and recorded).
	Allowed bool
	// Limit is the window's limit N at the time of the decision.
	Limit int
	// Remaining is how many more requests would be admitted at the same
	// instant after this decision; >= 0.
	Remaining int
	// Reset is the time until the oldest admission still in the window,
	// after this decision, leaves it: an admission into an empty window
	// reports the period; a refused request reports its retry-after. A
	// window that holds nothing after the decision (Limit 0) reports the
	// period. Reset is always > 0 for a Window made by NewWindow.
	Reset time.Duration
}

// NewWindow returns an empty Window admitting at most limit requests in any
// period. A limit below 1 refuses every request (Limit reports 0); a period
// of zero or less means 60 s.
//
// NewWindow allocates only the struct: the ring of limit timestamps is
// allocated by the first AllowAt, so a key that is never used stays cheap.
func NewWindow(limit int, period time.Duration) *Window {
	if period <= 0 {
		period = defaultPeriod
	}
	return &Window{
		limit:  max(limit, 0),
		period: int64(period),
		last:   noLast,
	}
}

// Allow is shorthand for AllowAt(time.Now()).
func (w *Window) Allow() Result {
	return w.AllowAt(time.Now())
}

// AllowAt decides a request arriving at now: it admits and records it iff
// fewer than Limit admissions lie in (now-period, now], and otherwise refuses
// it without recording anything. A now earlier than the newest admission is
// treated as equal to it (see Window).
//
// AllowAt does not allocate, except for the ring on the first call and when
// the ring doubles (a few times in a key_id's life, see Window).
func (w *Window) AllowAt(now time.Time) Result {
	t := int64(now.Sub(epoch))

	w.mu.Lock()
	t = max(t, w.last)
	limit, period := w.limit, w.period
	if limit == 0 {
		w.mu.Unlock()
		return Result{Limit: 0, Reset: time.Duration(period)}
	}
	if w.ring == nil {
		w.ring = make([]int64, min(limit, initialRing))
	}
	ring := w.ring
	// Pop the admissions that have left the window. Popping is safe even
	// when now is later than every admission and the request is refused:
	// then the limit admissions kept are all in the window at any later
	// clamped time too, so none popped could have counted again.
	for w.n > 0 && t-ring[w.head] >= period {
		w.head++
		if w.head == len(ring) {
			w.head = 0
		}
		w.n--
	}
	allowed := w.n < limit
	if allowed {
		if w.n == len(ring) {
			ring = w.grow(limit)
		}
		tail := w.head + w.n
		if tail >= len(ring) {
			tail -= len(ring)
		}
		ring[tail] = t
		w.n++
		w.last = t
	}
	n, oldest := w.n, ring[w.head]
	w.mu.Unlock()

	return Result{
		Allowed:   allowed,
		Limit:     limit,
		Remaining: limit - n,
		Reset:     time.Duration(oldest + period - t),
	}
}

// initialRing is the ring's length at a Window's first admission, or its
// limit if smaller; it doubles whenever it is full and below the limit.
const initialRing = 64

// grow doubles the ring, up to limit, keeping its admissions in order from
// index 0, and returns it. The caller holds w.mu.
func (w *Window) grow(limit int) []int64 {
	ring := make([]int64, min(2*len(w.ring), limit))
	n := copy(ring, w.ring[w.head:min(w.head+w.n, len(w.ring))])
	copy(ring[n:], w.ring[:w.n-n])
	w.ring, w.head = ring, 0
	return ring
}

// CountAt returns how many admissions lie in the window at now, i.e. in
// (now-period, now], with a now earlier than the newest admission treated as
// equal to it. It records and forgets nothing, so it may be called at any
// time (the admin /limits snapshot) without changing later decisions.
func (w *Window) CountAt(now time.Time) int {
	t := int64(now.Sub(epoch))

	w.mu.Lock()
	defer w.mu.Unlock()
	t = max(t, w.last)
	// The ring is sorted by time: binary-search the first admission, in
	// age order, that is still in the window.
	lo, hi := 0, w.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		i := w.head + mid
		if i >= len(w.ring) {
			i -= len(w.ring)
		}
		if t-w.ring[i] >= w.period {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return w.n - lo
}

// Limit returns the window's current limit N; 0 means every request is
// refused.
func (w *Window) Limit() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.limit
}

// SetLimit changes the limit, as when a keys file reload changes a key's
// rpm=; a limit below 1 refuses every request. The newest min(limit, count)
// admissions are kept, so lowering the limit is exact: the key is refused
// until enough of them leave the window. Admissions dropped by a lowering are
// forgotten: raising the limit again within the period may admit up to that
// many more. SetLimit is safe to call concurrently with every other method;
// it allocates a new ring if the window has been used.
func (w *Window) SetLimit(limit int) {
	limit = max(limit, 0)

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.period == 0 {
		// A zero Window, which NewWindow never returns: make it the
		// equivalent of NewWindow(limit, 0) rather than a window of
		// length zero that would admit everything.
		w.period, w.last = int64(defaultPeriod), noLast
	}
	if limit == w.limit {
		return
	}
	w.limit = limit
	if w.ring == nil {
		return // still lazy: the first AllowAt allocates the right size
	}
	if limit == 0 {
		w.ring, w.head, w.n = nil, 0, 0
		return
	}
	keep := min(limit, w.n)
	ring := make([]int64, min(limit, max(keep, initialRing)))
	for i := range keep {
		j := w.head + w.n - keep + i
		if j >= len(w.ring) {
			j -= len(w.ring)
		}
		ring[i] = w.ring[j]
	}
	w.ring, w.head, w.n = ring, 0, keep
}
