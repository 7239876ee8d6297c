// Package limiter is authgate's rate limiter: an exact sliding window per
// key_id (SPEC section 5.2), kept in this process or shared through Redis.
//
// Window keeps one key_id's window in this process, as a ring buffer of
// the key's last N admission times. The gateway holds one Window per
// key_id and calls Window.Allow for every authenticated request; the
// Result it returns carries everything the x-ratelimit-* and Retry-After
// headers need.
//
// Redis keeps every key_id's window in a Redis sorted set instead, so that
// several gateway replicas share one limit (SPEC section 9). Its Allow has
// Window's semantics and Result, and returns an error (wrapping
// ErrRedisUnavailable) when Redis cannot decide, for the caller's failure
// mode to handle.
package limiter
