package relay

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authgate/authgate/internal/netconn"
)

// Relay relays streams on its event loops. Build it with New; it starts
// a loop's goroutine with the loop's first stream. Its methods are safe
// for concurrent use.
type Relay struct {
	loops     []*loop
	next      atomic.Uint32
	active    atomic.Int64 // streams reserved or started, not ended
	closed    atomic.Bool
	now       func() time.Time
	firstBufs sync.Pool // of *[]byte, Start's frames
}

// loop is a Poller (an epoll set) and the goroutine that waits on it.
type loop struct {
	r    *Relay
	p    *netconn.Poller
	done chan struct{}

	mu       sync.Mutex
	started  bool
	closed   bool
	incoming []*Stream

	// The loop goroutine's own.
	slots     []*Stream       // by Stream.slot; nil: free
	deadlines []time.Duration // by slot: when its wait ends, since epoch; never if free or unbounded
	epoch     time.Time       // of the Relay's clock
	free      []int32
	gen       uint32
	buf       []byte    // what the upstream is read into
	out       []byte    // a chunk being framed
	nextSweep time.Time // on the Relay's clock
	pollDue   time.Time // of the Poller's wait, on the wall clock
}

// Sizes and times of the loops.
const (
	readSize   = 64 << 10
	chunkRoom  = 18 // a chunk's size line, before its data: 16 hex digits and CRLF
	sweepEvery = 50 * time.Millisecond
	maxEvents  = 256
	maxPooled  = 64 << 10                     // the largest frame buffer Start keeps for another
	never      = time.Duration(math.MaxInt64) // a deadline that does not pass
)

// What each socket is waited for. Level-triggered: one read per
// wake-up, and bytes left are reported again.
const (
	upstreamEvents = netconn.WaitRead
	clientEvents   = netconn.WaitHangup // its FIN or RST; never its bytes
	clientBlocked  = netconn.WaitHangup | netconn.WaitWrite
)

var lastChunk = []byte("0\r\n\r\n")

// New returns a Relay with cfg's loops.
func New(cfg Config) (*Relay, error) {
	n := cfg.Loops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	r := &Relay{now: cfg.Now}
	r.firstBufs.New = func() any { return new([]byte) }
	if r.now == nil {
		r.now = time.Now
	}
	for range n {
		l, err := newLoop(r)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.loops = append(r.loops, l)
	}
	return r, nil
}

func newLoop(r *Relay) (*loop, error) {
	p, err := netconn.NewPoller(maxEvents)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return &loop{r: r, p: p, done: make(chan struct{})}, nil
}

// Start relays s. It writes s's head and first bytes to the client on
// the caller's goroutine, so that the first event does not wait for a
// loop to wake, and hands the rest to a loop: it returns without waiting
// for the client, and s.Done is called, on the loop's goroutine, when the
// stream ends. It returns an error, without calling Done, if a socket has
// no descriptor, and ErrClosed after Close (the head may have been
// written by then). It takes over s's reservation (Reserve), if any,
// whatever it returns.
func (r *Relay) Start(s *Stream) error {
	if s.held != r {
		s.Unreserve()
		if err := r.Reserve(s); err != nil {
			return err
		}
	}
	// Active counts s from here until its loop ends it, or Start fails:
	// Wait, at a stop, must not return while a stream the client has
	// begun is still running.
	s.held = nil
	if err := r.start(s); err != nil {
		r.active.Add(-1)
		return err
	}
	return nil
}

// start is Start once s is counted: it writes s's first bytes and hands
// s to a loop, or returns why it could not.
func (r *Relay) start(s *Stream) error {
	var err error
	if s.cfd, err = netconn.SocketFD(s.Client); err != nil {
		return fmt.Errorf("relay: the client's socket: %w", err)
	}
	if s.ufd, err = netconn.SocketFD(s.Upstream); err != nil {
		return fmt.Errorf("relay: the upstream's socket: %w", err)
	}
	if r.closed.Load() {
		return ErrClosed // before the head is written
	}
	s.slot, s.res, s.pending, s.finishing, s.err = -1, Result{}, nil, false, nil
	s.dec = chunkDecoder{}
	s.scan.Reset()
	r.first(s)
	l := r.loops[int(r.next.Add(1))%len(r.loops)]
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if !l.started {
		l.started = true
		go l.run()
	}
	if len(l.incoming) == 0 {
		l.wake() // under l.mu: the loop closes the pipe under it
	}
	l.incoming = append(l.incoming, s)
	return nil
}

