package limiter

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// base is the fixed instant the step tables count from. It has no monotonic
// reading, so Window uses plain wall differences for it.
var base = time.Unix(1_700_000_000, 0)

// stepper returns f(offset, wantAllowed, wantRemaining, wantReset), which
// calls w.AllowAt(base+offset) and checks the Result.
func stepper(t *testing.T, w *Window) func(time.Duration, bool, int, time.Duration) {
	return func(offset time.Duration, wantAllowed bool, wantRemaining int, wantReset time.Duration) {
		t.Helper()
		r := w.AllowAt(base.Add(offset))
		want := Result{Allowed: wantAllowed, Limit: w.Limit(), Remaining: wantRemaining, Reset: wantReset}
		if r != want {
			t.Fatalf("AllowAt(base+%v)\n got %+v\nwant %+v", offset, r, want)
		}
	}
}

func TestAllowAtSteps(t *testing.T) {
	f := stepper(t, NewWindow(3, time.Minute))
	f(0, true, 2, 60*time.Second) // empty window: Reset is the period
	f(10*time.Second, true, 1, 50*time.Second)
	f(20*time.Second, true, 0, 40*time.Second)
	f(30*time.Second, false, 0, 30*time.Second) // refused: Reset is the retry-after
	f(59_999*time.Millisecond, false, 0, time.Millisecond)
	f(60*time.Second, true, 0, 10*time.Second) // the admission at 0 left at exactly 60 s
	f(60*time.Second, false, 0, 10*time.Second)
	f(69_999_999_999, false, 0, 1) // one nanosecond early
	f(70*time.Second, true, 0, 10*time.Second)
	// A long pause empties the window; the ring wraps around correctly.
	f(200*time.Second, true, 2, 60*time.Second)
	f(200*time.Second, true, 1, 60*time.Second)
	f(201*time.Second, true, 0, 59*time.Second)
	f(201*time.Second, false, 0, 59*time.Second)
	f(260*time.Second, true, 1, time.Second) // both admissions at 200 s left
	f(261*time.Second, true, 1, 59*time.Second)
}

func TestAllowAtLimitOne(t *testing.T) {
	f := stepper(t, NewWindow(1, time.Minute))
	f(0, true, 0, 60*time.Second)
	f(0, false, 0, 60*time.Second)
	f(59_999*time.Millisecond, false, 0, time.Millisecond)
	f(60*time.Second, true, 0, 60*time.Second)
	f(61*time.Second, false, 0, 59*time.Second)
	f(119_999*time.Millisecond, false, 0, time.Millisecond)
	f(120*time.Second, true, 0, 60*time.Second)
}

func TestAllowAtLimitZero(t *testing.T) {
	f := func(limit int, period, wantPeriod time.Duration) {
		t.Helper()
		w := NewWindow(limit, period)
		if got := w.Limit(); got != 0 {
			t.Fatalf("NewWindow(%d, %v).Limit() = %d, want 0", limit, period, got)
		}
		step := stepper(t, w)
		step(0, false, 0, wantPeriod)
		step(time.Hour, false, 0, wantPeriod)
		if got := w.CountAt(base); got != 0 {
			t.Fatalf("CountAt = %d, want 0", got)
		}
	}
	f(0, time.Minute, time.Minute)
	f(-1, time.Minute, time.Minute)
	f(0, 0, time.Minute) // default period
	f(-5, -time.Second, time.Minute)
}

func TestAllowAtDefaultPeriod(t *testing.T) {
	f := func(period time.Duration) {
		t.Helper()
		step := stepper(t, NewWindow(1, period))
		step(0, true, 0, time.Minute)
		step(59_999*time.Millisecond, false, 0, time.Millisecond)
		step(time.Minute, true, 0, time.Minute)
	}
	f(0)
	f(-time.Second)
}

