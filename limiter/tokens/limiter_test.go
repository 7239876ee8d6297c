package tokens

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// usage returns f(at, want), which checks l.UsageAt(at).
func usage(t *testing.T, l *Limiter) func(time.Time, Usage) {
	return func(at time.Time, want Usage) {
		t.Helper()
		want.Limits = l.Limits()
		if got := l.UsageAt(at); got != want {
			t.Fatalf("UsageAt(%v)\n got %+v\nwant %+v", at, got, want)
		}
	}
}

// TestLimiterAllOrNone: a request refused by one limit takes nothing from
// the others.
func TestLimiterAllOrNone(t *testing.T) {
	l := NewLimiter(Limits{TPM: 100, TPD: 150, Concurrency: 2}, time.Minute)
	check := usage(t, l)
	admit := func(at time.Time, n int64, wantKind Kind, wantScope Scope) Admission {
		t.Helper()
		a, r := l.Admit(at, n)
		if r.Kind != wantKind || r.Scope != wantScope || (a.l != nil) != r.Allowed() {
			t.Fatalf("Admit(%v, %d) = %+v, want %v by %v", at, n, r, wantKind, wantScope)
		}
		return a
	}
	t0 := midnight.Add(time.Hour)
	first := admit(t0, 100, Admitted, ScopeTPM)
	admit(t0, 1, Limited, ScopeTPM)
	check(t0, Usage{WindowReserved: 100, DayReserved: 100, InFlight: 1})

	t1 := t0.Add(61 * time.Second)
	admit(t1, 50, Admitted, ScopeTPM)
	admit(t1, 1, Limited, ScopeTPD) // fits the window, not the day
	check(t1, Usage{WindowReserved: 50, DayReserved: 150, InFlight: 2})

	first.Finish(10)
	third := admit(t1, 1, Admitted, ScopeTPM)
	admit(t1, 1, ConcurrencyExceeded, ScopeConcurrency) // fits both token limits
	check(t1, Usage{WindowReserved: 51, DayUsed: 10, DayReserved: 51, InFlight: 2})
	third.Finish(3)
	check(t1, Usage{WindowUsed: 3, WindowReserved: 50, DayUsed: 13, DayReserved: 50, InFlight: 1, EstimationError: 2})
	admit(t1, 200, TooLarge, ScopeTPM)
}

// TestLimiterPick: the Result Admit reports when several limits refuse,
// and when it admits.
func TestLimiterPick(t *testing.T) {
	adm := func(s Scope, limit int64) Result { return Result{Kind: Admitted, Scope: s, Limit: limit} }
	lim := func(s Scope, retry time.Duration) Result {
		return Result{Kind: Limited, Scope: s, Limit: 1, RetryAfter: retry}
	}
	large := func(s Scope) Result { return Result{Kind: TooLarge, Scope: s, Limit: 1} }
	busy := Result{Kind: ConcurrencyExceeded, Scope: ScopeConcurrency, Limit: 1}
	f := func(rc, rw, rd Result, want Result) {
		t.Helper()
		if got := pick(rc, rw, rd); got != want {
			t.Fatalf("pick(%+v, %+v, %+v)\n got %+v\nwant %+v", rc, rw, rd, got, want)
		}
	}
	f(busy, large(ScopeTPM), large(ScopeTPD), large(ScopeTPM))
	f(busy, lim(ScopeTPM, time.Hour), large(ScopeTPD), large(ScopeTPD))
	f(busy, lim(ScopeTPM, time.Second), lim(ScopeTPD, time.Hour), lim(ScopeTPD, time.Hour))
	f(busy, lim(ScopeTPM, time.Hour), lim(ScopeTPD, time.Second), lim(ScopeTPM, time.Hour))
	f(busy, lim(ScopeTPM, time.Hour), lim(ScopeTPD, time.Hour), lim(ScopeTPD, time.Hour))
	f(busy, lim(ScopeTPM, time.Second), adm(ScopeTPD, 9), lim(ScopeTPM, time.Second))
	f(busy, adm(ScopeTPM, 9), adm(ScopeTPD, 9), busy)
	f(adm(ScopeConcurrency, 9), adm(ScopeTPM, 9), adm(ScopeTPD, 9), adm(ScopeTPM, 9))
	f(adm(ScopeConcurrency, 9), adm(ScopeTPM, 0), adm(ScopeTPD, 9), adm(ScopeTPD, 9))
	f(adm(ScopeConcurrency, 9), adm(ScopeTPM, 0), adm(ScopeTPD, 0), adm(ScopeConcurrency, 9))
	f(adm(ScopeConcurrency, 0), adm(ScopeTPM, 0), adm(ScopeTPD, 0), Result{Kind: Admitted})
}