// first writes s's head and the chunk of its first bytes to the client,
// for Start, before any loop has s: what the client's socket does not
// take waits in s.pending, and a failure in s.err, for the loop. The
// frame is built in a pooled buffer, not the loop's, which is the loop
// goroutine's own.
func (r *Relay) first(s *Stream) {
	bp := r.firstBufs.Get().(*[]byte)
	lead := len(s.Head) + chunkRoom
	out := slices.Grow((*bp)[:0], lead+len(s.Initial)+chunkRoom+len(lastChunk))[:lead]
	out, start, err := s.chunk(out, lead, s.Initial)
	if err == nil {
		start -= len(s.Head)
		copy(out[start:], s.Head)
		b := out[start:]
		n, werr := netconn.WriteFD(s.cfd, b)
		switch {
		case werr != nil && werr != netconn.ErrWouldBlock:
			err = ErrClientGone
		case n < len(b):
			s.pending = append(s.pending[:0], b[n:]...)
		}
		s.res.Sent += int64(n)
	}
	s.err = err
	if cap(out) <= maxPooled {
		*bp = out[:0]
		r.firstBufs.Put(bp)
	}
}

// Close ends every stream (Done with ErrClosed) and stops the loops;
// Start then returns ErrClosed.
func (r *Relay) Close() {
	if r == nil {
		return
	}
	r.closed.Store(true)
	for _, l := range r.loops {
		l.mu.Lock()
		first, started := !l.closed, l.started
		l.closed = true
		l.mu.Unlock()
		switch {
		case !first:
		case started:
			l.wake()
			<-l.done
		default:
			l.mu.Lock()
			l.closeFDs()
			l.mu.Unlock()
		}
	}
}

func (l *loop) wake() { l.p.Wake() }

func (l *loop) closeFDs() { l.p.Close() }

// run is the loop's goroutine.
func (l *loop) run() {
	defer close(l.done)
	defer func() {
		l.mu.Lock()
		l.closeFDs()
		l.mu.Unlock()
	}()
	l.buf = make([]byte, readSize)
	l.out = make([]byte, chunkRoom, 4<<10)
	l.epoch = l.r.now()
	events := make([]netconn.PollEvent, maxEvents)
	for {
		// While it has streams, the loop wakes at least every sweepEvery
		// to sweep them, on the Relay's clock. The Poller's due is on the
		// wall clock, and kept from one wake-up to the next until it
		// passes: a new one is a runtime timer's reset.
		switch {
		case len(l.slots) == len(l.free):
			l.pollDue = time.Time{}
		case l.pollDue.IsZero():
			l.pollDue = time.Now().Add(sweepEvery)
		}
		n, err := l.p.Wait(events, l.pollDue)
		if n == 0 && !l.pollDue.IsZero() && !time.Now().Before(l.pollDue) {
			l.pollDue = time.Time{}
		}
		if err != nil {
			// Not expected of a valid epoll set: end every stream rather than
			// leave it unserved.
			l.mu.Lock()
			l.closed = true
			l.mu.Unlock()
		}
		woken := false
		for _, ev := range events[:n] {
			if ev.Woken {
				woken = true
				continue
			}
			i := ev.Token.Index >> 1
			if int(i) >= len(l.slots) {
				continue
			}
			s := l.slots[i]
			if s == nil || s.gen != ev.Token.Gen {
				continue // ended since
			}
			if ev.Token.Index&1 == 0 {
				l.upstreamReady(s, ev)
			} else {
				l.clientReady(s, ev)
			}
		}
		if woken || err != nil {
			l.mu.Lock()
			incoming, closed := l.incoming, l.closed
			l.incoming = nil
			l.mu.Unlock()
			for _, s := range incoming {
				if closed {
					l.end(s, ErrClosed)
				} else {
					l.admit(s)
				}
			}
			if closed {
				for _, s := range l.slots {
					if s != nil {
						l.end(s, ErrClosed)
					}
				}
				return
			}
		}
		if now := l.r.now(); !now.Before(l.nextSweep) {
			l.sweep(now)
			l.nextSweep = now.Add(sweepEvery)
		}
	}
}

