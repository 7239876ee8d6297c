//go:build linux

// Command eventsrv is the upstream of the load benchmark's streams at
// scale (bench/internal/eventsrv): it answers each streamed chat
// completion with events events, interval apart, each stamped with the
// time it is written, on one goroutine. It stops on SIGINT or SIGTERM.
//
//	eventsrv -listen 127.0.0.1:8081 [-events 50] [-interval 40ms] [-event-bytes 0]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/authgate/authgate/bench/internal/eventsrv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "IPv4 address to listen on")
	events := flag.Int("events", 50, `events per stream, "data: [DONE]" not counted; at least 3`)
	interval := flag.Duration("interval", 0, "pause between two events of a stream")
	eventBytes := flag.Int("event-bytes", 0, "pad each content event with spaces to at least this many bytes (0: none)")
	flag.Parse()
	s, err := eventsrv.Listen(*listen, eventsrv.Config{Events: *events, Interval: *interval, EventBytes: *eventBytes})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("eventsrv: serving on http://%s\n", s.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case <-s.Done():
	}
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
