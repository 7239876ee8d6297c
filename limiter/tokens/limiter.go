package tokens

import (
	"sync"
	"time"
)

// Limits are one key_id's limits; each is off when 0 (or less).
type Limits struct {
	// TPM is the most tokens of the requests admitted in any window (the
	// Registry's period, 60 s by default).
	TPM int64
	// TPD is the most tokens of the requests admitted on one UTC day.
	TPD int64
	// Concurrency is the most requests in flight.
	Concurrency int64
}

// Limiter is one key_id's token limits: a TPM window, a TPD day and a
// concurrency limit, each off when its limit is 0, with the semantics of
// Window, Daily and Concurrency. Admit decides a request against all three
// at once and takes all or nothing; Admission.Finish ends it on all three.
//
// The zero value is a Limiter with every limit off and a 60 s window;
// NewLimiter makes one with limits, a Registry one per key_id. A Limiter
// is safe for concurrent use: one mutex guards its three limits, held by
// Admit, Finish and the other methods for a few instructions each.
type Limiter struct {
	mu     sync.Mutex
	conc   concurrency
	win    window
	day    daily
	excess int64 // the estimation error of Finish, limits off included

	// With a Store (Registry's Config.Store), the Store decides under
	// keyID and the limits above decide only what mode lets them.
	keyID string
	store Store
	mode  FailureMode
}

// NewLimiter returns a Limiter with limits lim whose TPM window is period
// long (zero or less: 60 s).
func NewLimiter(lim Limits, period time.Duration) *Limiter {
	l := new(Limiter)
	l.conc.limit = max(lim.Concurrency, 0)
	l.win.init(lim.TPM, period)
	l.day.init(lim.TPD)
	return l
}

// Admit decides a request of n tokens arriving at now (a negative n counts
// as 0): it is admitted iff it fits every limit that is on, and then holds
// a slot and a reservation of n tokens in the window and in the day,
// which the caller must end with Admission.Finish. A refused request takes
// nothing and gets the zero Admission, whose Finish does nothing.
//
// The Result of a refusal is the refusing limit's; if several refuse,
// the most useful to the client: TooLarge (TPM, then TPD), which no retry
// cures; then Limited with the longer RetryAfter (TPD on a tie), since
// retrying sooner would be refused again; then ConcurrencyExceeded. The
// Result of an admission is the TPM limit's if it is on, else the TPD
// limit's, else the concurrency limit's, else one of ScopeNone and Limit 0.
//
// After the key_id's first request, Admit does not allocate.
//
// A Limiter of a Registry with a Store asks the Store instead, which
// shares the limits with other processes; when the Store cannot decide,
// the Registry's FailureMode does: the limits of this Limiter (FailLocal),
// an admission reserving nothing (FailOpen), or a refusal of Kind
// Unavailable (FailClosed).
func (l *Limiter) Admit(now time.Time, n int64) (Admission, Result) {
	if l.store != nil {
		lease, r, err := l.store.Admit(l.keyID, l.Limits(), n)
		switch {
		case err == nil && r.Kind != Admitted:
			return Admission{}, r
		case err == nil:
			return Admission{l: l, n: max(n, 0), shared: true, lease: lease}, r
		case l.mode == FailOpen:
			return Admission{l: l, n: max(n, 0), shared: true}, Result{Kind: Admitted, Requested: max(n, 0)}
		case l.mode == FailClosed:
			return Admission{}, Result{Kind: Unavailable, Requested: max(n, 0)}
		}
	}
	wt, dt, n := int64(now.Sub(epoch)), now.UnixNano(), max(n, 0)
	l.mu.Lock()
	r := pick(l.conc.check(), l.win.check(wt, n), l.day.check(dt, n))
	var a Admission
	if r.Kind == Admitted {
		l.conc.inflight++
		a = Admission{l: l, n: n, win: l.win.take(n, &l.mu), day: l.day.take(n, &l.mu)}
	}
	l.mu.Unlock()
	return a, r
}

// pick returns the Result Admit reports from the three decisions.
func pick(rc, rw, rd Result) Result {
	switch {
	case rw.Kind == TooLarge:
		return rw
	case rd.Kind == TooLarge:
		return rd
	case rw.Kind == Limited && (rd.Kind != Limited || rw.RetryAfter > rd.RetryAfter):
		return rw
	case rd.Kind == Limited:
		return rd
	case rc.Kind != Admitted:
		return rc
	case rw.Limit > 0:
		return rw
	case rd.Limit > 0:
		return rd
	case rc.Limit > 0:
		return rc
	}
	return Result{Kind: Admitted, Requested: rw.Requested}
}