// admit takes s, whose head and first bytes Start has written, into the
// loop: it registers s's sockets, and waits for the upstream's next bytes
// or, if the client did not take them all, for the client.
func (l *loop) admit(s *Stream) {
	switch {
	case s.err != nil:
		l.end(s, s.err)
		return
	case s.finishing && len(s.pending) == 0:
		l.end(s, nil)
		return
	}
	if k := len(l.free); k > 0 {
		s.slot, l.free = l.free[k-1], l.free[:k-1]
		l.slots[s.slot] = s
	} else {
		s.slot = int32(len(l.slots))
		l.slots = append(l.slots, s)
		l.deadlines = append(l.deadlines, never)
	}
	l.gen++
	s.gen = l.gen
	up, client, bound := upstreamEvents, clientEvents, s.Timeout
	if len(s.pending) > 0 {
		up, client, bound = 0, clientBlocked, s.WriteTimeout
	}
	if err := l.p.Add(s.ufd, s.token(0), up); err != nil {
		l.end(s, ErrUpstream)
		return
	}
	if err := l.p.Add(s.cfd, s.token(1), client); err != nil {
		l.end(s, ErrClientGone)
		return
	}
	l.setDeadline(s, bound)
}

// upstreamReady reads what the upstream sent and passes it on.
func (l *loop) upstreamReady(s *Stream, ev netconn.PollEvent) {
	if len(s.pending) > 0 {
		// Waiting for the client: an event left from before the pause, or
		// the upstream's reset (reported whatever is asked).
		if ev.Hangup {
			l.end(s, ErrUpstream)
		}
		return
	}
	n, err := netconn.ReadFD(s.ufd, l.buf)
	if err == netconn.ErrWouldBlock {
		return
	}
	if err != nil || n == 0 {
		l.end(s, ErrUpstream) // closed or reset before the body's end
		return
	}
	l.setDeadline(s, s.Timeout)
	l.relay(s, l.buf[:n])
}

// relay decodes data, the upstream's next bytes, and writes its events to
// the client as a chunk; the last chunk too if the body ends in data.
func (l *loop) relay(s *Stream, data []byte) {
	out, start, err := s.chunk(l.out[:chunkRoom], chunkRoom, data)
	if err != nil {
		l.end(s, err)
		return
	}
	l.out = out[:chunkRoom] // keeps what it grew to
	if frame := out[start:]; len(frame) > 0 && !l.send(s, frame) {
		return
	}
	if s.finishing && len(s.pending) == 0 {
		l.end(s, nil)
	}
}

// chunk decodes data, the upstream's next bytes, into out past lead
// (chunkRoom bytes of room before it) as the chunk to write, calling
// Ending if the body ends in data: it returns out, where the chunk
// starts, and a malformed body's error. Start and the loop share it.
func (s *Stream) chunk(out []byte, lead int, data []byte) ([]byte, int, error) {
	out, err := s.decode(out, data)
	if err != nil {
		return out, 0, err
	}
	if s.finishing && s.Ending != nil {
		s.Ending(&s.res)
	}
	out, start := s.frame(out, lead)
	return out, start, nil
}

// decode decodes data, the upstream's next bytes, and appends to out the
// events (or bytes) to pass on. At the body's end it sets s.finishing and
// s.res.Reusable, and appends an event the body ended inside of.
func (s *Stream) decode(out, data []byte) ([]byte, error) {
	for len(data) > 0 && !s.dec.done() {
		piece, rest, err := s.dec.next(data)
		if err != nil {
			return out, err
		}
		data = rest
		if len(piece) == 0 {
			continue
		}
		if !s.Events {
			out = append(out, piece...)
			continue
		}
		s.scan.Feed(piece)
		for ev, ok := s.scan.Next(); ok; ev, ok = s.scan.Next() {
			if ev.Content {
				s.res.Content++
			}
			if ev.HasUsage {
				s.res.Usage, s.res.HasUsage = ev.Usage, true
			}
			if !(s.DropUsageOnly && ev.UsageOnly) {
				out = append(out, ev.Bytes...)
			}
		}
	}
	if s.dec.done() && !s.finishing {
		s.finishing = true
		s.res.Reusable = len(data) == 0
		if ev, ok := s.scan.Flush(); ok && s.Events {
			// An event the body ended inside of, passed on as it came.
			out = append(out, ev.Bytes...)
		}
	}
	return out, nil
}