func TestAllowAtBackwardsClock(t *testing.T) {
	f := stepper(t, NewWindow(2, time.Minute))
	f(100*time.Second, true, 1, 60*time.Second)
	// 60 s back: treated as 100 s, the newest admission, and recorded so.
	f(40*time.Second, true, 0, 60*time.Second)
	f(159_999*time.Millisecond, false, 0, time.Millisecond)
	// Far back: still treated as 100 s, so the retry-after is a full period,
	// not the 160 s the raw clock would suggest and not a negative one.
	f(-time.Hour, false, 0, 60*time.Second)
	f(160*time.Second, true, 1, 60*time.Second) // both admissions at 100 s left
	f(160*time.Second, true, 0, 60*time.Second)
	// Back by less than a period after a refusal at a later time: the
	// refusal at 219 s must not let the admissions at 160 s be forgotten.
	f(219*time.Second, false, 0, time.Second)
	f(170*time.Second, false, 0, 50*time.Second)
}

// TestCountAtDoesNotForget is a regression test: CountAt must not pop the
// admissions it sees as expired, or a later, earlier-clocked AllowAt would
// admit over the limit.
func TestCountAtDoesNotForget(t *testing.T) {
	w := NewWindow(1, time.Minute)
	f := stepper(t, w)
	f(0, true, 0, 60*time.Second)
	if got := w.CountAt(base.Add(time.Hour)); got != 0 {
		t.Fatalf("CountAt(base+1h) = %d, want 0", got)
	}
	f(30*time.Second, false, 0, 30*time.Second)
}

func TestCountAt(t *testing.T) {
	w := NewWindow(3, time.Minute)
	if got := w.CountAt(base); got != 0 {
		t.Fatalf("CountAt of an unused window = %d, want 0", got)
	}
	step := stepper(t, w)
	step(0, true, 2, 60*time.Second)
	step(10*time.Second, true, 1, 50*time.Second)
	step(20*time.Second, true, 0, 40*time.Second)

	f := func(offset time.Duration, want int) {
		t.Helper()
		if got := w.CountAt(base.Add(offset)); got != want {
			t.Fatalf("CountAt(base+%v) = %d, want %d", offset, got, want)
		}
	}
	f(20*time.Second, 3)
	f(30*time.Second, 3)
	f(59_999*time.Millisecond, 3)
	f(60*time.Second, 2)
	f(79_999*time.Millisecond, 1)
	f(80*time.Second, 0)
	f(time.Hour, 0)
	f(5*time.Second, 3) // backwards: treated as 20 s
	f(-time.Hour, 3)
	// CountAt recorded nothing and forgot nothing.
	step(30*time.Second, false, 0, 30*time.Second)
	step(60*time.Second, true, 0, 10*time.Second)
	f(60*time.Second, 3)
}

func TestSetLimit(t *testing.T) {
	w := NewWindow(5, time.Minute)
	f := stepper(t, w)
	f(0, true, 4, 60*time.Second)
	f(1*time.Second, true, 3, 59*time.Second)
	f(2*time.Second, true, 2, 58*time.Second)
	f(3*time.Second, true, 1, 57*time.Second)
	f(4*time.Second, true, 0, 56*time.Second)

	// Down: the newest two (3 s, 4 s) are kept.
	w.SetLimit(2)
	if got := w.Limit(); got != 2 {
		t.Fatalf("Limit() = %d, want 2", got)
	}
	if got := w.CountAt(base.Add(5 * time.Second)); got != 2 {
		t.Fatalf("CountAt after SetLimit(2) = %d, want 2", got)
	}
	f(5*time.Second, false, 0, 58*time.Second)
	f(62_999*time.Millisecond, false, 0, time.Millisecond)
	f(63*time.Second, true, 0, time.Second) // 3 s left; 4 s and 63 s remain

	// Up: everything is kept, with room for more.
	w.SetLimit(4)
	f(63*time.Second, true, 1, time.Second)
	f(64*time.Second, true, 1, 59*time.Second) // 4 s left
	f(64*time.Second, true, 0, 59*time.Second)
	f(64*time.Second, false, 0, 59*time.Second)

	// Same limit: nothing changes.
	w.SetLimit(4)
	f(64*time.Second, false, 0, 59*time.Second)

	// Zero refuses everything and forgets the window; the clamp of a
	// backwards clock is kept.
	w.SetLimit(0)
	f(64*time.Second, false, 0, 60*time.Second)
	w.SetLimit(-3)
	if got := w.Limit(); got != 0 {
		t.Fatalf("Limit() after SetLimit(-3) = %d, want 0", got)
	}
	w.SetLimit(1)
	f(0, true, 0, 60*time.Second) // treated as 64 s
	f(123_999*time.Millisecond, false, 0, time.Millisecond)
}