var errUpstream = errors.New("upstream failed")

// TestLimiterFinishOnEveryPath: a handler that finishes its Admission in a
// defer, and explicitly once the usage is known, releases everything on
// every way out: success, an error, a panic, a refusal.
func TestLimiterFinishOnEveryPath(t *testing.T) {
	serve := func(l *Limiter, at time.Time, path string) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = errors.New("panicked")
			}
		}()
		a, r := l.Admit(at, 100)
		if !r.Allowed() {
			return errors.New("refused")
		}
		// Usage unknown on an error path: charge the reservation.
		defer a.Finish(a.Tokens())
		switch path {
		case "ok":
			a.Finish(30)
			return nil
		case "error":
			return errUpstream
		case "panic":
			panic("upstream")
		}
		return nil
	}
	f := func(path string, wantUsed int64) {
		t.Helper()
		l := NewLimiter(Limits{TPM: 1000, TPD: 1000, Concurrency: 1}, time.Minute)
		at := midnight.Add(time.Hour)
		serve(l, at, path)
		usage(t, l)(at, Usage{WindowUsed: wantUsed, DayUsed: wantUsed})
		// The slot is free: the next request is admitted.
		if a, r := l.Admit(at, 1); !r.Allowed() {
			t.Fatalf("%s: the next request is refused: %+v", path, r)
		} else {
			a.Finish(1)
		}
	}
	f("ok", 30)
	f("error", 100)
	f("panic", 100)

	l := NewLimiter(Limits{TPM: 50, Concurrency: 1}, time.Minute)
	if err := serve(l, midnight, "ok"); err == nil {
		t.Fatal("a request over the limit was served")
	}
	usage(t, l)(midnight, Usage{})
	var zero Admission
	zero.Finish(10)
	if zero.Tokens() != 0 {
		t.Fatal("zero Admission has tokens")
	}
}

func TestLimiterOff(t *testing.T) {
	l := NewLimiter(Limits{}, 0)
	a, r := l.Admit(midnight, 1e12)
	if r != (Result{Kind: Admitted, Requested: 1e12}) {
		t.Fatalf("Admit with every limit off = %+v", r)
	}
	usage(t, l)(midnight, Usage{InFlight: 1})
	a.Finish(2e12)
	usage(t, l)(midnight, Usage{EstimationError: 1e12})
	if l.win.ring != nil {
		t.Fatal("a Limiter without TPM allocated a window ring")
	}
}