// frame makes what decode appended to out past lead, chunkRoom bytes of
// room before it, one chunk (none if it is empty), followed by the last
// chunk if the body has ended; it returns out and where the frame starts.
func (s *Stream) frame(out []byte, lead int) ([]byte, int) {
	start := lead
	if k := len(out) - lead; k > 0 {
		var hex [16]byte
		size := strconv.AppendUint(hex[:0], uint64(k), 16)
		start -= len(size) + 2
		copy(out[start:], size)
		copy(out[lead-2:], "\r\n")
		out = append(out, '\r', '\n')
	}
	if s.finishing {
		out = append(out, lastChunk...)
	}
	return out, start
}

// send writes b to the client; what the client's socket does not take is
// kept (pending) and written when it can be, the upstream unread
// meanwhile. It reports false if the stream ended: the client is gone.
func (l *loop) send(s *Stream, b []byte) bool {
	n, err := netconn.WriteFD(s.cfd, b)
	if err != nil && err != netconn.ErrWouldBlock {
		l.end(s, ErrClientGone)
		return false
	}
	s.res.Sent += int64(n)
	if n == len(b) {
		return true
	}
	s.pending = append(s.pending[:0], b[n:]...)
	l.setDeadline(s, s.WriteTimeout)
	l.p.Modify(s.ufd, s.token(0), 0)
	l.p.Modify(s.cfd, s.token(1), clientBlocked)
	return true
}

// clientReady ends the stream of a client that left, or writes what was
// pending to one that can take more.
func (l *loop) clientReady(s *Stream, ev netconn.PollEvent) {
	if ev.Hangup {
		l.end(s, ErrClientGone)
		return
	}
	if !ev.Writable || len(s.pending) == 0 {
		return
	}
	n, err := netconn.WriteFD(s.cfd, s.pending)
	if err != nil && err != netconn.ErrWouldBlock {
		l.end(s, ErrClientGone)
		return
	}
	s.res.Sent += int64(n)
	if n < len(s.pending) {
		s.pending = s.pending[n:]
		l.setDeadline(s, s.WriteTimeout)
		return
	}
	s.pending = nil
	if s.finishing {
		l.end(s, nil)
		return
	}
	l.p.Modify(s.cfd, s.token(1), clientEvents)
	l.p.Modify(s.ufd, s.token(0), upstreamEvents)
	l.setDeadline(s, s.Timeout)
}

// token is the Poller's token of s's upstream socket (side 0) or
// client's (1).
func (s *Stream) token(side int32) netconn.Token {
	return netconn.Token{Index: s.slot<<1 | side, Gen: s.gen}
}

// setDeadline bounds s's wait from now: for the upstream, or for a
// client that does not read. A bound of 0 is none, and so is one too
// long to add to the clock.
func (l *loop) setDeadline(s *Stream, bound time.Duration) {
	d := never
	if at := l.r.now().Sub(l.epoch); bound > 0 && bound < never-at {
		d = at + bound
	}
	l.deadlines[s.slot] = d
}

// sweep ends the streams whose wait has passed its deadline. It reads
// the deadlines only, which lie together, and not the Streams, which are
// each in memory of their own: with thousands of streams, most of a
// sweep's time would be cache misses.
func (l *loop) sweep(now time.Time) {
	at := now.Sub(l.epoch)
	for i, d := range l.deadlines {
		if d > at {
			continue
		}
		s := l.slots[i] // a free slot's deadline is never
		if len(s.pending) == 0 {
			l.end(s, ErrTimeout)
		} else {
			l.end(s, ErrWriteTimeout)
		}
	}
}

// end removes s from the loop and calls its Done.
func (l *loop) end(s *Stream, err error) {
	if s.slot >= 0 {
		l.p.Remove(s.ufd)
		l.p.Remove(s.cfd)
		l.slots[s.slot] = nil
		l.deadlines[s.slot] = never
		l.free = append(l.free, s.slot)
		s.slot = -1
	}
	res := s.res
	res.Err = err
	if err != nil {
		res.Reusable = false
	}
	s.pending = nil
	s.scan.Reset()
	l.r.active.Add(-1)
	s.Done(res)
}
