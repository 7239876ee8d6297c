package tokens

import "sync"

// Concurrency is the limit on one key_id's requests in flight: at most
// Limit hold a Slot at once. It counts the requests in flight even when
// the limit is off (0), for the admin /limits page.
//
// The zero value is a Concurrency with the limit off. It is safe for
// concurrent use.
type Concurrency struct {
	mu sync.Mutex
	concurrency
}

// concurrency is the state of a Concurrency, or of a Limiter's concurrency
// limit, guarded by its owner's mutex.
type concurrency struct {
	limit    int64 // 0: off
	inflight int64
}

// NewConcurrency returns a Concurrency admitting at most limit requests in
// flight; a limit of 0 or less turns it off (every request admitted).
func NewConcurrency(limit int64) *Concurrency {
	return &Concurrency{concurrency: concurrency{limit: max(limit, 0)}}
}

// Acquire admits a request iff fewer than Limit requests hold a Slot, and
// then gives it one: the caller must Release it when the request ends.
// Otherwise it returns the zero Slot and a Result of Kind
// ConcurrencyExceeded, with no retry time: a slot frees when a request
// ends, which no clock predicts. Acquire does not allocate.
func (c *Concurrency) Acquire() (Slot, Result) {
	c.mu.Lock()
	r := c.check()
	var s Slot
	if r.Kind == Admitted {
		c.inflight++
		s = Slot{mu: &c.mu, c: &c.concurrency}
	}
	c.mu.Unlock()
	return s, r
}

// check returns the decision on one more request, the Result as it will
// be once the caller counts it. The caller holds the owner's mutex.
func (c *concurrency) check() Result {
	switch {
	case c.limit == 0:
		return Result{Kind: Admitted, Scope: ScopeConcurrency, Used: c.inflight + 1, Requested: 1}
	case c.inflight >= c.limit:
		return result(ConcurrencyExceeded, ScopeConcurrency, c.limit, c.inflight, 1)
	}
	return result(Admitted, ScopeConcurrency, c.limit, c.inflight+1, 1)
}

// InFlight returns the number of Slots held.
func (c *Concurrency) InFlight() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight
}

// Limit returns the current limit; 0 means off.
func (c *Concurrency) Limit() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit
}

// SetLimit changes the limit, as when a reload changes a key_id's
// concurrency=; 0 or less turns it off. Slots held are kept: after a
// lowering below them, requests are refused until enough are released.
func (c *Concurrency) SetLimit(limit int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit = max(limit, 0)
}

// Slot is one request in flight, from Concurrency.Acquire. It is a small
// value: keep it in one variable and Release it exactly once; Release is a
// no-op on a Slot already released and on the zero Slot (the one a refusal
// returns). Its method is not safe for concurrent use.
type Slot struct {
	mu *sync.Mutex
	c  *concurrency
}

// Release frees the slot; it does nothing on a released or zero Slot.
func (s *Slot) Release() {
	if s.c == nil {
		return
	}
	s.mu.Lock()
	s.c.inflight--
	s.mu.Unlock()
	*s = Slot{}
}
