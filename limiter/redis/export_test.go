package redis

// UseCallerClock makes r's decisions use the now given to Allow instead
// of Redis's clock, so that a test steps through fixed instants. Call it
// before the first Allow.
func UseCallerClock(r *Limiter) { r.callerClock = true }
