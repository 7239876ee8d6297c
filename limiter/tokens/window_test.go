package tokens

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// base is the fixed instant the step tables count from: a whole second of
// the wall clock with no monotonic reading, so the 100 ms buckets of a 60 s
// window start at base, base+100ms, ... (see epoch).
var base = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// late is how much later than exact a bucket of a 60 s window leaves: an
// admission at the first instant of a 100 ms bucket leaves 100ms-1ns after
// its own admission time + 60 s.
const late = 100*time.Millisecond - 1

// reserver returns f(offset, n, want), which calls w.Reserve(base+offset, n),
// checks the Result against want (Requested and Remaining filled in from n
// and Used) and returns the Reservation.
func reserver(t *testing.T, w *Window) func(time.Duration, int64, Result) Reservation {
	return func(offset time.Duration, n int64, want Result) Reservation {
		t.Helper()
		want.Scope, want.Limit, want.Requested = ScopeTPM, w.Limit(), n
		want.Remaining = max(want.Limit-want.Used, 0)
		res, got := w.Reserve(base.Add(offset), n)
		if got != want {
			t.Fatalf("Reserve(base+%v, %d)\n got %+v\nwant %+v", offset, n, got, want)
		}
		if (res.Tokens() == n && res.w == &w.window) != got.Allowed() {
			t.Fatalf("Reserve(base+%v, %d) returned Reservation %+v with %v", offset, n, res, got.Kind)
		}
		return res
	}
}

func TestWindowSteps(t *testing.T) {
	w := NewWindow(1000, time.Minute)
	f := reserver(t, w)
	minute := time.Minute + late
	a := f(0, 400, Result{Kind: Admitted, Used: 400, Reset: minute})
	b := f(10*time.Second, 600, Result{Kind: Admitted, Used: 1000, Reset: minute}) // exactly at the limit
	// One more token is refused until a's 400 leave, at 60 s + late.
	f(10*time.Second, 1, Result{Kind: Limited, Used: 1000, Reset: minute, RetryAfter: 50*time.Second + late})
	f(10*time.Second, 1001, Result{Kind: TooLarge, Used: 1000, Reset: minute}) // never fits: no retry time
	// 401 need b's bucket to leave too.
	f(20*time.Second, 401, Result{Kind: Limited, Used: 1000, Reset: 50*time.Second + late, RetryAfter: 50*time.Second + late})
	// a uses 100 of its 400: 300 free at once, 301 do not fit.
	a.Commit(100)
	f(20*time.Second, 301, Result{Kind: Limited, Used: 700, Reset: 50*time.Second + late, RetryAfter: 40*time.Second + late})
	c := f(20*time.Second, 300, Result{Kind: Admitted, Used: 1000, Reset: minute})
	// b uses 700 of its 600: the window is over its limit by the
	// estimation error.
	b.Commit(700)
	if got := w.EstimationError(); got != 100 {
		t.Fatalf("EstimationError = %d, want 100", got)
	}
	f(30*time.Second, 0, Result{Kind: Limited, Used: 1100, Reset: 50*time.Second + late, RetryAfter: 30*time.Second + late})
	// a's bucket leaves at 60 s + late, not a nanosecond before.
	f(60*time.Second+late-1, 0, Result{Kind: Limited, Used: 1100, Reset: 20*time.Second + 1, RetryAfter: 1})
	f(60*time.Second+late, 0, Result{Kind: Admitted, Used: 1000, Reset: 20 * time.Second})
	c.Cancel()
	// Admitted at its bucket's last instant, a request leaves exactly.
	f(60*time.Second+late, 300, Result{Kind: Admitted, Used: 1000, Reset: time.Minute})
	// A long pause empties the window; the ring wraps around correctly.
	f(time.Hour, 1000, Result{Kind: Admitted, Used: 1000, Reset: minute})
	f(time.Hour+time.Minute+late, 1000, Result{Kind: Admitted, Used: 1000, Reset: time.Minute})
	if got := w.InFlight(); got != 4 {
		t.Fatalf("InFlight = %d, want 4", got)
	}
}

