// Package bench holds authgate's in-process end-to-end benchmarks: a real
// fasthttp client sending real HTTP/1.1 requests to the gateway, which
// proxies them to a real upstream, each beside the baseline it is measured
// against (a bare fasthttp server, the upstream reached directly). It has no
// code of its own, only tests; see bench/README.md for what each benchmark
// measures and how to run them.
package bench
