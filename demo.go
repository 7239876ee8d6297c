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
	"strings"
	"syscall"
	"time"

	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// demoModels are the models of the demo's two mock upstreams: a chat
// model and an embedding model.
var demoModels = [2]string{"mock-chat", "mock-embed"}

// runDemo is `authgate demo`: the gateway on 127.0.0.1:8080 in front of
// two built-in mock upstreams serving different models, with a freshly
// generated key in a temporary data directory that is removed on exit.
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

	// Two upstreams serving different models, as two pools of inference
	// servers: the gateway routes each request by the model it names
	// (docs/configuration.md#models-and-routing). Each mock answers any
	// model it is sent, so the gateway's routing alone decides.
	var mockURLs []string
	for _, model := range demoModels {
		mock := mockupstream.New(mockupstream.Config{Model: model, ChunkDelay: 50 * time.Millisecond})
		mockLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		go mock.Serve(mockLn)
		defer mock.Shutdown()
		mockURLs = append(mockURLs, "http://"+mockLn.Addr().String())
	}

	accessLog := filepath.Join(dir, "logs", "api_access.log")
	gw, err := server.New(server.Config{
		KeysFile:      keysFile,
		WatchKeysFile: true,
		DefaultRPM:    *rpm,
		Upstreams:     mockURLs,
		ModelAliases:  map[string]string{"gpt-4o-mini": demoModels[0], "text-embedding-3-small": demoModels[1]},
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
	fmt.Fprintf(stdout, `authgate demo: gateway on %s
  mock upstreams: %s serves %s, %s serves %s
  model aliases: gpt-4o-mini is %s, text-embedding-3-small is %s
  key_id: demo    key: %s    limit: %d requests per minute
  data dir (removed on exit): %s
  access log: %s

Try it:
  curl -s %s/v1/chat/completions -H "Authorization: Bearer %s" -H "Content-Type: application/json" -d '{"model":"%s","messages":[{"role":"user","content":"Hello"}]}'
  curl -sN %s/v1/chat/completions -H "Authorization: Bearer %s" -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]}'
  curl -s %s/v1/embeddings -H "Authorization: Bearer %s" -d '{"model":"%s","input":"Hello"}'
  curl -s %s/v1/models -H "Authorization: Bearer %s"
  curl -si %s/v1/models -H "Authorization: Bearer sk-not-a-real-key-0000"

Press Ctrl-C to stop.
`, base, mockURLs[0], demoModels[0], mockURLs[1], demoModels[1], demoModels[0], demoModels[1],
		key, *rpm, dir, accessLog,
		base, key, demoModels[0], base, key, base, key, demoModels[1], base, key, base)
	code := serveUntilSignal(gw, ln, 5*time.Second, logger)
	return code
}

// runMockUpstream is `authgate mock-upstream --listen ADDR`.
func runMockUpstream(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mock-upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	model := fs.String("model", mockupstream.DefaultModel, "model id to report; requests naming any model are answered")
	models := fs.String("models", "", "models to serve, comma-separated, as vLLM serves them: listed in /v1/models, others answered 404 (overrides --model)")
	chunks := fs.Int("stream-chunks", mockupstream.DefaultStreamChunks, "content chunks per streamed response")
	delay := fs.Duration("chunk-delay", 0, "pause between streamed events")
	eventBytes := fs.Int("event-bytes", 0, "pad each streamed content event with spaces in its text to at least this many bytes (0: no padding)")
	replyBytes := fs.Int("reply-bytes", 0, "pad each chat completion not streamed with spaces in its content to at least this many bytes (0: no padding)")
	rejectSO := fs.Bool("reject-stream-options", false, `answer 400 to chat and completion requests with "stream_options", as servers that forbid it do`)
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
	cfg := mockupstream.Config{Model: *model, StreamChunks: *chunks, EventBytes: *eventBytes, ReplyBytes: *replyBytes, ChunkDelay: *delay, RejectStreamOptions: *rejectSO}
	if *models != "" {
		for m := range strings.SplitSeq(*models, ",") {
			if m = strings.TrimSpace(m); m == "" {
				fmt.Fprintf(stderr, "authgate mock-upstream: --models: empty model id\n")
				return exitUsage
			}
			cfg.Models = append(cfg.Models, m)
		}
	}
	mock := mockupstream.New(cfg)
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
