package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// runDemo is `authgate demo`: the gateway on 127.0.0.1:8080 in front of the
// built-in mock upstream, with a freshly generated key in a temporary data
// directory that is removed on exit.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "gateway address")
	rpm := fs.Int("rpm", server.DefaultRPM, "limit per key in any sliding 60 s window")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	fail := func(err error) int {
		fmt.Fprintf(stderr, "authgate demo: %v\n", err)
		return exitFailure
	}

	dir, err := os.MkdirTemp("", "authgate-demo-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	key, err := newKey()
	if err != nil {
		return fail(err)
	}
	keysFile := filepath.Join(dir, "api_keys.txt")
	if err := os.WriteFile(keysFile, []byte("# authgate demo key\ndemo:"+key+"\n"), 0o600); err != nil {
		return fail(err)
	}

	mock := mockupstream.New(mockupstream.Config{ChunkDelay: 50 * time.Millisecond})
	mockLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	go mock.Serve(mockLn)
	defer mock.Shutdown()

	accessLog := filepath.Join(dir, "logs", "api_access.log")
	gw, err := server.New(server.Config{
		KeysFile:      keysFile,
		WatchKeysFile: true,
		DefaultRPM:    *rpm,
		Upstreams:     []string{"http://" + mockLn.Addr().String()},
		AccessLog:     accessLog,
		Logger:        logger,
	})
	if err != nil {
		return fail(err)
	}
	ln, err := server.Listen(*listen, logger)
	if err != nil {
		gw.Close()
		return fail(err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, `authgate demo: gateway on %s, mock upstream on %s
  key_id: demo    key: %s    limit: %d requests per minute
  data dir (removed on exit): %s
  access log: %s

Try it:
  curl -s %s/v1/chat/completions -H "Authorization: Bearer %s" -H "Content-Type: application/json" -d '{"model":"mock-model","messages":[{"role":"user","content":"Hello"}]}'
  curl -sN %s/v1/chat/completions -H "Authorization: Bearer %s" -d '{"stream":true,"messages":[{"role":"user","content":"Hi"}]}'
  curl -si %s/v1/models -H "Authorization: Bearer sk-not-a-real-key-0000"

Press Ctrl-C to stop.
`, base, mockLn.Addr(), key, *rpm, dir, accessLog, base, key, base, key, base)
	code := serveUntilSignal(gw, ln, 5*time.Second, logger)
	return code
}

// runMockUpstream is `authgate mock-upstream --listen ADDR`.
func runMockUpstream(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mock-upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	model := fs.String("model", mockupstream.DefaultModel, "model id to report")
	chunks := fs.Int("stream-chunks", mockupstream.DefaultStreamChunks, "content chunks per streamed response")
	delay := fs.Duration("chunk-delay", 0, "pause between streamed events")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "authgate mock-upstream: cannot listen on %q: %v\n", *listen, err)
		return exitFailure
	}
	mock := mockupstream.New(mockupstream.Config{Model: *model, StreamChunks: *chunks, ChunkDelay: *delay})
	fmt.Fprintf(stdout, "authgate mock-upstream: serving on http://%s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- mock.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "authgate mock-upstream: %v\n", err)
		return exitFailure
	case <-ctx.Done():
		mock.Shutdown()
		return exitOK
	}
}
