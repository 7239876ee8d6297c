package apierr

import (
	"testing"
	"time"
)

func TestAppendDuration(t *testing.T) {
	f := func(d time.Duration, want string) {
		t.Helper()
		if got := string(AppendDuration([]byte("x="), d)); got != "x="+want {
			t.Errorf("AppendDuration(%v) = %q, want %q", d, got, "x="+want)
		}
	}
	f(0, "0s")
	f(-time.Second, "0s")
	f(400*time.Microsecond, "0s")
	f(time.Millisecond, "1ms")
	f(999*time.Millisecond, "999ms")
	f(time.Second, "1s")
	f(59500*time.Millisecond, "59.5s")
	f(59999*time.Millisecond+600*time.Microsecond, "1m0s")
	f(6*time.Minute, "6m0s")
	f(61*time.Second+20*time.Millisecond, "1m1.02s")
	f(2*time.Hour+3*time.Second, "2h0m3s")

	// Every millisecond duration up to two minutes agrees with Duration.String.
	for ms := 1; ms <= 120_000; ms += 7 {
		d := time.Duration(ms) * time.Millisecond
		if got := string(AppendDuration(nil, d)); got != d.String() {
			t.Fatalf("AppendDuration(%v) = %q", d, got)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	f := func(d time.Duration, want int64) {
		t.Helper()
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
	f(0, 1)
	f(time.Millisecond, 1)
	f(time.Second, 1)
	f(time.Second+time.Nanosecond, 2)
	f(59500*time.Millisecond, 60)
	f(time.Minute, 60)
}
