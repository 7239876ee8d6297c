// Package redis is authgate's rate limiter kept in Redis: each key_id's
// sliding window is a sorted set that every gateway using the same Redis
// shares, so that N replicas together admit at most a key_id's limit in
// any window. Its semantics and Result are limiter.Window's. A gateway
// uses it as its server.Config.Limiter; a gateway that does not link
// this package does not link the Redis client either.
package redis
