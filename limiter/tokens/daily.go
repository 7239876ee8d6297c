package tokens

import (
	"sync"
	"time"
)

// dayNanos is a UTC day in nanoseconds (UTC has no daylight saving time;
// Go's time ignores leap seconds).
const dayNanos = int64(24 * time.Hour)

// Daily is the tokens-per-day limit of one key_id: the committed and
// reserved tokens of the requests admitted on one UTC calendar day are at
// most Limit, plus the estimation error (see the package comment).
//
// Days are read from the wall clock (now.UnixNano), since midnight is a
// wall-clock instant; a day is never reopened: a now earlier than the
// latest instant a Daily has been given is treated as that instant. The
// count of a new day starts at zero when the first call of the day sees
// it; reservations of an earlier day then end without changing it.
//
// The zero value is a Daily that is off. A Daily is safe for concurrent
// use; each method holds a mutex for a few
// instructions.
type Daily struct {
	mu sync.Mutex
	daily
}

// daily is the state of a Daily, or of a Limiter's TPD limit, guarded by
// its owner's mutex.
type daily struct {
	limit int64 // 0: off, everything admitted and nothing recorded
	last  int64 // the latest instant given, Unix nanoseconds (noLast before)
	day   int64 // the UTC day counted, days since 1970-01-01

	used, reserved int64 // of requests admitted on day
	inflight       int64 // reservations not yet ended, of any day
	excess         int64 // the estimation error: the sum of commits' excess
}

// NewDaily returns a Daily admitting at most limit tokens per UTC day; a
// limit of 0 or less turns it off (every request admitted, nothing
// recorded, Limit 0).
func NewDaily(limit int64) *Daily {
	d := new(Daily)
	d.init(limit)
	return d
}

func (d *daily) init(limit int64) {
	d.limit = max(limit, 0)
	d.last = noLast
}

// Reserve decides a request of n tokens arriving at now (a negative n
// counts as 0). It admits it iff the committed and reserved tokens of the
// requests admitted on now's UTC day, plus n, are at most Limit, and then
// reserves n on that day: the caller must end the Reservation (Commit or
// Cancel). Otherwise it returns the zero Reservation and a Result of Kind
// TooLarge (n > Limit) or Limited, whose RetryAfter and Reset are the time
// to the next UTC midnight. Reserve does not allocate.
func (d *Daily) Reserve(now time.Time, n int64) (Reservation, Result) {
	t, n := now.UnixNano(), max(n, 0)
	d.mu.Lock()
	r := d.check(t, n)
	var res Reservation
	if r.Kind == Admitted {
		res = d.take(n, &d.mu)
	}
	d.mu.Unlock()
	return res, r
}

// check moves the count to t's day and returns the decision on n tokens,
// the Result as it will be once take records an admission. The caller
// holds the owner's mutex and, if admitted, calls take before unlocking it.
func (d *daily) check(t, n int64) Result {
	if d.limit == 0 {
		return Result{Kind: Admitted, Scope: ScopeTPD, Requested: n}
	}
	t = max(t, d.last)
	d.last = t
	d.advance(t)
	reset := time.Duration((d.day+1)*dayNanos - t)
	counted := d.used + d.reserved
	var r Result
	switch {
	case n > d.limit:
		r = result(TooLarge, ScopeTPD, d.limit, counted, n)
	case counted+n > d.limit:
		r = result(Limited, ScopeTPD, d.limit, counted, n)
		r.RetryAfter = reset
	default:
		r = result(Admitted, ScopeTPD, d.limit, counted+n, n)
	}
	r.Reset = reset
	return r
}

// take records an admission of n tokens on the day check moved to and
// returns its Reservation, to be committed under mu, the owner's mutex,
// which the caller holds; the zero Reservation if the limit is off.
func (d *daily) take(n int64, mu *sync.Mutex) Reservation {
	if d.limit == 0 {
		return Reservation{}
	}
	d.reserved += n
	d.inflight++
	return Reservation{mu: mu, d: d, unit: d.day, n: n}
}

// advance starts a new day's count if t is on a later day than the one
// counted. The caller holds the owner's mutex.
func (d *daily) advance(t int64) {
	if day := floorDiv(t, dayNanos); day > d.day {
		d.day, d.used, d.reserved = day, 0, 0
	}
}

// commit ends a reservation of n tokens taken on day with actual tokens
// consumed. The caller holds the owner's mutex.
func (d *daily) commit(day, n, actual int64) {
	d.inflight--
	d.excess += max(actual-n, 0)
	if day != d.day {
		return // an earlier day's, no longer counted
	}
	d.reserved -= n
	d.used += actual
}

// UsageAt returns the tokens counted on now's UTC day: committed by
// requests that have ended (used) and reserved by requests in flight. A
// now earlier than the latest instant the Daily was given is treated as
// that instant. UsageAt records and forgets nothing.
func (d *Daily) UsageAt(now time.Time) (used, reserved int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.usageAt(now.UnixNano())
}

// usageAt is UsageAt at t; the caller holds the owner's mutex.
func (d *daily) usageAt(t int64) (used, reserved int64) {
	if floorDiv(max(t, d.last), dayNanos) > d.day {
		return 0, 0
	}
	return d.used, d.reserved
}

// restore adds tokens counted on day by an earlier process (a State) to
// the count, if day is not before the day counted. The caller holds the
// owner's mutex.
func (d *daily) restore(day, tokens int64) {
	switch {
	case day > d.day:
		d.day, d.used, d.reserved = day, tokens, 0
	case day == d.day:
		d.used += tokens
	}
}

// InFlight returns the number of reservations not yet ended, of any day.
func (d *Daily) InFlight() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inflight
}

// EstimationError returns the sum, over every commit since the Daily was
// made, of the tokens committed over the reservation; export it as a
// counter.
func (d *Daily) EstimationError() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.excess
}

// Limit returns the current limit; 0 means off.
func (d *Daily) Limit() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.limit
}

// SetLimit changes the limit, as when a reload changes a key_id's tpd=;
// 0 or less turns the Daily off. The day's count is kept, so lowering the
// limit is exact. While off, admissions are not recorded.
func (d *Daily) SetLimit(limit int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.limit = max(limit, 0)
}
