//go:build !race

package limiter

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

	// A Window never used costs the struct alone: the ring is lazy.
	var sink *Window
	f("NewWindow", 1, func() { sink = NewWindow(1000, time.Minute) })
	if sink.ring != nil {
		t.Fatalf("NewWindow allocated the ring")
	}

	// The ring is allocated by the first call and doubles a few times as the
	// window fills (64 → 1000 admissions): amortised, no allocation.
	never := NewWindow(1000, time.Second)
	now := base
	var refused int
	f("AllowAt, admitted", 0, func() {
		now = now.Add(time.Millisecond)
		if !never.AllowAt(now).Allowed {
			refused++
		}
	})
	if refused != 0 {
		t.Fatalf("AllowAt refused %d requests of a window that is never full", refused)
	}

	full := NewWindow(10, time.Minute)
	var admitted int
	f("AllowAt, refused", 0, func() {
		if full.AllowAt(base).Allowed {
			admitted++
		}
	})
	if admitted != 10 {
		t.Fatalf("AllowAt admitted %d requests at one instant, want 10", admitted)
	}

	f("Allow", 0, func() { full.Allow() })
	f("CountAt", 0, func() { full.CountAt(base) })
	f("Limit", 0, func() { full.Limit() })
}
