package tokens

import (
	"sync"
	"time"
)

// Kind is a decision: Admitted, or why a request was refused.
type Kind uint8

const (
	// Admitted: the request fits and its tokens (or slot) are recorded.
	Admitted Kind = iota
	// Limited: the request does not fit now; Result.RetryAfter says when it
	// would.
	Limited
	// TooLarge: the request's tokens alone exceed the limit, so it never
	// fits; there is no retry time.
	TooLarge
	// ConcurrencyExceeded: the key_id has its limit of requests in flight.
	ConcurrencyExceeded
	// Unavailable: the Limiter's Store could not decide and its
	// FailureMode is FailClosed; nothing was recorded.
	Unavailable
)

var kindNames = [...]string{"admitted", "limited", "too-large", "concurrency-exceeded", "unavailable"}

// String returns the kind's name for logs and metric labels.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Scope names the limit a Result describes.
type Scope uint8

const (
	// ScopeNone: no limit applies (every limit of the Limiter is off).
	ScopeNone Scope = iota
	// ScopeTPM: tokens per window (Window; 60 s by default).
	ScopeTPM
	// ScopeTPD: tokens per UTC day (Daily).
	ScopeTPD
	// ScopeConcurrency: requests in flight (Concurrency).
	ScopeConcurrency
)

var scopeNames = [...]string{"none", "tpm", "tpd", "concurrency"}

// String returns the scope's name for logs and metric labels.
func (s Scope) String() string {
	if int(s) < len(scopeNames) {
		return scopeNames[s]
	}
	return "unknown"
}

// Result is one decision and what the gateway reports with it: the
// x-ratelimit-{limit,remaining,reset}-tokens headers (Limit, Remaining,
// Reset), Retry-After (RetryAfter) and the 429 message (Message). For
// ScopeConcurrency the units are requests instead of tokens.
type Result struct {
	// Kind is the decision.
	Kind Kind
	// Scope is the limit described; a refusal's is the limit that refused.
	Scope Scope
	// Limit is the limit at the time of the decision; 0 means the limit is
	// off (the request was admitted and nothing was recorded): send no
	// header for it.
	Limit int64
	// Used is what counts against the limit after the decision: the
	// committed and reserved tokens in the window or day, this request's
	// included if admitted; for ScopeConcurrency, the requests in flight.
	// It may exceed Limit by the estimation error, or after a lowering.
	Used int64
	// Requested is the request's tokens, n (1 for ScopeConcurrency).
	Requested int64
	// Remaining is Limit - Used, or 0 if that is negative.
	Remaining int64
	// Reset is the time until the limit is back to its initial state: for
	// ScopeTPM until every token now in the window has left it (0 if none
	// is in it), for ScopeTPD until the next UTC midnight; 0 for
	// ScopeConcurrency and for a limit that is off.
	Reset time.Duration
	// RetryAfter is, for Limited only, the time until the request would
	// fit, assuming the reservations in flight stay as they are; 0
	// otherwise.
	RetryAfter time.Duration
}

// Allowed reports whether the request was admitted.
func (r Result) Allowed() bool { return r.Kind == Admitted }

// result fills the counts of a Result: Used, Remaining.
func result(kind Kind, scope Scope, limit, used, n int64) Result {
	return Result{
		Kind:      kind,
		Scope:     scope,
		Limit:     limit,
		Used:      used,
		Requested: n,
		Remaining: max(limit-used, 0),
	}
}

// Reservation is the tokens reserved for one admitted request by
// Window.Reserve or Daily.Reserve. It is a small value: keep it in one
// variable and end it exactly once, with Commit or Cancel; both are no-ops
// on a Reservation already ended and on the zero Reservation (the one a
// refusal, or a limit that is off, returns). Its methods are not safe for
// concurrent use with each other; the Window or Daily it belongs to is.
type Reservation struct {
	mu   *sync.Mutex // the owner's, guarding w or d
	w    *window     // set for a TPM reservation
	d    *daily      // set for a TPD reservation
	unit int64       // the bucket number (TPM) or the UTC day (TPD)
	n    int64       // the tokens reserved
}

// Tokens returns the tokens reserved, n; 0 once the Reservation is ended.
// A caller that cannot know a request's usage (a stream cut short) commits
// this.
func (r *Reservation) Tokens() int64 { return r.n }

// Commit ends the reservation with the tokens the request actually
// consumed (a negative actual counts as 0). They replace the reservation
// at the request's admission time, if that time is still in the window
// (or day); their excess over the reservation is counted as estimation
// error. Commit on an ended Reservation does nothing.
func (r *Reservation) Commit(actual int64) {
	if r.mu == nil {
		return
	}
	r.mu.Lock()
	if r.w != nil {
		r.w.commit(r.unit, r.n, max(actual, 0))
	} else {
		r.d.commit(r.unit, r.n, max(actual, 0))
	}
	r.mu.Unlock()
	*r = Reservation{}
}

// Cancel ends the reservation of a request that consumed nothing; it is
// Commit(0).
func (r *Reservation) Cancel() { r.Commit(0) }
