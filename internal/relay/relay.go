package relay

import (
	"context"
	"syscall"
	"time"

	"github.com/authgate/authgate/internal/openai"
	"github.com/authgate/authgate/internal/safelog"
)

// A Stream is one response body to relay: the caller fills the exported
// fields and calls Relay.Start; the relay owns the Stream, and both
// connections' sockets, until it calls Done.
type Stream struct {
	// Client and Upstream are the sockets (plain TCP: a RawConn of a
	// *net.TCPConn) the body is relayed between. Neither may be read,
	// written or closed by anyone else until Done.
	Client, Upstream syscall.RawConn

	// Head is the response head, written to the client first, together
	// with the body's first bytes if Initial holds any, by Start.
	Head []byte
	// Initial is what was read from the upstream past the response head:
	// the start of the chunked body.
	Initial []byte

	// Events: the body is a stream of server-sent events, read for their
	// usage (Result.Usage), and DropUsageOnly keeps the usage-only chunk
	// from the client.
	Events, DropUsageOnly bool

	// Timeout, if positive, bounds each wait for the upstream's next
	// bytes; WriteTimeout, if positive, each wait for a client that does
	// not read to take what the upstream sent. Zero: no bound.
	Timeout, WriteTimeout time.Duration

	// Ending, if set, is called when the body has ended whole, with the
	// stream's usage, before the body's end is written to the client: what
	// it records is in place before the client can know the stream ended.
	// Done follows. It is called on the relay's goroutine, or by Start if
	// Initial holds the body's end.
	Ending func(*Result)

	// Done is called once, on the relay's goroutine, when the stream
	// ends: the relay no longer uses the Stream or its sockets. It must
	// not block for long: the loop's other streams wait meanwhile.
	Done func(Result)

	// The relay's state.
	held      *Relay // that counts s as reserved (Reserve), until Start
	cfd, ufd  int
	slot      int32 // in its loop's slots; -1 before it has one
	gen       uint32
	dec       chunkDecoder
	scan      openai.SSEScanner
	pending   []byte // written to the client only in part: the rest
	finishing bool   // the body has ended: done once pending is written
	err       error  // why the stream ended in Start, for its loop to end it
	res       Result
}

// Result is how a stream ended.
type Result struct {
	// Err is nil if the whole body reached the client (its last chunk
	// written); else why the stream ended: ErrClientGone, ErrTimeout,
	// ErrWriteTimeout, ErrUpstream, ErrClosed or a malformed body.
	Err error
	// Reusable: the upstream's body ended where its connection's bytes
	// did, so the connection may carry another request.
	Reusable bool
	// Usage and HasUsage are the last usage the events reported, Content
	// the number of content events (Events only).
	Usage    openai.Usage
	HasUsage bool
	Content  int
	// Sent is the bytes written to the client, head and framing included.
	Sent int64
}

// Why a stream ended.
const (
	ErrClientGone   = safelog.Fixed("client left")
	ErrTimeout      = safelog.Fixed("upstream timed out")
	ErrWriteTimeout = safelog.Fixed("client write timed out")
	ErrUpstream     = safelog.Fixed("upstream closed the stream")
	ErrClosed       = safelog.Fixed("relay closed")
)

// Config is New's.
type Config struct {
	// Loops is the number of event loops (goroutines, each with an epoll
	// set); streams are spread over them. Zero means GOMAXPROCS.
	Loops int
	// Now, if set, is the clock deadlines are read from (tests); nil:
	// time.Now.
	Now func() time.Time
}

// Reserve counts s as relayed from now on, for a caller that starts it
// later, or on another goroutine: Wait waits for s from when Reserve
// returns, not from Start. It returns ErrClosed, and counts nothing,
// after Close. Start takes the reservation over; a reserved Stream that
// will not be started is let go with Unreserve.
func (r *Relay) Reserve(s *Stream) error {
	r.active.Add(1) // before the check: a Close after it ends s's Start
	if r.closed.Load() {
		r.active.Add(-1)
		return ErrClosed
	}
	s.held = r
	return nil
}

// Unreserve gives up s's reservation, if it has one (Reserve) that Start
// has not taken over.
func (s *Stream) Unreserve() {
	if r := s.held; r != nil {
		s.held = nil
		r.active.Add(-1)
	}
}

// Wait waits until no stream is relayed, or ctx is done (its error).
func (r *Relay) Wait(ctx context.Context) error {
	if r == nil {
		return nil
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for r.Active() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Active returns how many streams are relayed.
func (r *Relay) Active() int {
	if r == nil {
		return 0
	}
	return int(r.active.Load())
}
