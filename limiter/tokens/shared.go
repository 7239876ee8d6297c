package tokens

import "time"

// Store shares token limits and concurrency slots between processes:
// every process that uses the same Store (package limiter/redis's Tokens,
// for replicas sharing a Redis) admits a key_id's requests against one
// TPM window, one TPD day and one count of requests in flight.
//
// Admit decides a request of keyID of n tokens under lim with the
// semantics of Limiter.Admit (a limit of 0 is off): it takes a
// concurrency slot if lim.Concurrency is on and a reservation of n in the
// window and the day if lim.TPM or lim.TPD is on, all or nothing. An
// admitted request gets a Lease, which the caller must Finish exactly once
// with the tokens used; the Store keeps it alive while the process runs
// and lets it expire if the process dies, so a killed process leaks
// nothing for longer than the Store's lease. A refused request gets a nil
// Lease and the Result saying why.
//
// A non-nil error means the Store could not decide (it is unreachable):
// nothing was recorded, and the Registry's FailureMode decides instead.
// Admit must be safe for concurrent use.
type Store interface {
	Admit(keyID string, lim Limits, n int64) (Lease, Result, error)
}

// Lease is a request admitted by a Store: Finish ends it with the tokens
// the request used (0 for one that consumed none), replacing its
// reservation and releasing its slot. Finish is called once.
type Lease interface {
	Finish(actual int64)
}

// StoreUsage is one key_id's state in a Store, for the admin /limits
// page: a Store with a method Usage(keyID string) (StoreUsage, error)
// shows it there.
type StoreUsage struct {
	InFlight       int64 `json:"in_flight"`          // slots held
	Reservations   int64 `json:"reservations"`       // reservations held
	TokensReserved int64 `json:"tokens_reserved"`    // their tokens
	WindowTokens   int64 `json:"tokens_last_minute"` // committed and reserved in the TPM window
	DayTokens      int64 `json:"tokens_today"`       // committed and reserved today (UTC)
}

// FailureMode says what a Limiter with a Store does with a request the
// Store cannot decide.
type FailureMode uint8

const (
	// FailLocal decides it with the process's own limits, counting the
	// requests it admits while the Store fails.
	FailLocal FailureMode = iota
	// FailOpen admits it, reserving nothing.
	FailOpen
	// FailClosed refuses it as Unavailable.
	FailClosed
)

// Counts are what a Store counted of a key_id when it decided a request,
// before the request: the input of Decide.
type Counts struct {
	// InFlight is the slots held; WindowUsed and DayUsed the tokens
	// committed and reserved in the TPM window and on the UTC day.
	InFlight, WindowUsed, DayUsed int64
	// Reset is the time until every token now in the window has left it
	// (0 if none is in it); RetryAfter, when WindowUsed+n is over the TPM
	// limit, the time until enough have left for n to fit.
	Reset, RetryAfter time.Duration
	// NewReset is Reset once the request's n tokens are in the window: the
	// time until the newest bucket leaves it.
	NewReset time.Duration
}

// Decide returns the Result of a request of n tokens under lim, given
// what a Store counted, c, at now: the rule of Limiter.Admit (each limit
// on decides as Window, Daily and Concurrency do; pick chooses which
// Result to report). A Store decides admission atomically by the same
// rule and uses Decide to describe it.
func Decide(lim Limits, c Counts, n int64, now time.Time) Result {
	n = max(n, 0)
	var rc, rw, rd Result
	switch {
	case lim.Concurrency <= 0:
		rc = Result{Kind: Admitted, Scope: ScopeConcurrency, Used: c.InFlight + 1, Requested: 1}
	case c.InFlight >= lim.Concurrency:
		rc = result(ConcurrencyExceeded, ScopeConcurrency, lim.Concurrency, c.InFlight, 1)
	default:
		rc = result(Admitted, ScopeConcurrency, lim.Concurrency, c.InFlight+1, 1)
	}
	switch {
	case lim.TPM <= 0:
		rw = Result{Kind: Admitted, Scope: ScopeTPM, Requested: n}
	case n > lim.TPM:
		rw = result(TooLarge, ScopeTPM, lim.TPM, c.WindowUsed, n)
		rw.Reset = c.Reset
	case c.WindowUsed+n > lim.TPM:
		rw = result(Limited, ScopeTPM, lim.TPM, c.WindowUsed, n)
		rw.Reset, rw.RetryAfter = c.Reset, c.RetryAfter
	default:
		rw = result(Admitted, ScopeTPM, lim.TPM, c.WindowUsed+n, n)
		rw.Reset = c.Reset
		if n > 0 {
			rw.Reset = c.NewReset
		}
	}
	if lim.TPD <= 0 {
		rd = Result{Kind: Admitted, Scope: ScopeTPD, Requested: n}
	} else {
		t := now.UnixNano()
		reset := time.Duration((floorDiv(t, dayNanos)+1)*dayNanos - t)
		switch {
		case n > lim.TPD:
			rd = result(TooLarge, ScopeTPD, lim.TPD, c.DayUsed, n)
		case c.DayUsed+n > lim.TPD:
			rd = result(Limited, ScopeTPD, lim.TPD, c.DayUsed, n)
			rd.RetryAfter = reset
		default:
			rd = result(Admitted, ScopeTPD, lim.TPD, c.DayUsed+n, n)
		}
		rd.Reset = reset
	}
	return pick(rc, rw, rd)
}
