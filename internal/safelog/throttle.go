package safelog

import (
	"sync/atomic"
	"time"
)

// Throttle lets one event through per Interval and counts the rest, for a
// log line any client can cause. The zero value is ready to use; its
// methods are safe for concurrent use.
type Throttle struct {
	last       atomic.Int64 // unix nanoseconds of the last event let through
	suppressed atomic.Int64
}

// Interval is the least time between two events a Throttle lets through.
const Interval = 5 * time.Second

// Allow reports whether an event at now may be logged, and how many were
// suppressed since the last one that was.
func (t *Throttle) Allow(now time.Time) (suppressed int64, ok bool) {
	last := t.last.Load()
	if now.UnixNano()-last < int64(Interval) || !t.last.CompareAndSwap(last, now.UnixNano()) {
		t.suppressed.Add(1)
		return 0, false
	}
	return t.suppressed.Swap(0), true
}