// TestWindowRetryExact: a refused request is admitted exactly at
// now+RetryAfter and refused a nanosecond before, and RetryAfter is late
// by less than one bucket: by width-1 ns for an admission at a bucket's
// first instant, by nothing for one at its last.
func TestWindowRetryExact(t *testing.T) {
	f := func(admitted, refused time.Duration, wantLate time.Duration) {
		t.Helper()
		w := NewWindow(100, time.Minute)
		if _, r := w.Reserve(base.Add(admitted), 100); !r.Allowed() {
			t.Fatalf("first request refused: %+v", r)
		}
		_, r := w.Reserve(base.Add(refused), 1)
		exact := admitted + time.Minute - refused
		if r.Kind != Limited || r.RetryAfter != exact+wantLate {
			t.Fatalf("admitted at %v, refused at %v: %+v, want Limited with RetryAfter %v", admitted, refused, r, exact+wantLate)
		}
		retry := base.Add(refused + r.RetryAfter)
		if _, r := w.Reserve(retry.Add(-1), 1); r.Allowed() || r.RetryAfter != 1 {
			t.Fatalf("admitted at %v: a nanosecond before the retry time: %+v", admitted, r)
		}
		if _, r := w.Reserve(retry, 1); !r.Allowed() {
			t.Fatalf("admitted at %v: at the retry time: %+v", admitted, r)
		}
	}
	f(0, 0, late)                                // the bucket's first instant
	f(100*time.Millisecond-1, 30*time.Second, 0) // its last: exact
	f(50*time.Millisecond, 59*time.Second, 50*time.Millisecond-1)
	f(7*time.Second+time.Millisecond, 7*time.Second+time.Millisecond, 99*time.Millisecond-1)
	f(-100_000*time.Hour-30*time.Millisecond, -100_000*time.Hour, 30*time.Millisecond-1) // before epoch
}

func TestWindowCommitLessAndMore(t *testing.T) {
	w := NewWindow(1000, time.Minute)
	f := func(offset time.Duration, n int64, want bool) Reservation {
		t.Helper()
		res, r := w.Reserve(base.Add(offset), n)
		if r.Allowed() != want {
			t.Fatalf("Reserve(base+%v, %d) = %+v, want allowed %v", offset, n, r, want)
		}
		return res
	}
	usage := func(wantUsed, wantReserved int64) {
		t.Helper()
		if u, r := w.UsageAt(base.Add(time.Second)); u != wantUsed || r != wantReserved {
			t.Fatalf("UsageAt = %d used, %d reserved, want %d, %d", u, r, wantUsed, wantReserved)
		}
	}
	a := f(0, 600, true)
	b := f(0, 400, true)
	f(0, 1, false)
	usage(0, 1000)
	a.Commit(200) // less: 400 free at once
	usage(200, 400)
	f(0, 401, false)
	c := f(0, 400, true)
	b.Commit(900) // more: over the limit by the error
	usage(1100, 400)
	c.Commit(400) // exactly the reservation: no error
	usage(1500, 0)
	if got := w.EstimationError(); got != 500 {
		t.Fatalf("EstimationError = %d, want 500", got)
	}
	// Commit and Cancel again: no-ops.
	a.Commit(1000)
	b.Cancel()
	usage(1500, 0)
	if got := w.InFlight(); got != 0 {
		t.Fatalf("InFlight = %d, want 0", got)
	}
	// A negative actual counts as 0.
	d := f(2*time.Minute, 10, true)
	d.Commit(-5)
	if u, r := w.UsageAt(base.Add(2 * time.Minute)); u != 0 || r != 0 {
		t.Fatalf("after Commit(-5): %d used, %d reserved", u, r)
	}
}