// Admission is one admitted request of a Limiter: its slot and its
// reservations. It is a small value: keep it in one variable and Finish it
// exactly once (see the package comment); Finish is a no-op on an
// Admission already finished and on the zero Admission (the one a refusal
// returns). Its methods are not safe for concurrent use.
type Admission struct {
	l        *Limiter
	n        int64
	win, day Reservation // zero for a limit that was off
	shared   bool        // decided by the Limiter's Store, or its FailOpen
	lease    Lease       // the Store's; nil for FailOpen
}

// Tokens returns the tokens reserved at admission, n; 0 once finished. A
// caller that cannot know a request's usage (a stream cut short) finishes
// it with this.
func (a *Admission) Tokens() int64 { return a.n }

// Finish ends the request with the tokens it actually consumed (a
// negative actual counts as 0; 0 for one the upstream never served):
// they replace the reservations in the window and the day, and the slot
// is released. Finish on a finished Admission does nothing.
func (a *Admission) Finish(actual int64) {
	l := a.l
	if l == nil {
		return
	}
	actual = max(actual, 0)
	if a.shared {
		if a.lease != nil {
			a.lease.Finish(actual)
			l.mu.Lock()
			l.excess += max(actual-a.n, 0)
			l.mu.Unlock()
		}
		*a = Admission{}
		return
	}
	l.mu.Lock()
	l.excess += max(actual-a.n, 0)
	if a.win.w != nil {
		l.win.commit(a.win.unit, a.n, actual)
	}
	if a.day.d != nil {
		l.day.commit(a.day.unit, a.n, actual)
	}
	l.conc.inflight--
	l.mu.Unlock()
	*a = Admission{}
}

// AcquireSlot takes one of the key_id's concurrency slots in the
// Limiter's Store, of which limit may be held at once, for a request that
// must Finish the Lease as it ends. ok is false without a Store, and when
// the Store cannot decide and the mode is FailLocal: the caller counts
// the slot itself. A refusal (ConcurrencyExceeded, or Unavailable with
// FailClosed) has a nil Lease; so has FailOpen's admission.
func (l *Limiter) AcquireSlot(limit int64) (lease Lease, r Result, ok bool) {
	if l.store == nil {
		return nil, Result{}, false
	}
	lease, r, err := l.store.Admit(l.keyID, Limits{Concurrency: limit}, 0)
	switch {
	case err == nil:
		return lease, r, true
	case l.mode == FailOpen:
		return nil, Result{Kind: Admitted, Scope: ScopeConcurrency}, true
	case l.mode == FailClosed:
		return nil, Result{Kind: Unavailable, Scope: ScopeConcurrency}, true
	}
	return nil, Result{}, false
}

// Shared reports whether the Limiter's limits are decided by a Store.
func (l *Limiter) Shared() bool { return l.store != nil }

// Limits returns the current limits.
func (l *Limiter) Limits() Limits {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Limits{TPM: l.win.limit, TPD: l.day.limit, Concurrency: l.conc.limit}
}

// SetLimits changes the limits, as when a reload changes the key_id's
// settings, keeping everything counted (see Window.SetLimit,
// Daily.SetLimit and Concurrency.SetLimit).
func (l *Limiter) SetLimits(lim Limits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.win.setLimit(lim.TPM)
	l.day.limit, l.conc.limit = max(lim.TPD, 0), max(lim.Concurrency, 0)
}

// Usage is a key_id's state at one instant, for the admin /limits page.
type Usage struct {
	Limits Limits
	// WindowUsed and WindowReserved are the tokens counted in the TPM
	// window: committed by requests that have ended, and reserved by
	// requests in flight (of those admitted in the window).
	WindowUsed, WindowReserved int64
	// DayUsed and DayReserved are the same for the current UTC day.
	DayUsed, DayReserved int64
	// InFlight is the requests admitted and not yet finished.
	InFlight int64
	// EstimationError is the sum, over every Finish, of the tokens
	// committed over the reservation; it only grows.
	EstimationError int64
}

// UsageAt returns the Limiter's state at now; it records and forgets
// nothing.
func (l *Limiter) UsageAt(now time.Time) Usage {
	wt, dt := int64(now.Sub(epoch)), now.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	u := Usage{
		Limits:          Limits{TPM: l.win.limit, TPD: l.day.limit, Concurrency: l.conc.limit},
		InFlight:        l.conc.inflight,
		EstimationError: l.excess,
	}
	u.WindowUsed, u.WindowReserved = l.win.usageAt(wt)
	u.DayUsed, u.DayReserved = l.day.usageAt(dt)
	return u
}

// dayTotal returns the UTC day counted and its committed and reserved
// tokens, for a State.
func (l *Limiter) dayTotal() (day, tokens int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.day.day, l.day.used + l.day.reserved
}

// restoreDay adds tokens an earlier process counted on day (see
// daily.restore).
func (l *Limiter) restoreDay(day, tokens int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.day.restore(day, tokens)
}
