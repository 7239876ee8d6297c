package limiter_test

import (
	"fmt"
	"time"

	"github.com/authgate/authgate/limiter"
)

func ExampleWindow_AllowAt() {
	w := limiter.NewWindow(2, time.Minute)
	start := time.Date(2026, 11, 27, 6, 30, 0, 0, time.UTC)
	for _, offset := range []time.Duration{0, 10 * time.Second, 30 * time.Second, time.Minute} {
		r := w.AllowAt(start.Add(offset))
		fmt.Printf("at %v: allowed=%v remaining=%d reset=%v\n", offset, r.Allowed, r.Remaining, r.Reset)
	}
	// Output:
	// at 0s: allowed=true remaining=1 reset=1m0s
	// at 10s: allowed=true remaining=0 reset=50s
	// at 30s: allowed=false remaining=0 reset=30s
	// at 1m0s: allowed=true remaining=0 reset=10s
}