// TestWindowCommitZeroReservation: a request that reserved nothing and
// consumed tokens counts them in its bucket, Reset included.
func TestWindowCommitZeroReservation(t *testing.T) {
	w := NewWindow(100, time.Minute)
	f := reserver(t, w)
	f(0, 10, Result{Kind: Admitted, Used: 10, Reset: time.Minute + late})
	zero := f(30*time.Second, 0, Result{Kind: Admitted, Used: 10, Reset: 30*time.Second + late})
	zero.Commit(50)
	f(30*time.Second, 41, Result{Kind: Limited, Used: 60, Reset: time.Minute + late, RetryAfter: 30*time.Second + late})
	f(60*time.Second+late, 0, Result{Kind: Admitted, Used: 50, Reset: 30 * time.Second})
}

func TestWindowCancel(t *testing.T) {
	w := NewWindow(100, time.Minute)
	res, _ := w.Reserve(base, 100)
	if _, r := w.Reserve(base, 1); r.Allowed() {
		t.Fatal("window not full")
	}
	res.Cancel()
	res.Cancel()
	res.Commit(50)
	if n := w.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d after Cancel, want 0", n)
	}
	// The 100 are free at once, and only once.
	if _, r := w.Reserve(base, 100); !r.Allowed() {
		t.Fatalf("refused after Cancel: %+v", r)
	}
	if _, r := w.Reserve(base, 1); r.Allowed() {
		t.Fatal("a second Cancel freed the tokens again")
	}
	var zero Reservation
	zero.Cancel()
	zero.Commit(10)
}

// TestWindowCommitAfterBucketLeft: a commit after its bucket left the
// window changes nothing in the window but ends the reservation.
func TestWindowCommitAfterBucketLeft(t *testing.T) {
	w := NewWindow(100, time.Minute)
	old, _ := w.Reserve(base, 60)
	w.Reserve(base.Add(61*time.Second), 90) // a's bucket has left
	old.Commit(80)
	if u, r := w.UsageAt(base.Add(61 * time.Second)); u != 0 || r != 90 {
		t.Fatalf("UsageAt = %d used, %d reserved, want 0, 90", u, r)
	}
	if w.InFlight() != 1 || w.EstimationError() != 20 {
		t.Fatalf("InFlight %d, EstimationError %d; want 1, 20", w.InFlight(), w.EstimationError())
	}
	if _, r := w.Reserve(base.Add(61*time.Second), 10); !r.Allowed() {
		t.Fatalf("refused: %+v", r)
	}
}

func TestWindowBackwardsClock(t *testing.T) {
	w := NewWindow(100, time.Minute)
	f := reserver(t, w)
	minute := time.Minute + late
	f(100*time.Second, 60, Result{Kind: Admitted, Used: 60, Reset: minute})
	// 60 s back: treated as 100 s, and recorded so.
	f(40*time.Second, 40, Result{Kind: Admitted, Used: 100, Reset: minute})
	f(-time.Hour, 1, Result{Kind: Limited, Used: 100, Reset: minute, RetryAfter: minute})
	// A refusal at a later instant moves the window's clock too: the
	// tokens at 100 s stay out after it, whatever the next call's clock.
	f(160*time.Second+late, 1, Result{Kind: Admitted, Used: 1, Reset: time.Minute})
	f(100*time.Second, 100, Result{Kind: Limited, Used: 1, Reset: time.Minute, RetryAfter: time.Minute})
	// UsageAt with an earlier clock reads the window at the latest instant.
	if u, r := w.UsageAt(base); u != 0 || r != 1 {
		t.Fatalf("UsageAt(base) = %d, %d, want 0, 1", u, r)
	}
}

// TestWindowUsageAtDoesNotForget: UsageAt at a later instant must not
// expire buckets, or a later Reserve with an earlier clock would admit
// over the limit.
func TestWindowUsageAtDoesNotForget(t *testing.T) {
	w := NewWindow(100, time.Minute)
	w.Reserve(base, 100)
	if u, r := w.UsageAt(base.Add(time.Hour)); u != 0 || r != 0 {
		t.Fatalf("UsageAt(base+1h) = %d, %d, want 0, 0", u, r)
	}
	if _, r := w.Reserve(base.Add(30*time.Second), 1); r.Allowed() {
		t.Fatal("admitted over the limit after UsageAt")
	}
	if u, r := w.UsageAt(base.Add(30 * time.Second)); u != 0 || r != 100 {
		t.Fatalf("UsageAt(base+30s) = %d, %d, want 0, 100", u, r)
	}
}

