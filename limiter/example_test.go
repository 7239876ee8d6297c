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

// Replicas that share one Redis share each key_id's window. The gateway
// does this for REDIS_URL; here is the limiter on its own.
func ExampleNewRedis() {
	r, err := limiter.NewRedis(limiter.RedisConfig{
		URL:     "redis://:password@redis.internal:6379/0",
		Timeout: 50 * time.Millisecond,
	})
	if err != nil {
		panic(err) // a bad URL, or Redis refused the password
	}
	defer r.Close()

	res, err := r.Allow("alice", 100, time.Now())
	switch {
	case err != nil:
		fmt.Println("Redis cannot decide; apply a failure mode:", err)
	case res.Allowed:
		fmt.Println("admitted;", res.Remaining, "left")
	default:
		fmt.Println("refused; retry in", res.Reset)
	}
}
