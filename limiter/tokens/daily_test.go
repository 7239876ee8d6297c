package tokens

import (
	"testing"
	"time"
)

// midnight is a UTC midnight: the end of 2026-11-27.
var midnight = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)

// dayReserver returns f(at, n, want) for d, as reserver does for a Window.
func dayReserver(t *testing.T, d *Daily) func(time.Time, int64, Result) Reservation {
	return func(at time.Time, n int64, want Result) Reservation {
		t.Helper()
		want.Scope, want.Limit, want.Requested = ScopeTPD, d.Limit(), n
		want.Remaining = max(want.Limit-want.Used, 0)
		res, got := d.Reserve(at, n)
		if got != want {
			t.Fatalf("Reserve(%v, %d)\n got %+v\nwant %+v", at, n, got, want)
		}
		if (res.Tokens() == n && res.d == &d.daily) != got.Allowed() {
			t.Fatalf("Reserve(%v, %d) returned Reservation %+v with %v", at, n, res, got.Kind)
		}
		return res
	}
}

func TestDailySteps(t *testing.T) {
	d := NewDaily(1000)
	f := dayReserver(t, d)
	noon := midnight.Add(-12 * time.Hour)
	a := f(noon, 700, Result{Kind: Admitted, Used: 700, Reset: 12 * time.Hour})
	b := f(noon.Add(time.Hour), 300, Result{Kind: Admitted, Used: 1000, Reset: 11 * time.Hour}) // exactly at the limit
	f(noon.Add(time.Hour), 1, Result{Kind: Limited, Used: 1000, Reset: 11 * time.Hour, RetryAfter: 11 * time.Hour})
	f(noon.Add(time.Hour), 1001, Result{Kind: TooLarge, Used: 1000, Reset: 11 * time.Hour})
	a.Commit(400) // less: 300 free at once
	f(noon.Add(2*time.Hour), 301, Result{Kind: Limited, Used: 700, Reset: 10 * time.Hour, RetryAfter: 10 * time.Hour})
	c := f(noon.Add(2*time.Hour), 300, Result{Kind: Admitted, Used: 1000, Reset: 10 * time.Hour})
	b.Commit(500) // more: over by the estimation error
	if got := d.EstimationError(); got != 200 {
		t.Fatalf("EstimationError = %d, want 200", got)
	}
	if u, r := d.UsageAt(noon.Add(3 * time.Hour)); u != 900 || r != 300 {
		t.Fatalf("UsageAt = %d, %d, want 900, 300", u, r)
	}
	// The last nanosecond of the day is still the day.
	f(midnight.Add(-1), 0, Result{Kind: Limited, Used: 1200, Reset: 1, RetryAfter: 1})
	// At midnight the count starts again; c, admitted yesterday, no
	// longer counts, and its commit changes nothing today.
	f(midnight, 1000, Result{Kind: Admitted, Used: 1000, Reset: 24 * time.Hour})
	c.Commit(900)
	if u, r := d.UsageAt(midnight); u != 0 || r != 1000 {
		t.Fatalf("UsageAt(midnight) = %d, %d, want 0, 1000", u, r)
	}
	if got := d.InFlight(); got != 1 {
		t.Fatalf("InFlight = %d, want 1", got)
	}
	if got := d.EstimationError(); got != 800 {
		t.Fatalf("EstimationError = %d, want 800", got)
	}
}

func TestDailyBackwardsClock(t *testing.T) {
	d := NewDaily(100)
	f := dayReserver(t, d)
	f(midnight.Add(time.Second), 100, Result{Kind: Admitted, Used: 100, Reset: 24*time.Hour - time.Second})
	// Back into yesterday: the day is not reopened.
	f(midnight.Add(-time.Hour), 1, Result{Kind: Limited, Used: 100, Reset: 24*time.Hour - time.Second, RetryAfter: 24*time.Hour - time.Second})
	if u, r := d.UsageAt(midnight.Add(-time.Hour)); u != 0 || r != 100 {
		t.Fatalf("UsageAt(yesterday) = %d, %d, want 0, 100", u, r)
	}
	// UsageAt tomorrow reads an empty day, and forgets nothing.
	if u, r := d.UsageAt(midnight.Add(25 * time.Hour)); u != 0 || r != 0 {
		t.Fatalf("UsageAt(tomorrow) = %d, %d, want 0, 0", u, r)
	}
	f(midnight.Add(2*time.Second), 1, Result{Kind: Limited, Used: 100, Reset: 24*time.Hour - 2*time.Second, RetryAfter: 24*time.Hour - 2*time.Second})
}

