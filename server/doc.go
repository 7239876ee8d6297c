// Package server is authgate's gateway: it wires authentication (package
// auth), the per-key sliding-window limiter (package limiter) and the access
// log (package logsink) into one fasthttp request path, and proxies admitted
// requests to the upstream inference servers.
//
// Each request goes authenticate → rate-limit → proxy → log. Errors are
// answered with precomputed OpenAI-shaped JSON bodies; the decision path
// (header parse, key lookup, limiter, error response) does not allocate.
//
// Build a Gateway with New, serve its Handler (or call Serve with a listener),
// and call Shutdown to drain requests and flush the access log.
package server
