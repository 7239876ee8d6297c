// Package server is authgate's gateway: it wires authentication (package
// auth), the per-key sliding-window limiter (package limiter) and the access
// log (package logsink) into one fasthttp request path, and proxies admitted
// requests to the upstream inference servers.
//
// Each request goes authenticate → rate-limit → proxy → log. Errors are
// answered with precomputed OpenAI-shaped JSON bodies; the decision path
// (header parse, key lookup, built-in limiter, error response) does not
// allocate. With limits in Redis (a Config.Limiter from package
// limiter/redis) each decision is a round trip whose client allocates.
//
// Build a Gateway with New, serve its Handler (or call Serve with a listener),
// and call Shutdown to drain requests and flush the access log.
//
// # Embedding
//
// The same request path fronts a handler of another Go server in place of
// the proxy: Gateway.Wrap for a fasthttp.RequestHandler, Gateway.WrapHTTP
// for a net/http Handler (Config.Upstreams may then be empty). Inside the
// handler, KeyID and KeySettings (fasthttp) or KeyIDFromContext and
// KeySettingsFromContext (net/http) give the authenticated key_id. The key
// source is Config.KeysFile, an in-memory Config.Keys or any
// Config.KeySource; the limiter is the built-in one, or any
// Config.Limiter (package limiter/redis shares one through Redis), with
// Config.LimiterFailureMode for when it cannot decide;
// the access log is Config.AccessLog or any Config.AccessLogger.
// Gateway.Reload rereads the keys, Gateway.SetKeys swaps in a new in-memory
// set; Gateway.Close stops every goroutine and flushes the log. There is no
// package state: gateways in one process are independent, metrics included.
package server
