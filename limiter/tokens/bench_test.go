package tokens

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAdmit measures Admit and Finish of a key_id with all three
// limits on, at fixed instants.
func BenchmarkAdmit(b *testing.B) {
	// Never full: a request a millisecond, each admitted and finished.
	b.Run("admitted", func(b *testing.B) {
		b.ReportAllocs()
		l := NewLimiter(Limits{TPM: 1e9, TPD: 1e15, Concurrency: 10}, time.Minute)
		now := base
		for b.Loop() {
			now = now.Add(time.Millisecond)
			a, _ := l.Admit(now, 1000)
			a.Finish(900)
		}
	})
	// Refused by TPM, the retry time found in the first bucket.
	b.Run("refused", func(b *testing.B) {
		b.ReportAllocs()
		l := NewLimiter(Limits{TPM: 1000, TPD: 1e15, Concurrency: 10}, time.Minute)
		l.Admit(base, 1000)
		for b.Loop() {
			l.Admit(base, 1)
		}
	})
	// Refused by TPM, the retry time found in the last of 600 buckets:
	// the worst case, the whole ring walked.
	b.Run("refused-worst", func(b *testing.B) {
		b.ReportAllocs()
		l := NewLimiter(Limits{TPM: 600, TPD: 1e15, Concurrency: 10}, time.Minute)
		now := base
		for range 600 {
			a, _ := l.Admit(now, 1)
			a.Finish(1)
			now = now.Add(100 * time.Millisecond)
		}
		now = now.Add(-100 * time.Millisecond)
		for b.Loop() {
			l.Admit(now, 600)
		}
	})
}

// BenchmarkAdmitParallel measures the production call, Admit at
// time.Now() then Finish, on one key_id shared by every goroutine and on a
// key_id per goroutine.
func BenchmarkAdmitParallel(b *testing.B) {
	lim := Limits{TPM: 1e12, TPD: 1e15, Concurrency: 1e6}
	b.Run("shared-key", func(b *testing.B) {
		b.ReportAllocs()
		l := NewLimiter(lim, time.Minute)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				a, _ := l.Admit(time.Now(), 1000)
				a.Finish(900)
			}
		})
	})
	b.Run("key-per-goroutine", func(b *testing.B) {
		b.ReportAllocs()
		r := NewRegistry(Config{})
		var id atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			keyID := "key_" + strconv.FormatInt(id.Add(1), 10)
			for pb.Next() {
				a, _ := r.Get(keyID, lim).Admit(time.Now(), 1000)
				a.Finish(900)
			}
		})
	})
}
