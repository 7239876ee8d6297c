package redis_test

import (
	"fmt"
	"time"

	"github.com/authgate/authgate/limiter/redis"
)

// Replicas that share one Redis share each key_id's window. The gateway
// CLI does this for REDIS_URL and passes it to server.Config.Limiter;
// here is the limiter on its own.
func ExampleNew() {
	r, err := redis.New(redis.Config{
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
