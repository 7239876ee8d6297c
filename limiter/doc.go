// Package limiter is authgate's rate limiter: an exact sliding window per
// key_id, kept in this process (Window); package limiter/redis keeps it in
// Redis instead, shared by several gateways, with the same semantics and
// Result.
//
// Window keeps one key_id's window in this process, as a ring buffer of
// the key's last N admission times. The gateway holds one Window per
// key_id and calls Window.Allow for every authenticated request; the
// Result it returns carries everything the x-ratelimit-* and Retry-After
// headers need.
package limiter
