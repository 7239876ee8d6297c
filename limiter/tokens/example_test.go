package tokens_test

import (
	"fmt"
	"time"

	"github.com/authgate/authgate/limiter/tokens"
)

// A request reserves its prompt estimate plus its maximum output at
// admission, and is reconciled with the usage the upstream reports.
func ExampleLimiter_Admit() {
	l := tokens.NewLimiter(tokens.Limits{TPM: 1000, TPD: 100_000, Concurrency: 4}, time.Minute)
	start := time.Date(2026, 11, 27, 6, 30, 0, 0, time.UTC)

	a, r := l.Admit(start, 800)
	fmt.Println(r.Kind, r.Remaining, r.Reset.Round(time.Millisecond))
	a.Finish(300) // the response's usage: 500 of the 800 free again

	_, r = l.Admit(start.Add(10*time.Second), 800)
	message, code := tokens.Message("key_1", r)
	fmt.Println(r.Kind, r.Remaining, r.RetryAfter.Round(time.Millisecond))
	fmt.Println(code, message)

	a, r = l.Admit(start.Add(10*time.Second), 700)
	defer a.Finish(a.Tokens()) // on every way out; a second Finish is a no-op
	fmt.Println(r.Kind, r.Remaining)
	// Output:
	// admitted 200 1m0.1s
	// limited 700 50.1s
	// rate_limit_exceeded Rate limit reached for key_1 on tokens per min (TPM): Limit 1000, Used 300, Requested 800. Please try again in 50.1s.
	// admitted 0
}
