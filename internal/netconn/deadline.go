package netconn

import (
	"sync"
	"time"
)

// Each deadline update costs a time.Now and a change of the runtime
// poller's timer (about 100–150 ns), and fasthttp makes three per
// keep-alive request. A CoarseDeadline applies a deadline only when it must.
const (
	// deadlineSlackDivisor: a deadline of timeout T may be applied up to
	// T/deadlineSlackDivisor early...
	deadlineSlackDivisor = 8
	// maxDeadlineSlack: ... and never more than this early.
	maxDeadlineSlack = time.Second
)

// CoarseDeadline applies a connection's deadline (one direction's: read or
// write) only when the one in force is not close enough to it.
//
// Set(d, apply) calls apply(d), unless d is later than the deadline last
// applied by less than that deadline's slack, in which case it leaves the
// applied one in force, so that a deadline moved a little later on every
// request costs nothing. The slack is min(T/8, 1 s), where T is how far
// ahead the applied deadline was when it was applied. A deadline that
// clears (zero), tightens (earlier than the applied one), or comes when
// none is applied is always applied. So the deadline in force is never
// later than the one last asked for, nor earlier by more than the slack;
// if the applied one has already passed, an operation times out at once
// where the one asked for, less than the slack later, would have let it
// wait, which needs a timeout shorter than the slack of the previous one.
//
// time.Now is called only when a deadline is applied. The zero value has
// no deadline applied: it suits a connection whose deadlines nobody has set
// (a new one). Every deadline of that direction must go through the same
// CoarseDeadline, or it no longer knows what is in force. Its methods are
// safe for concurrent use; apply is called with a lock held, so that what
// is in force is what it recorded, and must not call back into it.
// Deadlines set at once from several goroutines may take the lock out of
// order, and one that comes after a later one tightens: it is applied.
type CoarseDeadline struct {
	mu      sync.Mutex
	applied time.Time     // zero: none, or not known after apply failed
	slack   time.Duration // of applied
}

// Set is shorthand for SetAt(d, time.Now, apply).
func (cd *CoarseDeadline) Set(d time.Time, apply func(time.Time) error) error {
	return cd.SetAt(d, time.Now, apply)
}

// SetAt makes d the deadline, calling apply(d) if it must (see
// CoarseDeadline), and returns apply's error. now is called only when
// apply is, to measure the timeout d stands for; it lets tests use fixed
// instants.
func (cd *CoarseDeadline) SetAt(d time.Time, now func() time.Time, apply func(time.Time) error) error {
	cd.mu.Lock()
	err := cd.setLocked(d, now, apply)
	cd.mu.Unlock()
	return err
}

// setLocked is SetAt with cd.mu held.
func (cd *CoarseDeadline) setLocked(d time.Time, now func() time.Time, apply func(time.Time) error) error {
	if cd.skips(d) {
		return nil
	}
	if err := apply(d); err != nil {
		cd.applied, cd.slack = time.Time{}, 0 // the next deadline is applied whatever it is
		return err
	}
	cd.applied, cd.slack = d, 0
	if !d.IsZero() {
		cd.slack = deadlineSlack(d.Sub(now()))
	}
	return nil
}

// skips reports whether d may be left unapplied: it is no earlier than the
// applied deadline and later by less than its slack.
func (cd *CoarseDeadline) skips(d time.Time) bool {
	if d.IsZero() || cd.applied.IsZero() {
		return false
	}
	late := d.Sub(cd.applied)
	return late == 0 || (late > 0 && late < cd.slack)
}

// deadlineSlack is how much earlier than asked a deadline of timeout t may
// be: min(t/8, 1 s), and none for a deadline already due.
func deadlineSlack(t time.Duration) time.Duration {
	if t <= 0 {
		return 0
	}
	return min(t/deadlineSlackDivisor, maxDeadlineSlack)
}