func TestDailySetLimit(t *testing.T) {
	d := NewDaily(100)
	f := dayReserver(t, d)
	f(midnight, 80, Result{Kind: Admitted, Used: 80, Reset: 24 * time.Hour})
	d.SetLimit(50)
	f(midnight, 10, Result{Kind: Limited, Used: 80, Reset: 24 * time.Hour, RetryAfter: 24 * time.Hour})
	d.SetLimit(0)
	if res, r := d.Reserve(midnight, 1e9); r != (Result{Kind: Admitted, Scope: ScopeTPD, Requested: 1e9}) || res != (Reservation{}) {
		t.Fatalf("off: %+v, %+v", r, res)
	}
	d.SetLimit(100)
	f(midnight, 20, Result{Kind: Admitted, Used: 100, Reset: 24 * time.Hour})
	if NewDaily(-3).Limit() != 0 {
		t.Fatal("NewDaily(-3) is not off")
	}
}

func TestDailyRestore(t *testing.T) {
	d := NewDaily(100)
	today := floorDiv(midnight.UnixNano(), dayNanos)
	d.restore(today-1, 70) // yesterday's, replaced by today's below
	d.restore(today, 60)
	d.restore(today-1, 50) // older than the day counted: ignored
	f := dayReserver(t, d)
	f(midnight.Add(time.Hour), 41, Result{Kind: Limited, Used: 60, Reset: 23 * time.Hour, RetryAfter: 23 * time.Hour})
	f(midnight.Add(time.Hour), 40, Result{Kind: Admitted, Used: 100, Reset: 23 * time.Hour})
	if d.day != today || d.used+d.reserved != 100 {
		t.Fatalf("day %d, %d tokens, want %d, 100", d.day, d.used+d.reserved, today)
	}
}

func TestConcurrency(t *testing.T) {
	c := NewConcurrency(2)
	f := func(want Result) Slot {
		t.Helper()
		want.Scope, want.Requested = ScopeConcurrency, 1
		want.Remaining = max(want.Limit-want.Used, 0)
		s, got := c.Acquire()
		if got != want {
			t.Fatalf("Acquire\n got %+v\nwant %+v", got, want)
		}
		if (s.c != nil) != got.Allowed() {
			t.Fatalf("Acquire returned Slot %+v with %v", s, got.Kind)
		}
		return s
	}
	a := f(Result{Kind: Admitted, Limit: 2, Used: 1})
	f(Result{Kind: Admitted, Limit: 2, Used: 2})
	refused := f(Result{Kind: ConcurrencyExceeded, Limit: 2, Used: 2})
	refused.Release() // the zero Slot: nothing
	a.Release()
	a.Release() // idempotent
	if got := c.InFlight(); got != 1 {
		t.Fatalf("InFlight = %d, want 1", got)
	}
	b := f(Result{Kind: Admitted, Limit: 2, Used: 2})
	c.SetLimit(1) // lowered below the slots held
	f(Result{Kind: ConcurrencyExceeded, Limit: 1, Used: 2})
	b.Release()
	f(Result{Kind: ConcurrencyExceeded, Limit: 1, Used: 1})
	c.SetLimit(0) // off: admitted, still counted
	off := f(Result{Kind: Admitted, Used: 2})
	off.Release()
	if got := c.InFlight(); got != 1 {
		t.Fatalf("InFlight = %d, want 1", got)
	}
	var zero Concurrency
	if s, r := zero.Acquire(); !r.Allowed() || zero.InFlight() != 1 {
		t.Fatalf("zero Concurrency: %+v", r)
	} else {
		s.Release()
	}
}