func TestWindowSetLimit(t *testing.T) {
	w := NewWindow(100, time.Minute)
	f := reserver(t, w)
	minute := time.Minute + late
	a := f(0, 80, Result{Kind: Admitted, Used: 80, Reset: minute})
	w.SetLimit(50) // lowered below the tokens counted: refused until they leave
	f(time.Second, 1, Result{Kind: Limited, Used: 80, Reset: 59*time.Second + late, RetryAfter: 59*time.Second + late})
	f(time.Second, 60, Result{Kind: TooLarge, Used: 80, Reset: 59*time.Second + late})
	w.SetLimit(0) // off: everything admitted, nothing recorded
	if res, r := w.Reserve(base.Add(time.Second), 1e9); r != (Result{Kind: Admitted, Scope: ScopeTPM, Requested: 1e9}) || res != (Reservation{}) {
		t.Fatalf("off: %+v, %+v", r, res)
	}
	a.Commit(90) // a reservation taken before still commits
	w.SetLimit(100)
	f(2*time.Second, 10, Result{Kind: Admitted, Used: 100, Reset: minute})
	f(2*time.Second, 1, Result{Kind: Limited, Used: 100, Reset: minute, RetryAfter: 58*time.Second + late})
}

func TestWindowDefaults(t *testing.T) {
	f := func(limit int64, period time.Duration, wantLimit int64, wantPeriod time.Duration) {
		t.Helper()
		w := NewWindow(limit, period)
		if w.Limit() != wantLimit || w.period != int64(wantPeriod) {
			t.Fatalf("NewWindow(%d, %v): limit %d, period %v", limit, period, w.Limit(), time.Duration(w.period))
		}
		for i := range 3 {
			if _, r := w.Reserve(base.Add(time.Duration(i)), 5); !r.Allowed() {
				t.Fatalf("NewWindow(%d, %v): request %d refused: %+v", limit, period, i, r)
			}
		}
		if wantLimit == 0 && w.ring != nil {
			t.Fatal("a Window that is off allocated its ring")
		}
	}
	f(0, time.Minute, 0, time.Minute)
	f(-1, 0, 0, time.Minute)
	f(15, -time.Second, 15, time.Minute)
	f(15, time.Microsecond, 15, time.Microsecond) // buckets of 1 ns: exact
}

// TestWindowNanosecondBuckets: with a period under 600 ns the buckets are
// 1 ns wide and the window is exact.
func TestWindowNanosecondBuckets(t *testing.T) {
	w := NewWindow(10, 100)
	f := reserver(t, w)
	f(0, 10, Result{Kind: Admitted, Used: 10, Reset: 100})
	f(99, 1, Result{Kind: Limited, Used: 10, Reset: 1, RetryAfter: 1})
	f(100, 10, Result{Kind: Admitted, Used: 10, Reset: 100})
}

// refWindow is the reference the Window is checked against: every
// admission kept on its own in a slice, each leaving the window when its
// bucket's last instant does, as Window's do, and every answer computed
// from scratch.
type refWindow struct {
	limit, period, width, last int64
	entries                    []refEntry
}

type refEntry struct {
	at, leaves, tokens int64
}

func newRefWindow(limit int64, period time.Duration) *refWindow {
	return &refWindow{limit: limit, period: int64(period), width: int64(period) / bucketsPerPeriod, last: noLast}
}

// counted returns the tokens in the window at t.
func (r *refWindow) counted(t int64) int64 {
	sum := int64(0)
	for _, e := range r.entries {
		if e.leaves > t {
			sum += e.tokens
		}
	}
	return sum
}