func TestSetLimitBeforeUse(t *testing.T) {
	w := NewWindow(1, time.Minute)
	w.SetLimit(3)
	if w.ring != nil {
		t.Fatalf("SetLimit allocated the ring of an unused window")
	}
	f := stepper(t, w)
	f(0, true, 2, 60*time.Second)
	f(0, true, 1, 60*time.Second)
	f(0, true, 0, 60*time.Second)
	f(0, false, 0, 60*time.Second)
}

func TestZeroWindow(t *testing.T) {
	var w Window
	if r := w.AllowAt(base); r != (Result{}) {
		t.Fatalf("zero Window AllowAt = %+v, want a refusal", r)
	}
	// Given a limit, a zero Window behaves as NewWindow(limit, 0), not as a
	// window of length zero that would admit everything.
	w.SetLimit(1)
	f := stepper(t, &w)
	f(0, true, 0, time.Minute)
	f(time.Second, false, 0, 59*time.Second)
}

// reference is the seed's algorithm (auth.py _check_rate_limit) with the
// Window's rules: on every request the slice of admission times is filtered
// to those later than now-period, and the request is admitted iff fewer than
// limit remain; a now earlier than the newest admission is treated as it.
// It converts times with UnixNano, independently of Window's epoch.
type reference struct {
	limit   int
	period  int64
	ts      []int64
	last    int64 // newest admission, if hasLast
	hasLast bool
}

func newReference(limit int, period time.Duration) *reference {
	if period <= 0 {
		period = time.Minute
	}
	return &reference{limit: max(limit, 0), period: int64(period)}
}

func (r *reference) clamp(now time.Time) int64 {
	t := now.UnixNano()
	if r.hasLast && t < r.last {
		t = r.last
	}
	return t
}

func (r *reference) allowAt(now time.Time) Result {
	t := r.clamp(now)
	recent := r.ts[:0]
	for _, ts := range r.ts {
		if ts > t-r.period {
			recent = append(recent, ts)
		}
	}
	r.ts = recent
	allowed := len(r.ts) < r.limit
	if allowed {
		r.ts = append(r.ts, t)
		r.last, r.hasLast = t, true
	}
	reset := time.Duration(r.period)
	if len(r.ts) > 0 {
		reset = time.Duration(r.ts[0] + r.period - t)
	}
	return Result{Allowed: allowed, Limit: r.limit, Remaining: r.limit - len(r.ts), Reset: reset}
}

func (r *reference) countAt(now time.Time) int {
	t := r.clamp(now)
	n := 0
	for _, ts := range r.ts {
		if ts > t-r.period {
			n++
		}
	}
	return n
}

func (r *reference) setLimit(limit int) {
	r.limit = max(limit, 0)
	if len(r.ts) > r.limit {
		r.ts = append(r.ts[:0], r.ts[len(r.ts)-r.limit:]...)
	}
}

// randomDelta returns a time step: often zero (simultaneous requests), often
// a multiple of period/4 (to land on window boundaries exactly), otherwise
// arbitrary; about a quarter of the steps go backwards.
func randomDelta(rng *rand.Rand, period time.Duration) time.Duration {
	switch k := rng.IntN(10); {
	case k < 3:
		return 0
	case k < 6:
		return time.Duration(rng.IntN(9)-2) * (period / 4)
	default:
		return time.Duration(rng.Int64N(int64(period)*3/2)) - period/2
	}
}

func TestWindowMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var allowed, refused int
	for run := range 300 {
		limit := rng.IntN(10) - 1
		period := []time.Duration{
			time.Second,
			time.Minute,
			time.Duration(1+rng.IntN(1000)) * time.Millisecond,
		}[rng.IntN(3)]
		w, ref := NewWindow(limit, period), newReference(limit, period)
		now := base
		for step := range 400 {
			switch k := rng.IntN(100); {
			case k < 3:
				limit = rng.IntN(12) - 1
				w.SetLimit(limit)
				ref.setLimit(limit)
				if got, want := w.Limit(), ref.limit; got != want {
					t.Fatalf("run %d step %d: SetLimit(%d): Limit() = %d, want %d", run, step, limit, got, want)
				}
			case k < 8:
				at := now.Add(randomDelta(rng, period))
				if got, want := w.CountAt(at), ref.countAt(at); got != want {
					t.Fatalf("run %d step %d: CountAt(%v) = %d, want %d", run, step, at.Sub(base), got, want)
				}
			default:
				now = now.Add(randomDelta(rng, period))
				got, want := w.AllowAt(now), ref.allowAt(now)
				if got != want {
					t.Fatalf("run %d step %d (limit %d, period %v): AllowAt(base+%v)\n got %+v\nwant %+v",
						run, step, ref.limit, period, now.Sub(base), got, want)
				}
				if got.Allowed {
					allowed++
				} else {
					refused++
				}
			}
		}
	}
	// Guard against a generator that never fills a window, or never lets
	// one drain.
	if allowed < 20_000 || refused < 20_000 {
		t.Fatalf("weak test: %d admitted, %d refused", allowed, refused)
	}
}

// TestBackwardsClockNeverOverAdmits checks the promise of the clamp: with
// each admission placed at its effective time (now, or the newest earlier
// admission if the clock went back), no period ever holds more than limit,
// whatever the clock does and whenever CountAt looks.
func TestBackwardsClockNeverOverAdmits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const period = time.Minute
	for run := range 100 {
		limit := 1 + rng.IntN(6)
		w := NewWindow(limit, period)
		now := base
		var admitted []time.Time // effective times, non-decreasing
		for range 500 {
			now = now.Add(randomDelta(rng, period))
			// A snapshot at some other time must not change decisions.
			w.CountAt(now.Add(randomDelta(rng, period)))
			if !w.AllowAt(now).Allowed {
				continue
			}
			at := now
			if n := len(admitted); n > 0 && at.Before(admitted[n-1]) {
				at = admitted[n-1]
			}
			admitted = append(admitted, at)
		}
		// Every window (a-period, a] ending at an admission a.
		lo := 0
		for hi, a := range admitted {
			for a.Sub(admitted[lo]) >= period {
				lo++
			}
			if n := hi - lo + 1; n > limit {
				t.Fatalf("run %d: %d admissions in the period ending at base+%v, limit %d",
					run, n, a.Sub(base), limit)
			}
		}
		if len(admitted) < 50 {
			t.Fatalf("run %d: weak test: only %d admissions", run, len(admitted))
		}
	}
}

func TestSimultaneousRequests(t *testing.T) {
	f := func(t *testing.T, allow func(*Window) Result, now func() time.Time) *Window {
		t.Helper()
		const limit, requests = 5, 40
		w := NewWindow(limit, time.Minute)
		start := make(chan struct{})
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range requests {
			wg.Go(func() {
				<-start
				if r := allow(w); r.Allowed {
					admitted.Add(1)
				} else if r.Remaining != 0 || r.Reset <= 0 {
					t.Errorf("refusal %+v: want Remaining 0 and Reset > 0", r)
				}
			})
		}
		close(start)
		wg.Wait()
		if got := admitted.Load(); got != limit {
			t.Fatalf("%d of %d simultaneous requests admitted, want exactly %d", got, requests, limit)
		}
		if got := w.CountAt(now()); got != limit {
			t.Fatalf("CountAt = %d, want %d", got, limit)
		}
		return w
	}
	// One fixed instant.
	f(t, func(w *Window) Result { return w.AllowAt(base) }, func() time.Time { return base })
	// Allow, which reads time.Now: in a synctest bubble the clock stands
	// still while goroutines run, so the burst is decided at one instant
	// however long it takes, and the slots free exactly a period later.
	synctest.Test(t, func(t *testing.T) {
		w := f(t, (*Window).Allow, time.Now)
		time.Sleep(time.Minute - time.Nanosecond)
		if r := w.Allow(); r.Allowed || r.Reset != time.Nanosecond {
			t.Fatalf("1 ns before the burst leaves the window: %+v, want refused with Reset 1ns", r)
		}
		time.Sleep(time.Nanosecond)
		if r := w.Allow(); !r.Allowed || r.Remaining != 4 {
			t.Fatalf("a period after the burst: %+v, want admitted with Remaining 4 (the whole burst left)", r)
		}
	})
}

