// Package mockupstream is a fake OpenAI-compatible inference server: it
// answers chat completions (JSON or server-sent events), legacy completions,
// embeddings and the model list with canned but well-formed responses, fast
// enough to serve as the "direct" baseline of authgate's load benchmarks.
//
// It is what `authgate mock-upstream` and `authgate demo` run, and what the
// gateway's tests put behind the gateway.
package mockupstream

import (
	"cmp"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// DefaultModel is the model id used when Config.Model is empty.
const DefaultModel = "mock-model"

// DefaultStreamChunks is the number of content chunks in a streamed response
// when Config.StreamChunks is zero or negative.
const DefaultStreamChunks = 5

// maxRequestBodySize is larger than the gateway's default MAX_REQUEST_BODY
// (32 MiB), so that every body the gateway lets through reaches the mock.
const maxRequestBodySize = 64 << 20

// ErrServerClosed is returned by Serve when it is called after Shutdown.
var ErrServerClosed = errors.New("mockupstream: server closed")

// Config configures a Mock. The zero value is ready to use.
type Config struct {
	// Model is the model id listed by GET /v1/models and reported in
	// responses to requests that name no model. Empty means DefaultModel.
	// Ignored when Models is set.
	Model string

	// Models, if set, are the models served, as vLLM serves a model under
	// several names (--served-model-name): GET /v1/models lists them all,
	// a request that names no model is answered as the first, and a chat,
	// completion or embeddings request that names a model not served is
	// answered 404 model_not_found, as vLLM does. Empty means Model alone
	// is listed, and a request naming any model is answered as if served.
	// Either way models can be added and removed at run time (AddModel,
	// POST /v1/load_lora_adapter).
	Models []string

	// StreamChunks is the number of content chunks in a streamed response.
	// Zero or negative means DefaultStreamChunks.
	StreamChunks int

	// EventBytes, if positive, pads the text of each content chunk of a
	// stream with spaces so that its event ("data: …" and the blank line
	// after it) is at least this many bytes: for load tests of larger
	// events. The usage counts are unchanged. Zero means no padding (a chat
	// chunk is about 200 bytes).
	EventBytes int

	// RejectStreamOptions makes chat and completion requests that carry
	// "stream_options" answer 400 (param "stream_options"), as servers do
	// that forbid members they do not know: for the gateway's setting that
	// does not inject it.
	RejectStreamOptions bool

	// ReplyBytes, if positive, pads the content of a chat completion that
	// is not streamed with spaces after its text, so that the body is at
	// least this many bytes: for load tests of larger answers. The usage
	// counts are unchanged. Zero means no padding (about 330 bytes).
	ReplyBytes int

	// ChunkDelay is the pause between two consecutive events of a streamed
	// response (the first event is sent at once). Zero means no pause.
	// The demo sets e.g. 50ms so that streaming is visible. A client that
	// leaves is noticed at the next write, so a stream outlives its client
	// by up to one ChunkDelay (Shutdown ends the pauses at once).
	ChunkDelay time.Duration
}

// Mock is a fake OpenAI-compatible server. Create it with New; its Handler
// can be mounted in any fasthttp.Server, or Serve runs its own.
//
// It answers:
//
//   - POST /v1/chat/completions: a chat.completion object, or with
//     "stream": true a text/event-stream of chat.completion.chunk events
//     (a role delta, StreamChunks content deltas, a finish_reason "stop"
//     delta, a usage chunk if "stream_options": {"include_usage": true},
//     then "data: [DONE]"). With "continuous_usage_stats": true as well,
//     every chunk also carries the usage so far, as vLLM's and SGLang's do.
//     "max_tokens" (or "max_completion_tokens") caps the content chunks,
//     and the non-streamed answer's words, finish_reason "length" when it
//     cuts them.
//   - POST /v1/completions: a text_completion object, or a stream of
//     text_completion chunks (StreamChunks text chunks, a finish_reason
//     "stop" chunk, the optional usage chunk, "data: [DONE]").
//   - POST /v1/embeddings: one deterministic unit-length 8-dimensional
//     embedding per input (a string, an array of strings, or token arrays),
//     as floats or, with "encoding_format": "base64", as base64
//     little-endian float32s.
//   - GET /v1/models and GET /v1/models/{model}: the models served, in
//     vLLM's shape (with root, parent and max_model_len).
//   - POST /v1/load_lora_adapter {"lora_name":…,"lora_path":…} and POST
//     /v1/unload_lora_adapter {"lora_name":…}: add or remove a model at
//     run time, as vLLM does with LoRA adapters (AddModel and RemoveModel
//     do the same from Go).
//
// Request fields other than model, stream, stream_options, max_tokens,
// max_completion_tokens, input and encoding_format (n, temperature, tools,
// …) are accepted and ignored. Other paths answer 404, other methods on these paths 405, a body that is
// not a JSON object of the expected field types 400, each in OpenAI's error
// shape. The Authorization header is ignored. Token counts in "usage" are
// estimates: a token per four bytes of the request body (of each input, for
// embeddings), at least one; a completion counts a token per word, which
// is a content chunk when streamed, so that usage and the content events
// agree.
//
// A Mock is safe for concurrent use.
type Mock struct {
	base   string // the first model: a request naming none is answered as it
	chunks int
	delay  time.Duration
	pad    int // Config.EventBytes

	rejectStreamOptions bool // Config.RejectStreamOptions
	replyBytes          int  // Config.ReplyBytes

	cat   atomic.Pointer[catalog] // the models served
	catMu sync.Mutex              // serializes changes of cat

	server *fasthttp.Server

	// done is closed by Shutdown; streams then skip their remaining pauses.
	done chan struct{}

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener

	// onStreamEnd, when set (by tests only, before any request), is called
	// by every stream writer as it returns, with the number of events sent
	// and the write error that stopped it, if any.
	onStreamEnd func(events int, err error)
}

// New returns a Mock configured by cfg.
func New(cfg Config) *Mock {
	m := &Mock{
		chunks: cfg.StreamChunks,
		delay:  cfg.ChunkDelay,
		pad:    max(cfg.EventBytes, 0),
		done:   make(chan struct{}),

		rejectStreamOptions: cfg.RejectStreamOptions,
		replyBytes:          max(cfg.ReplyBytes, 0),
	}
	ids := cfg.Models
	if len(ids) == 0 {
		ids = []string{cmp.Or(cfg.Model, DefaultModel)}
	}
	m.base = ids[0]
	created := time.Now().Unix()
	entries := make([]entry, 0, len(ids))
	seen := map[string]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			entries = append(entries, entry{id: id, root: id, created: created})
		}
	}
	m.cat.Store(newCatalog(len(cfg.Models) > 0, entries, m.base))
	if m.chunks <= 0 {
		m.chunks = DefaultStreamChunks
	}
	if m.delay < 0 {
		m.delay = 0
	}
	m.server = &fasthttp.Server{
		Handler:            m.Handler,
		Name:               "authgate-mock",
		MaxRequestBodySize: maxRequestBodySize,
		// A half-sent request may not hold Shutdown forever; idle
		// keep-alive connections are closed by Shutdown anyway.
		ReadTimeout: time.Minute,
		IdleTimeout: 10 * time.Minute,
	}
	return m
}

// Serve serves HTTP on ln with a fasthttp.Server running Handler, until
// Shutdown. It may be called for several listeners. It returns nil after
// Shutdown, ErrServerClosed (closing ln) if Shutdown has already been
// called, or the error that made accepting on ln fail.
func (m *Mock) Serve(ln net.Listener) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	m.listeners = append(m.listeners, ln)
	m.mu.Unlock()
	return m.server.Serve(ln)
}

// Shutdown stops every Serve: it closes the listeners and idle connections,
// and waits for requests in flight to finish. Streams in flight skip their
// remaining ChunkDelay pauses, so they end at once, complete. Calls after
// the first return nil at once.
func (m *Mock) Shutdown() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	lns := m.listeners
	m.listeners = nil
	m.mu.Unlock()

	err := m.server.Shutdown()
	// A Serve that registered its listener here but had not yet handed it
	// to the fasthttp.Server is not seen by server.Shutdown: closing the
	// listener makes its Accept fail, and it returns nil. Listeners that
	// server.Shutdown has closed already just report it, which is ignored.
	for _, ln := range lns {
		_ = ln.Close()
	}
	return err
}
