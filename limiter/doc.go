// Package limiter is authgate's in-process rate limiter: an exact sliding
// window per key_id, kept as a ring buffer of the key's last N admission
// times (SPEC section 5.2).
//
// The gateway holds one Window per key_id and calls Window.Allow for every
// authenticated request; the Result it returns carries everything the
// x-ratelimit-* and Retry-After headers need.
package limiter
