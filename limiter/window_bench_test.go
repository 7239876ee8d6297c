package limiter

import (
	"testing"
	"time"
)

func BenchmarkAllowAt(b *testing.B) {
	// Never full: one admission a millisecond against 1000 a second, so
	// every call admits one request and pops one.
	b.Run("never-full", func(b *testing.B) {
		b.ReportAllocs()
		w := NewWindow(1000, time.Second)
		now := base
		for b.Loop() {
			now = now.Add(time.Millisecond)
			w.AllowAt(now)
		}
		if !w.AllowAt(now.Add(time.Millisecond)).Allowed {
			b.Fatal("window was full")
		}
	})
	// Always full: one instant, every call after the first 100 refused.
	b.Run("always-full", func(b *testing.B) {
		b.ReportAllocs()
		w := NewWindow(100, time.Minute)
		for b.Loop() {
			w.AllowAt(base)
		}
		if w.AllowAt(base).Allowed {
			b.Fatal("window was not full")
		}
	})
}

// BenchmarkAllowParallel measures the production call, Allow with the real
// clock and the default 100 a minute, so past the first 100 calls each
// window is full and refuses.
func BenchmarkAllowParallel(b *testing.B) {
	b.Run("shared-key", func(b *testing.B) {
		b.ReportAllocs()
		w := NewWindow(100, time.Minute)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Allow()
			}
		})
	})
	b.Run("key-per-goroutine", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := NewWindow(100, time.Minute)
			for pb.Next() {
				w.Allow()
			}
		})
	})
}

// BenchmarkReference runs the seed's algorithm (reference, in
// window_test.go) on the scenarios of BenchmarkAllowAt, for comparison.
func BenchmarkReference(b *testing.B) {
	b.Run("never-full", func(b *testing.B) {
		b.ReportAllocs()
		r := newReference(1000, time.Second)
		now := base
		for b.Loop() {
			now = now.Add(time.Millisecond)
			r.allowAt(now)
		}
	})
	b.Run("always-full", func(b *testing.B) {
		b.ReportAllocs()
		r := newReference(100, time.Minute)
		for b.Loop() {
			r.allowAt(base)
		}
	})
}
