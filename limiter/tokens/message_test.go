package tokens

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestMessage(t *testing.T) {
	f := func(r Result, wantMessage, wantCode string) {
		t.Helper()
		message, code := Message("key_1", r)
		if message != wantMessage || code != wantCode {
			t.Fatalf("Message(%+v)\n got %q, %q\nwant %q, %q", r, message, code, wantMessage, wantCode)
		}
	}
	f(Result{Kind: Limited, Scope: ScopeTPM, Limit: 1000, Used: 900, Requested: 200, RetryAfter: 1200 * time.Millisecond},
		"Rate limit reached for key_1 on tokens per min (TPM): Limit 1000, Used 900, Requested 200. Please try again in 1.2s.",
		"rate_limit_exceeded")
	f(Result{Kind: Limited, Scope: ScopeTPD, Limit: 100000, Used: 99999, Requested: 2, RetryAfter: 6*time.Hour + 12*time.Minute + 3500*time.Millisecond},
		"Rate limit reached for key_1 on tokens per day (TPD): Limit 100000, Used 99999, Requested 2. Please try again in 6h12m3.5s.",
		"rate_limit_exceeded")
	f(Result{Kind: TooLarge, Scope: ScopeTPM, Limit: 1000, Used: 10, Requested: 2000},
		"Request too large for key_1 on tokens per min (TPM): Limit 1000, Requested 2000. The input or output tokens must be reduced in order to run successfully.",
		"rate_limit_exceeded")
	f(Result{Kind: TooLarge, Scope: ScopeTPD, Limit: 5000, Requested: 5001},
		"Request too large for key_1 on tokens per day (TPD): Limit 5000, Requested 5001. The input or output tokens must be reduced in order to run successfully.",
		"rate_limit_exceeded")
	f(Result{Kind: ConcurrencyExceeded, Scope: ScopeConcurrency, Limit: 4, Used: 4, Requested: 1},
		"Too many concurrent requests for key_1: limit 4 requests in flight. Please try again once one has finished.",
		"concurrency_limit_exceeded")
	f(Result{Kind: Admitted, Scope: ScopeTPM, Limit: 1000, Used: 10, Requested: 10}, "", "")
}

// TestMessageOfARefusal: the retry time of a real refusal, 50.1s less a
// nanosecond, is shown rounded up to the millisecond.
func TestMessageOfARefusal(t *testing.T) {
	l := NewLimiter(Limits{TPM: 1000}, time.Minute)
	l.Admit(base, 1000)
	_, r := l.Admit(base.Add(10*time.Second), 1)
	want := "Rate limit reached for k on tokens per min (TPM): Limit 1000, Used 1000, Requested 1. Please try again in 50.1s."
	if got, _ := Message("k", r); got != want {
		t.Fatalf("Message = %q, want %q", got, want)
	}
}

func TestAppendRetry(t *testing.T) {
	f := func(d time.Duration, want string) {
		t.Helper()
		if got := string(appendRetry(nil, d)); got != want {
			t.Fatalf("appendRetry(%v) = %q, want %q", d, got, want)
		}
	}
	f(0, "0s")
	f(-time.Second, "0s")
	f(1, "1ms") // rounded up: waiting that long is enough
	f(250*time.Millisecond, "250ms")
	f(999*time.Millisecond+1, "1s")
	f(1200*time.Millisecond, "1.2s")
	f(1200*time.Millisecond+1, "1.201s")
	f(1050*time.Millisecond, "1.05s")
	f(6*time.Minute, "6m0s")
	f(time.Hour, "1h0m0s")
	f(25*time.Hour+1500*time.Millisecond, "25h0m1.5s")
	// Whole milliseconds are written as time.Duration writes them.
	rng := rand.New(rand.NewPCG(1, 1))
	for range 10000 {
		d := time.Duration(rng.Int64N(int64(48*time.Hour)/1e6)) * time.Millisecond
		if got := string(appendRetry(nil, d)); got != d.String() {
			t.Fatalf("appendRetry(%v) = %q", d, got)
		}
	}
}

func TestKindScopeString(t *testing.T) {
	if Limited.String() != "limited" || Kind(9).String() != "unknown" || ScopeTPD.String() != "tpd" || Scope(9).String() != "unknown" {
		t.Fatal("Kind or Scope names")
	}
}