// TestLimiterSimultaneous: requests racing at one instant are admitted
// exactly up to each limit.
func TestLimiterSimultaneous(t *testing.T) {
	f := func(lim Limits, n int64, requests, want int) {
		t.Helper()
		l := NewLimiter(lim, time.Minute)
		start := make(chan struct{})
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range requests {
			wg.Go(func() {
				<-start
				if _, r := l.Admit(midnight, n); r.Allowed() {
					admitted.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if got := admitted.Load(); got != int64(want) {
			t.Fatalf("%+v, %d tokens each: %d of %d admitted, want %d", lim, n, got, requests, want)
		}
	}
	f(Limits{TPM: 1005}, 10, 150, 100)
	f(Limits{TPD: 999}, 10, 150, 99)
	f(Limits{Concurrency: 37}, 10, 150, 37)
	f(Limits{TPM: 1000, TPD: 500, Concurrency: 80}, 10, 150, 50)
}

// TestLimiterConcurrentInvariant: goroutines admit and finish at random,
// many at each instant, holding admissions across instants, while the
// clock moves on between instants: often to just under a minute after an
// earlier one, where its tokens are about to leave the window, and across
// a UTC midnight. Afterwards, for every window and every day, the tokens
// consumed by the requests admitted in it are at most the limit plus
// their estimation error, and the requests in flight never exceeded the
// concurrency limit.
func TestLimiterConcurrentInvariant(t *testing.T) {
	const tpm, tpd, conc = 40000, 450000, 12
	const workers, instants = 16, 400
	l := NewLimiter(Limits{TPM: tpm, TPD: tpd, Concurrency: conc}, time.Minute)

	type request struct {
		at        time.Time
		n, actual int64
	}
	type held struct {
		a Admission
		r *request
	}
	type worker struct {
		rng      *rand.Rand
		held     []held
		done     []*request
		outcomes [4][4]int // by Kind and Scope
	}
	ws := make([]*worker, workers)
	for i := range ws {
		ws[i] = &worker{rng: rand.New(rand.NewPCG(uint64(i), 7))}
	}
	var inflight, maxInflight atomic.Int64
	finish := func(w *worker, i int) {
		h := w.held[i]
		// Mostly the estimate, else less, or rarely a little more: the
		// estimation error is the invariant's slack.
		switch h.r.actual = h.r.n; w.rng.IntN(30) {
		case 0, 1, 2:
			h.r.actual = w.rng.Int64N(h.r.n)
		case 3:
			h.r.actual += w.rng.Int64N(h.r.n/10 + 1)
		}
		inflight.Add(-1)
		h.a.Finish(h.r.actual)
		w.done = append(w.done, h.r)
		w.held = slices.Delete(w.held, i, i+1)
	}

	clock := rand.New(rand.NewPCG(99, 99))
	now := midnight.Add(-3 * time.Minute)
	past := []time.Time{now}
	for range instants {
		switch clock.IntN(6) {
		case 0, 1: // less than a bucket before the oldest instant in the window leaves it
			i := len(past)
			for i > 0 && past[i-1].After(now.Add(-time.Minute)) {
				i--
			}
			if next := past[i].Add(time.Minute - time.Duration(clock.Int64N(int64(100*time.Millisecond)))); next.After(now) {
				now = next
			}
		case 2: // a bucket's last or first instant
			now = now.Truncate(100 * time.Millisecond).Add(100*time.Millisecond - time.Duration(clock.IntN(2)))
		default:
			now = now.Add(time.Duration(clock.Int64N(int64(2 * time.Second))))
		}
		past = append(past, now)
		at := now
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Go(func() {
				for range w.rng.IntN(8) {
					if len(w.held) > 0 && w.rng.IntN(2) == 0 {
						finish(w, w.rng.IntN(len(w.held)))
						continue
					}
					n := 1 + w.rng.Int64N(1500)
					if w.rng.IntN(100) == 0 {
						n = tpm + 1
					}
					a, r := l.Admit(at, n)
					w.outcomes[r.Kind][r.Scope]++
					if r.Allowed() {
						cur := inflight.Add(1)
						for m := maxInflight.Load(); cur > m && !maxInflight.CompareAndSwap(m, cur); m = maxInflight.Load() {
						}
						w.held = append(w.held, held{a, &request{at: at, n: n}})
					}
				}
			})
		}
		wg.Wait()
	}
	var all []*request
	var outcomes [4][4]int
	for _, w := range ws {
		for len(w.held) > 0 {
			finish(w, 0)
		}
		all = append(all, w.done...)
		for k := range w.outcomes {
			for s, n := range w.outcomes[k] {
				outcomes[k][s] += n
			}
		}
	}
	for _, o := range []struct {
		k Kind
		s Scope
	}{{Admitted, ScopeTPM}, {Limited, ScopeTPM}, {Limited, ScopeTPD}, {TooLarge, ScopeTPM}, {ConcurrencyExceeded, ScopeConcurrency}} {
		if n := outcomes[o.k][o.s]; n < 10 {
			t.Fatalf("only %d decisions %v by %v (%v): the test does not exercise every kind", n, o.k, o.s, outcomes)
		}
	}
	if m := maxInflight.Load(); m > conc {
		t.Fatalf("%d requests in flight, over the limit of %d", m, conc)
	}
	var excess int64
	for _, r := range all {
		excess += max(r.actual-r.n, 0)
	}
	if u := l.UsageAt(now); u.InFlight != 0 || u.WindowReserved != 0 || u.DayReserved != 0 || u.EstimationError != excess {
		t.Fatalf("after every Finish: %+v, want nothing in flight and EstimationError %d", u, excess)
	}

	// The windows ending at each admission instant are the fullest: slide
	// one over the requests in admission order.
	slices.SortFunc(all, func(a, b *request) int { return a.at.Compare(b.at) })
	var consumed, over int64
	first := 0
	for _, r := range all {
		consumed += r.actual
		over += max(r.actual-r.n, 0)
		for ; !all[first].at.After(r.at.Add(-time.Minute)); first++ {
			consumed -= all[first].actual
			over -= max(all[first].actual-all[first].n, 0)
		}
		if consumed > tpm+over {
			t.Fatalf("window ending %v: %d tokens consumed, over %d + the estimation error %d", r.at, consumed, tpm, over)
		}
	}
	days := map[time.Time][2]int64{}
	for _, r := range all {
		d := days[r.at.Truncate(24*time.Hour)]
		days[r.at.Truncate(24*time.Hour)] = [2]int64{d[0] + r.actual, d[1] + max(r.actual-r.n, 0)}
	}
	if len(days) != 2 {
		t.Fatalf("requests on %d days, want 2", len(days))
	}
	for day, d := range days {
		if d[0] > tpd+d[1] {
			t.Fatalf("day of %v: %d tokens consumed, over %d + the estimation error %d", day, d[0], tpd, d[1])
		}
	}
}

// TestZeroValues: the zero Window, Daily, Concurrency and Limiter are off,
// and SetLimit(s) turns them on with the default period.
func TestZeroValues(t *testing.T) {
	var w Window
	var d Daily
	var c Concurrency
	var l Limiter
	for range 2 {
		if _, r := w.Reserve(base, 1e9); !r.Allowed() || r.Limit != 0 {
			t.Fatalf("zero Window: %+v", r)
		}
		if _, r := d.Reserve(base, 1e9); !r.Allowed() || r.Limit != 0 {
			t.Fatalf("zero Daily: %+v", r)
		}
		if _, r := c.Acquire(); !r.Allowed() || r.Limit != 0 {
			t.Fatalf("zero Concurrency: %+v", r)
		}
		if _, r := l.Admit(base, 1e9); !r.Allowed() || r.Limit != 0 {
			t.Fatalf("zero Limiter: %+v", r)
		}
	}
	w.SetLimit(10)
	d.SetLimit(10)
	l.SetLimits(Limits{TPM: 10})
	if _, r := w.Reserve(base, 10); !r.Allowed() || r.Reset != time.Minute+late {
		t.Fatalf("zero Window, limit 10: %+v", r)
	}
	if _, r := d.Reserve(base, 11); r.Kind != TooLarge {
		t.Fatalf("zero Daily, limit 10: %+v", r)
	}
	if _, r := l.Admit(base, 10); !r.Allowed() || r.Reset != time.Minute+late {
		t.Fatalf("zero Limiter, limit 10: %+v", r)
	}
	if _, r := l.Admit(base.Add(time.Minute), 1); r.Kind != Limited || r.RetryAfter != late {
		t.Fatalf("zero Limiter, limit 10: %+v", r)
	}
}