// TestSetLimitConcurrent runs SetLimit against AllowAt and CountAt, for the
// race detector and to check that no decision ever exceeds the limit.
func TestSetLimitConcurrent(t *testing.T) {
	w := NewWindow(4, time.Second)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				now := base.Add(time.Duration(i) * time.Millisecond)
				r := w.AllowAt(now)
				if r.Remaining < 0 || r.Remaining > r.Limit || r.Reset <= 0 || r.Reset > time.Second {
					t.Errorf("goroutine %d: AllowAt = %+v", g, r)
					return
				}
				w.CountAt(now)
			}
		})
	}
	wg.Go(func() {
		for i := range 500 {
			w.SetLimit(i % 7)
		}
	})
	wg.Wait()
	if n, limit := w.CountAt(base.Add(time.Second)), w.Limit(); n > limit {
		t.Fatalf("CountAt = %d > Limit %d", n, limit)
	}
}

// TestGrowingRingMatchesReference checks the ring's growth (it starts at 64
// entries and doubles up to the limit) against the reference, with limits
// above 64 and steps short enough to fill windows, across SetLimit.
func TestGrowingRingMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var grew int
	for run := range 60 {
		limit := 60 + rng.IntN(500)
		const period = time.Second
		w, ref := NewWindow(limit, period), newReference(limit, period)
		now := base
		for step := range 3000 {
			switch k := rng.IntN(1000); {
			case k < 3:
				limit = 1 + rng.IntN(600)
				w.SetLimit(limit)
				ref.setLimit(limit)
			case k < 30:
				at := now.Add(time.Duration(rng.IntN(2000)-1000) * time.Millisecond)
				if got, want := w.CountAt(at), ref.countAt(at); got != want {
					t.Fatalf("run %d step %d: CountAt = %d, want %d", run, step, got, want)
				}
			default:
				// Mostly simultaneous or close requests, sometimes a jump.
				if rng.IntN(50) == 0 {
					now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
				} else if rng.IntN(3) == 0 {
					now = now.Add(time.Duration(rng.IntN(3000)) * time.Microsecond)
				}
				got, want := w.AllowAt(now), ref.allowAt(now)
				if got != want {
					t.Fatalf("run %d step %d (limit %d): AllowAt(base+%v)\n got %+v\nwant %+v",
						run, step, ref.limit, now.Sub(base), got, want)
				}
			}
			if len(w.ring) > max(w.limit, initialRing) && w.limit > 0 && len(w.ring) > 2*w.n {
				t.Fatalf("run %d step %d: ring of %d for limit %d holding %d", run, step, len(w.ring), w.limit, w.n)
			}
		}
		if len(w.ring) > initialRing {
			grew++
		}
	}
	if grew < 20 {
		t.Fatalf("weak test: the ring grew past %d in only %d runs", initialRing, grew)
	}
}

// A key_id with a large limit and little traffic keeps a small ring.
func TestRingGrowsWithUse(t *testing.T) {
	w := NewWindow(10_000_000, time.Minute)
	for i := range 10 {
		w.AllowAt(base.Add(time.Duration(i) * time.Second))
	}
	if len(w.ring) != initialRing {
		t.Fatalf("ring of %d entries after 10 admissions, want %d", len(w.ring), initialRing)
	}
	for range 1000 {
		w.AllowAt(base.Add(10 * time.Second))
	}
	if len(w.ring) != 1024 {
		t.Fatalf("ring of %d entries holding %d admissions, want 1024", len(w.ring), w.n)
	}
	if r := w.AllowAt(base.Add(10 * time.Second)); !r.Allowed || r.Remaining != 10_000_000-1011 {
		t.Fatalf("after growth: %+v", r)
	}
}