// reserve returns the Result of a request of n tokens at t, and the index
// of its entry (-1 if refused); exact is the retry time as if every
// admission left the window at its own time + period.
func (r *refWindow) reserve(t, n int64) (res Result, entry int, exact time.Duration) {
	t = max(t, r.last)
	r.last = t
	counted := r.counted(t)
	res = Result{Scope: ScopeTPM, Limit: r.limit, Requested: n, Used: counted}
	entry = -1
	switch {
	case n > r.limit:
		res.Kind = TooLarge
	case counted+n > r.limit:
		res.Kind = Limited
		need, freed := counted+n-r.limit, int64(0)
		for _, e := range r.entries { // in admission order, which is bucket order
			if e.leaves > t {
				if freed += e.tokens; freed >= need {
					res.RetryAfter = time.Duration(e.leaves - t)
					exact = time.Duration(e.at + r.period - t)
					break
				}
			}
		}
	default:
		k := floorDiv(t, r.width)
		r.entries = append(r.entries, refEntry{at: t, leaves: (k+1)*r.width - 1 + r.period, tokens: n})
		entry = len(r.entries) - 1
		res.Used += n
	}
	res.Remaining = max(res.Limit-res.Used, 0)
	for _, e := range r.entries {
		if e.leaves > t && e.tokens > 0 {
			res.Reset = max(res.Reset, time.Duration(e.leaves-t))
		}
	}
	return res, entry, exact
}

// TestWindowReference runs random requests, commits and clocks (forwards
// by little and by much, exactly onto bucket edges, sometimes backwards)
// against the Window and the reference alike, comparing every answer.
func TestWindowReference(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 42))
		const limit, width = 1000, int64(100 * time.Millisecond)
		w, ref := NewWindow(limit, time.Minute), newRefWindow(limit, time.Minute)
		type flight struct {
			res   Reservation
			entry int
		}
		var inflight []flight
		var excess int64
		now := int64(rng.IntN(1e6)) * width
		admitted, refused := 0, 0
		for step := range 3000 {
			switch rng.IntN(10) {
			case 0:
				now += rng.Int64N(int64(70 * time.Second))
			case 1:
				now = (now/width+1)*width - rng.Int64N(2) // a bucket's last or first instant
			case 2:
				now -= rng.Int64N(int64(time.Second)) // backwards
			default:
				now += rng.Int64N(int64(300 * time.Millisecond))
			}
			if len(inflight) > 0 && rng.IntN(2) == 0 {
				i := rng.IntN(len(inflight))
				f := inflight[i]
				actual := rng.Int64N(2*f.res.Tokens() + 1)
				excess += max(actual-f.res.Tokens(), 0)
				f.res.Commit(actual)
				ref.entries[f.entry].tokens = actual
				inflight = slices.Delete(inflight, i, i+1)
				continue
			}
			n := rng.Int64N(limit / 3)
			switch rng.IntN(50) {
			case 0:
				n = limit + 1 + rng.Int64N(10)
			case 1, 2:
				n = 0 // committed with more, it puts tokens after the newest bucket
			}
			instant := epoch.Add(time.Duration(now))
			res, got := w.Reserve(instant, n)
			want, entry, exact := ref.reserve(now, n)
			if got != want {
				t.Fatalf("seed %d step %d: Reserve(%d, %d)\n got %+v\nwant %+v", seed, step, now, n, got, want)
			}
			if got.Kind == Limited && (got.RetryAfter < exact || got.RetryAfter-exact >= time.Duration(width)) {
				t.Fatalf("seed %d step %d: RetryAfter %v, exact %v: more than a bucket late", seed, step, got.RetryAfter, exact)
			}
			if got.Allowed() {
				admitted++
				inflight = append(inflight, flight{res, entry})
			} else {
				refused++
			}
			if u, r := w.UsageAt(instant); u+r != ref.counted(max(now, ref.last)) {
				t.Fatalf("seed %d step %d: UsageAt = %d+%d, want %d", seed, step, u, r, ref.counted(now))
			}
		}
		if w.InFlight() != int64(len(inflight)) || w.EstimationError() != excess {
			t.Fatalf("seed %d: InFlight %d, EstimationError %d; want %d, %d", seed, w.InFlight(), w.EstimationError(), len(inflight), excess)
		}
		if admitted < 100 || refused < 100 {
			t.Fatalf("seed %d: %d admitted, %d refused: the test does not exercise both", seed, admitted, refused)
		}
	}
}
