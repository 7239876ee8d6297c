//go:build !race

package tokens

import (
	"testing"
	"time"
)

func TestAllocs(t *testing.T) {
	f := func(name string, want float64, fn func()) {
		t.Helper()
		if got := testing.AllocsPerRun(1000, fn); got != want {
			t.Fatalf("%s: %v allocations per run, want %v", name, got, want)
		}
	}

	// A Limiter never used costs the struct alone: the ring is lazy.
	var sink *Limiter
	f("NewLimiter", 1, func() { sink = NewLimiter(Limits{TPM: 1000, TPD: 1000, Concurrency: 1}, 0) })
	if sink.win.ring != nil {
		t.Fatal("NewLimiter allocated the ring")
	}

	// After the first request, admitting and finishing do not allocate,
	// admitted or refused.
	r := NewRegistry(Config{})
	lim := Limits{TPM: 1e9, TPD: 1e12, Concurrency: 10}
	l := r.Get("alice", lim)
	now := base
	l.Admit(now, 1)
	f("Registry.Get", 0, func() { r.Get("alice", lim) })
	f("Admit+Finish", 0, func() {
		now = now.Add(time.Millisecond)
		a, res := l.Admit(now, 1000)
		if !res.Allowed() {
			t.Fatalf("refused: %+v", res)
		}
		a.Finish(900)
	})
	full := NewLimiter(Limits{TPM: 10, TPD: 10, Concurrency: 1}, 0)
	full.Admit(now, 10)
	f("Admit, refused", 0, func() {
		if _, res := full.Admit(now, 1); res.Allowed() {
			t.Fatal("admitted")
		}
	})
	f("Limiter.UsageAt", 0, func() { l.UsageAt(now) })

	w, d, c := NewWindow(1e9, 0), NewDaily(1e12), NewConcurrency(10)
	w.Reserve(now, 1)
	f("Window.Reserve+Commit", 0, func() {
		now = now.Add(time.Millisecond)
		res, _ := w.Reserve(now, 10)
		res.Commit(5)
	})
	f("Daily.Reserve+Cancel", 0, func() {
		res, _ := d.Reserve(now, 10)
		res.Cancel()
	})
	f("Concurrency.Acquire+Release", 0, func() {
		s, _ := c.Acquire()
		s.Release()
	})

	_, refusal := full.Admit(now, 1)
	buf := make([]byte, 0, 256)
	f("AppendMessage", 0, func() { buf = AppendMessage(buf[:0], "alice", refusal) })
}
