// Command nolog is `authgate serve` without an access log, for the load
// benchmark's "log=off" scenarios only (bench/README.md, scenario g): the
// CLI always writes one (docs/operations.md#access-log), the library does not when
// server.Config.AccessLog is empty. Everything else is the CLI's default
// configuration: the same server.New, the same listener (server.Listen),
// the keys file watched.
//
//	nolog -listen 127.0.0.1:8082 -upstream http://127.0.0.1:8081 -keys keys.txt
//
// It drains and stops on SIGINT or SIGTERM. Do not deploy it: a gateway
// must log every request.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/authgate/authgate/server"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to listen on")
	upstream := flag.String("upstream", "", "upstream base URL(s), comma-separated")
	keys := flag.String("keys", "", "keys file")
	admin := flag.String("admin-listen", "", "admin listener (metrics, pprof); empty: none")
	flag.Parse()
	if *upstream == "" || *keys == "" {
		fmt.Fprintln(os.Stderr, "nolog: -upstream and -keys are required")
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	gw, err := server.New(server.Config{
		KeysFile:      *keys,
		WatchKeysFile: true,
		Upstreams:     strings.Split(*upstream, ","),
		Logger:        logger,
		// AccessLog empty: no access log, the point of this command.
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "nolog: %v\n", err)
		os.Exit(2)
	}
	ln, err := server.Listen(*listen, logger)
	if err != nil {
		gw.Close()
		fmt.Fprintf(os.Stderr, "nolog: %v\n", err)
		os.Exit(1)
	}
	if *admin != "" {
		aln, err := server.Listen(*admin, logger)
		if err != nil {
			fmt.Fprintf(os.Stderr, "nolog: admin listener: %v\n", err)
			os.Exit(1)
		}
		go gw.ServeAdmin(aln)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintf(os.Stderr, "nolog: %v\n", err)
		gw.Close()
		os.Exit(1)
	case <-sigs:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "nolog: %v\n", err)
		}
		<-served
	}
}
