// Package relay serves streamed response bodies outside the HTTP server:
// once a response's head is decided, the body is relayed from the
// upstream's socket to the client's on an event loop of the relay's own,
// without a goroutine, a read buffer or a request context per stream.
//
// A stream of server-sent events from a model sends an event every few
// tens of milliseconds for tens of seconds. Served by fasthttp, each such
// stream holds the client connection's goroutine and buffers, its request
// context, the upstream reader's buffer and a goroutine watching the
// client, about 40 KiB; and each event wakes a goroutine, reads twice and
// copies five times. A relayed stream holds its framing state and, only
// while a slow client leaves bytes unwritten, those bytes: each event is
// one read, one write and the wait, as in nginx.
//
// Relay.Start writes the response's head and the body's first bytes (often
// the first event) on its caller's goroutine, and only then hands the
// stream to a loop: the first event does not wait for a loop to wake.
//
// The relay decodes the upstream's chunked framing (chunkDecoder), passes
// the events through an openai.SSEScanner for their token usage when the
// stream is metered (dropping the usage-only chunk if asked), and writes
// each read's events to the client as one chunk. It bounds every wait for
// the upstream (Stream.Timeout) and every write the client keeps waiting
// (Stream.WriteTimeout), and notices a client that goes away (its FIN or
// RST) at once, ending the stream so that the upstream sees the
// disconnect. Stream.Done then hands both connections back to their
// owner.
//
// Linux only (netconn.Poller, on epoll); elsewhere New reports
// errors.ErrUnsupported and the
// server serves every stream itself.
package relay
