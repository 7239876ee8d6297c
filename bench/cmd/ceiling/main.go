// Command ceiling is the load benchmark's ceiling (bench/README.md,
// scenario a): a bare fasthttp server that answers every request with the
// gateway's 401 for an unknown key, byte for byte the same size (the same
// headers, with a fixed X-Request-Id where the gateway generates one), and
// does nothing else. It reads no request body beyond what fasthttp reads by
// itself. Nothing the gateway does can be faster on the same server code,
// so the gateway's reject path is measured against it.
//
//	ceiling -listen 127.0.0.1:8090 [-pprof 127.0.0.1:6060] [-gateway-settings]
//
// -gateway-settings gives the server what the gateway's own fasthttp
// server has and a bare one does not: its default read, write and idle
// timeouts (which fasthttp applies as socket deadlines on every request),
// streamed request bodies, and LazyRequestTime (fasthttp does not read the
// clock for a handler that does not ask the time; the gateway reads it
// once itself). The benchmark runs it as a second ceiling, to show what
// those settings cost fasthttp itself.
//
// -pprof serves net/http/pprof on another address, so that its profile can
// be set beside the gateway's. It stops on SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/server"
)

var (
	strJSON = []byte("application/json")

	// body401 is the gateway's body for an unknown key (docs/http.md#authentication).
	body401 = []byte(`{"error":{"message":"Invalid API key","type":"invalid_request_error","param":"authorization","code":"invalid_api_key"}}`)

	// requestID stands in for the id the gateway generates per request: the
	// same header, the same length, computed once.
	requestID = []byte("00000000000000000000000000000000")
)

func handler(ctx *fasthttp.RequestCtx) {
	ctx.Response.SetStatusCode(fasthttp.StatusUnauthorized)
	ctx.Response.Header.SetContentTypeBytes(strJSON)
	ctx.Response.Header.SetBytesV("X-Request-Id", requestID)
	ctx.Response.SetBodyRaw(body401)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address; empty: none")
	gatewaySettings := flag.Bool("gateway-settings", false, "the gateway's timeouts, streamed request bodies and lazy request time")
	flag.Parse()
	if *pprofAddr != "" {
		go func() {
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
				fmt.Fprintf(os.Stderr, "ceiling: pprof: %v\n", err)
			}
		}()
	}
	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ceiling: %v\n", err)
		os.Exit(1)
	}
	// The gateway's wire settings: its Server name, no default
	// Content-Type, a Date header.
	s := &fasthttp.Server{
		Handler:                      handler,
		Name:                         "authgate",
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		ReadBufferSize:               16 << 10,
		DisablePreParseMultipartForm: true,
	}
	if *gatewaySettings {
		s.ReadTimeout, s.WriteTimeout, s.IdleTimeout = server.DefaultReadTimeout, server.DefaultWriteTimeout, server.DefaultIdleTimeout
		s.StreamRequestBody = true
		s.LazyRequestTime = true // the gateway's: it reads the clock itself, once
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		s.Shutdown()
	}()
	fmt.Printf("ceiling: serving on http://%s\n", ln.Addr())
	if err := s.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "ceiling: %v\n", err)
		os.Exit(1)
	}
}
