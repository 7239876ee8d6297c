package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/authgate/authgate/bench/internal/latency"
)

// Streams is the streams-at-scale load: Conns connections, each sending
// Request, reading the stream of events it is answered with to its end,
// and sending it again, one stream after another. The connections open
// evenly spread over the ramp, [Start, Start+Ramp]; then all Conns stream
// at once for Plateau, the measured window; after it no stream starts, and
// those under way are read to their end.
//
// Every stream's outcome is counted, the ramp's and the drain's included:
// completed (status 200, at least Events events and "data: [DONE]"),
// truncated (the response ended short of that) or failed. The times are
// those of the completed streams whose request was written in the window:
// to the first event, from writing the request to reading the event's
// blank line, and between two events, between the reads that brought
// their blank lines (0 for two events in one read). Events are counted as
// they arrive in the window, whichever stream carries them.
//
// Events are timed by the kernel (SO_TIMESTAMPNS: when their bytes
// reached the socket), not by when the generator reads them, so its own
// delays do not count. That lets it read in batches: one goroutine polls
// every connection through epoll every millisecond and reads each ready
// one once, so that an event costs it about one
// recvmsg and no wake-up of its own. It speaks IPv4 only, on Linux only.
type Streams struct {
	Addr          string // IPv4 host:port
	Request       []byte // a streamed request (rawhttp.Request), sent as it is
	Conns         int    // streams at once
	Events        int    // events each stream must carry, "data: [DONE]" not counted
	Start         time.Time
	Ramp          time.Duration
	Plateau       time.Duration
	StreamTimeout time.Duration // longest a stream may last, request to end; 0: one minute
}

// StreamsResult is what a Streams run measured. Times are in µs.
type StreamsResult struct {
	Conns        int     `json:"conns"`
	Completed    int64   `json:"completed"`
	Truncated    int64   `json:"truncated"` // ended with fewer events than asked or without [DONE]
	Errors       int64   `json:"errors"`    // connection errors, timeouts, statuses other than 200, malformed responses
	Events       int64   `json:"events"`    // events that arrived in the window
	EventsPerSec float64 `json:"events_per_sec"`
	Measured     int64   `json:"measured"` // the window's completed streams, whose times these are
	TTFE50       float64 `json:"ttfe_p50_us"`
	TTFE99       float64 `json:"ttfe_p99_us"`
	TTFEMax      float64 `json:"ttfe_max_us"`
	Gap50        float64 `json:"gap_p50_us"`
	Gap99        float64 `json:"gap_p99_us"`
	GapMax       float64 `json:"gap_max_us"`
	// Transit is each event's way from the upstream's write to the
	// generator's socket, of the events the upstream stamped (Stamped of
	// them): what the path adds to every event, without the upstream's own
	// delays, which the times between events include.
	Stamped     int64   `json:"stamped_events"`
	Transit50   float64 `json:"transit_p50_us"`
	Transit99   float64 `json:"transit_p99_us"`
	TransitMax  float64 `json:"transit_max_us"`
	GenCPU      float64 `json:"gen_cpu"`              // cores this process used in the window
	GenCPUEvent float64 `json:"gen_cpu_us_per_event"` // its CPU time per event of the window
	Unstamped   int64   `json:"unstamped_reads"`      // reads the kernel did not stamp, timed by the generator's clock
	FirstErr    string  `json:"first_error,omitempty"`
	// ErrorKinds counts the errors by kind: "connect timeout", "connect",
	// "write", "reset", "read", "closed" (mid-stream), "stream timeout",
	// "status N", "malformed".
	ErrorKinds map[string]int64 `json:"errors_by_kind,omitempty"`
}

// Failed returns the streams that did not complete: errors and truncated.
func (r StreamsResult) Failed() int64 { return r.Errors + r.Truncated }

// outcome is how a stream ended.
type outcome uint8

const (
	completed outcome = iota // status 200, every event and [DONE]
	truncated                // the response ended short of that
	failed                   // an error: connection, timeout, status, malformed
)

// streamTally is what the streams of a run add up to. Its zero value is
// empty; it is not safe for concurrent use.
type streamTally struct {
	ttfe, gap, transit         latency.Hist
	completed, truncated, errs int64
	events, measured           int64
	firstErr                   string
	kinds                      map[string]int64
}

// streamStat is one stream as it is read: fed the reads of its response
// (onRead), it judges the stream and times its events.
type streamStat struct {
	want    int       // events it must carry
	sent    time.Time // when its request was written
	r       eventReader
	got     int // its events so far
	last    time.Time
	outcome outcome
	kind    string          // the kind of error it failed with (StreamsResult.ErrorKinds)
	err     error           // why it failed
	ttfe    time.Duration   // to its first event
	gaps    []time.Duration // between its events
	transit []time.Duration // of its stamped events, from the upstream's write to their arrival
	events  int64           // its events that arrived in the window
}

// begin makes st ready for a stream whose request is written at sent.
func (st *streamStat) begin(sent time.Time) {
	st.r.reset()
	st.sent, st.got, st.last = sent, 0, time.Time{}
	st.outcome, st.kind, st.err, st.ttfe, st.gaps, st.transit, st.events = completed, "", nil, 0, st.gaps[:0], st.transit[:0], 0
}

// onRead takes p, read at now, and reports whether the stream has ended
// (then st.outcome says how). Events that arrive in [from, to) are counted.
func (st *streamStat) onRead(p []byte, now, from, to time.Time) (end bool) {
	ev, end, err := st.r.feed(p)
	if ev > 0 {
		if st.got == 0 {
			st.ttfe = now.Sub(st.sent)
		} else {
			st.gaps = append(st.gaps, now.Sub(st.last))
		}
		for range ev - 1 {
			st.gaps = append(st.gaps, 0)
		}
		st.got += ev
		st.last = now
		for _, v := range st.r.stamps {
			st.transit = append(st.transit, time.Duration(now.UnixNano()-v))
		}
		st.r.stamps = st.r.stamps[:0]
		if !now.Before(from) && now.Before(to) {
			st.events += int64(ev)
		}
	}
	if err != nil {
		st.fail("malformed", err)
		return true
	}
	if end {
		st.judge()
	}
	return end
}

// onEOF takes the end of the connection and reports whether it completes
// the response; if not, the stream has failed.
func (st *streamStat) onEOF() {
	if st.r.eof() {
		st.judge()
		return
	}
	st.fail("closed", fmt.Errorf("connection closed after %d events", st.got))
}

// fail ends the stream with err, of kind.
func (st *streamStat) fail(kind string, err error) { st.outcome, st.kind, st.err = failed, kind, err }

// judge sets the outcome of a response that is complete.
func (st *streamStat) judge() {
	switch {
	case st.r.status != 200:
		st.fail("status "+strconv.Itoa(st.r.status), fmt.Errorf("status %d, want 200", st.r.status))
	case st.got < st.want || !st.r.done:
		st.outcome = truncated
	default:
		st.outcome = completed
	}
}

// add counts st, a stream that has ended, into t: its outcome, its events
// of the window [from, to), and its times if it completed and its request
// was written in the window.
func (t *streamTally) add(st *streamStat, from, to time.Time) {
	t.events += st.events
	switch st.outcome {
	case completed:
		t.completed++
		if !st.sent.Before(from) && st.sent.Before(to) {
			t.measured++
			t.ttfe.Record(st.ttfe)
			for _, g := range st.gaps {
				t.gap.Record(g)
			}
			for _, d := range st.transit {
				t.transit.Record(d)
			}
		}
	case truncated:
		t.truncated++
	default:
		t.errs++
		if t.firstErr == "" && st.err != nil {
			t.firstErr = st.err.Error()
		}
		if t.kinds == nil {
			t.kinds = map[string]int64{}
		}
		t.kinds[st.kind]++
	}
}

// result turns t into a StreamsResult of a run of conns connections with
// a window of plateau.
func (t *streamTally) result(conns int, plateau time.Duration) StreamsResult {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	res := StreamsResult{
		Conns: conns, Completed: t.completed, Truncated: t.truncated, Errors: t.errs,
		Events: t.events, Measured: t.measured, FirstErr: t.firstErr, ErrorKinds: t.kinds,
		TTFE50: us(t.ttfe.Quantile(0.5)), TTFE99: us(t.ttfe.Quantile(0.99)), TTFEMax: us(t.ttfe.Quantile(1)),
		Gap50: us(t.gap.Quantile(0.5)), Gap99: us(t.gap.Quantile(0.99)), GapMax: us(t.gap.Quantile(1)),
	}
	if n := t.transit.Count(); n > 0 {
		res.Stamped = int64(n)
		res.Transit50, res.Transit99, res.TransitMax = us(t.transit.Quantile(0.5)), us(t.transit.Quantile(0.99)), us(t.transit.Quantile(1))
	}
	if plateau > 0 {
		res.EventsPerSec = float64(t.events) / plateau.Seconds()
	}
	return res
}

// Run sends the load and returns what it measured, or an error if it
// cannot start (an address that is not IPv4, no epoll). It returns when
// every connection has ended: after the window, once the streams under way
// end, or at once, with what it has, if ctx is cancelled.
func (s *Streams) Run(ctx context.Context) (StreamsResult, error) {
	ta, err := net.ResolveTCPAddr("tcp4", s.Addr)
	if err != nil || ta.IP.To4() == nil {
		return StreamsResult{}, fmt.Errorf("streams: address %q: want an IPv4 host:port", s.Addr)
	}
	sa := &syscall.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	from := s.Start.Add(s.Ramp)
	to := from.Add(s.Plateau)

	// This process's CPU time over the window, sampled on time while the
	// loop below may be in epoll_wait.
	var cpuMu sync.Mutex
	var cpu0, cpu1 time.Duration
	cpuDone := make(chan struct{})
	go func() {
		defer close(cpuDone)
		if !SleepUntil(ctx, from) {
			return
		}
		c0 := selfCPU()
		if !SleepUntil(ctx, to) {
			return
		}
		c1 := selfCPU()
		cpuMu.Lock()
		cpu0, cpu1 = c0, c1
		cpuMu.Unlock()
	}()

	l := &streamLoop{s: s, sa: sa, from: from, to: to, timeout: s.StreamTimeout}
	if l.timeout <= 0 {
		l.timeout = time.Minute
	}
	err = l.run(ctx)
	<-cpuDone
	res := l.tally.result(s.Conns, s.Plateau)
	res.Unstamped = l.unstamped
	cpuMu.Lock()
	if cpu1 > 0 && s.Plateau > 0 {
		res.GenCPU = (cpu1 - cpu0).Seconds() / s.Plateau.Seconds()
		if res.Events > 0 {
			res.GenCPUEvent = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(res.Events)
		}
	}
	cpuMu.Unlock()
	return res, err
}

// SleepUntil waits until t and reports whether ctx was not cancelled
// meanwhile.
func SleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connState is where a connection of the loop is.
type connState uint8

const (
	csClosed     connState = iota // not open: waiting for its opening (at)
	csConnecting                  // connect under way
	csStreaming                   // a request sent, its stream being read
)

// loopConn is one connection of the loop.
type loopConn struct {
	fd     int
	state  connState
	reused bool      // the stream under way is not the connection's first
	at     time.Time // csClosed: when to open it; csConnecting: when it began
	st     streamStat
}

// streamLoop is a Streams run: its connections and what they measured.
type streamLoop struct {
	s         *Streams
	sa        *syscall.SockaddrInet4
	from, to  time.Time
	timeout   time.Duration
	epfd      int
	conns     []loopConn
	open      int   // connections not closed for good
	unstamped int64 // reads without a kernel time
	tally     streamTally
	fatal     error
}

// run drives every connection until each has ended for good.
func (l *streamLoop) run(ctx context.Context) error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("streams: epoll_create1: %w", err)
	}
	l.epfd = epfd
	defer syscall.Close(epfd)
	s := l.s
	l.conns = make([]loopConn, s.Conns)
	for i := range l.conns {
		c := &l.conns[i]
		c.fd = -1
		c.at = s.Start.Add(time.Duration(i) * s.Ramp / time.Duration(max(s.Conns, 1)))
		c.st.want = s.Events
		c.st.gaps = make([]time.Duration, 0, s.Events)
	}
	l.open = s.Conns
	defer func() {
		for i := range l.conns {
			if l.conns[i].fd >= 0 {
				syscall.Close(l.conns[i].fd)
			}
		}
	}()

	events := make([]syscall.EpollEvent, 1024)
	buf := make([]byte, 16<<10)
	oob := make([]byte, syscall.CmsgSpace(16))
	next := 0 // connections before it have been opened once
	var sweep time.Time
	for l.open > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if l.fatal != nil {
			return l.fatal
		}
		now := time.Now()
		for next < len(l.conns) && !now.Before(l.conns[next].at) {
			l.connect(next, now)
			next++
		}
		if now.Sub(sweep) >= 100*time.Millisecond {
			sweep = now
			l.sweep(now, next)
		}
		n, err := syscall.EpollWait(epfd, events, 0)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("streams: epoll_wait: %w", err)
		}
		for _, ev := range events[:max(n, 0)] {
			l.ready(int(ev.Fd), buf, oob)
		}
		if n < len(events) {
			// Caught up: let the events gather for a tick.
			time.Sleep(pollTick)
		}
	}
	return nil
}

// connectTimeout is the longest a connection may take to open.
const connectTimeout = 5 * time.Second

// pollTick is the pause of the streams' loop once it has read every
// connection that was ready.
const pollTick = time.Millisecond

// sweep fails the streams past their timeout and reopens the connections
// due, among the first opened ones.
func (l *streamLoop) sweep(now time.Time, opened int) {
	for i := range l.conns[:opened] {
		c := &l.conns[i]
		switch {
		case c.state == csStreaming && now.Sub(c.st.sent) > l.timeout:
			c.st.fail("stream timeout", fmt.Errorf("no end after %v, %d events", l.timeout, c.st.got))
			l.end(i, now)
		case c.state == csConnecting && now.Sub(c.at) > connectTimeout:
			l.failConnect(i, now, "connect timeout", fmt.Errorf("connect: no answer in %v", connectTimeout))
		case c.state == csClosed && c.fd == -1 && !c.at.IsZero() && !now.Before(c.at):
			l.connect(i, now)
		}
	}
}

// connect opens connection i, or closes it for good after the window.
func (l *streamLoop) connect(i int, now time.Time) {
	c := &l.conns[i]
	c.at, c.reused = time.Time{}, false
	if !now.Before(l.to) {
		l.retire(i)
		return
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		l.failConnect(i, now, "connect", fmt.Errorf("socket: %w", err))
		return
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		syscall.Close(fd)
		l.fatal = fmt.Errorf("streams: SO_TIMESTAMPNS: %w", err)
		return
	}
	c.fd = fd
	err = syscall.Connect(fd, l.sa)
	switch {
	case err == nil:
		if l.ctl(syscall.EPOLL_CTL_ADD, i, syscall.EPOLLIN|syscall.EPOLLRDHUP) {
			l.send(i, now)
		}
	case errors.Is(err, syscall.EINPROGRESS):
		c.state, c.at = csConnecting, now
		l.ctl(syscall.EPOLL_CTL_ADD, i, syscall.EPOLLOUT)
	default:
		l.failConnect(i, now, "connect", fmt.Errorf("connect: %w", err))
	}
}

// ctl adds or modifies connection i's registration; a failure is the
// run's (it would be the generator's fault, not the server's).
func (l *streamLoop) ctl(op, i int, events uint32) bool {
	ev := syscall.EpollEvent{Events: events, Fd: int32(i)}
	if err := syscall.EpollCtl(l.epfd, op, l.conns[i].fd, &ev); err != nil {
		l.fatal = fmt.Errorf("streams: epoll_ctl: %w", err)
		return false
	}
	return true
}

// failConnect counts a connection that could not open, closes it, and
// opens it again 50 ms later: a server that refuses is not hammered.
func (l *streamLoop) failConnect(i int, now time.Time, kind string, err error) {
	c := &l.conns[i]
	st := streamStat{outcome: failed, kind: kind, err: err}
	l.tally.add(&st, l.from, l.to)
	l.close(i)
	c.at = now.Add(50 * time.Millisecond)
}

// retire closes connection i for good: the window is over.
func (l *streamLoop) retire(i int) {
	l.close(i)
	l.conns[i].at = time.Time{}
	l.open--
}

// close closes connection i's socket (which leaves epoll with it).
func (l *streamLoop) close(i int) {
	c := &l.conns[i]
	if c.fd >= 0 {
		syscall.Close(c.fd)
		c.fd = -1
	}
	c.state = csClosed
}

// send writes the request on connection i, whose socket is connected and
// registered for reading. The stream's times start at the write, not at
// now: now may be the kernel's time of the previous stream's end, which
// the loop reads up to a tick later.
func (l *streamLoop) send(i int, now time.Time) {
	c := &l.conns[i]
	c.state = csStreaming
	c.st.begin(time.Now())
	n, err := syscall.Write(c.fd, l.s.Request)
	if err == nil && n < len(l.s.Request) {
		err = fmt.Errorf("wrote %d of the request's %d bytes", n, len(l.s.Request))
	}
	if err != nil && !l.retry(i, now) {
		c.st.fail("write", fmt.Errorf("write: %w", err))
		l.end(i, now)
	}
}

// retry sends the request of connection i again on a new connection if
// the server closed the kept-alive one before the response began, as
// keep-alive allows and as HTTP clients do, and reports whether it did;
// nothing is counted.
func (l *streamLoop) retry(i int, now time.Time) bool {
	c := &l.conns[i]
	if !c.reused || c.st.r.started() {
		return false
	}
	l.close(i)
	l.connect(i, now)
	return true
}

// ready handles connection i, which epoll reported ready.
func (l *streamLoop) ready(i int, buf, oob []byte) {
	c := &l.conns[i]
	switch c.state {
	case csConnecting:
		now := time.Now()
		errno, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
		if err == nil && errno != 0 {
			err = syscall.Errno(errno)
		}
		if err != nil {
			l.failConnect(i, now, "connect", fmt.Errorf("connect: %w", err))
			return
		}
		c.at = time.Time{}
		if l.ctl(syscall.EPOLL_CTL_MOD, i, syscall.EPOLLIN|syscall.EPOLLRDHUP) {
			l.send(i, now)
		}
	case csStreaming:
		n, oobn, _, _, err := syscall.Recvmsg(c.fd, buf, oob, 0)
		now, ok := rxTime(oob[:max(oobn, 0)])
		if !ok {
			now = time.Now()
			if n > 0 {
				l.unstamped++
			}
		}
		switch {
		case n > 0:
			if c.st.onRead(buf[:n], now, l.from, l.to) {
				l.end(i, now)
			}
		case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR):
		case l.retry(i, now):
		case err == nil: // n == 0: the server closed the connection
			c.st.onEOF()
			l.end(i, now)
		default:
			kind := "read"
			if errors.Is(err, syscall.ECONNRESET) {
				kind = "reset"
			}
			c.st.fail(kind, fmt.Errorf("read after %d events: %w", c.st.got, err))
			l.end(i, now)
		}
	}
}

// end counts connection i's stream, which has ended, and sends the next
// one: on the same connection if it stays open, else on a new one; after
// the window, the connection closes for good.
func (l *streamLoop) end(i int, now time.Time) {
	c := &l.conns[i]
	l.tally.add(&c.st, l.from, l.to)
	keep := c.st.outcome != failed && !c.st.r.close
	switch {
	case !now.Before(l.to):
		l.retire(i)
	case keep:
		c.reused = true
		l.send(i, now)
	case c.st.outcome != failed:
		l.close(i) // the server ends the connection with the response
		l.connect(i, now)
	default:
		l.close(i)
		c.at = now.Add(50 * time.Millisecond) // reopened by a sweep
	}
}

// rxTime returns the time in a SCM_TIMESTAMPNS control message of oob,
// the control messages recvmsg returned, and whether there was one (on a
// 64-bit Linux, whose cmsghdr it reads).
func rxTime(oob []byte) (time.Time, bool) {
	if syscall.SizeofCmsghdr != 16 {
		return time.Time{}, false
	}
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*[syscall.SizeofCmsghdr]byte)(oob)
		n := int(binary.NativeEndian.Uint64(h[0:8])) // Len; Level and Type follow
		level := int32(binary.NativeEndian.Uint32(h[8:12]))
		typ := int32(binary.NativeEndian.Uint32(h[12:16]))
		if n < syscall.SizeofCmsghdr || n > len(oob) {
			return time.Time{}, false
		}
		data := oob[syscall.SizeofCmsghdr:n]
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && len(data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(data[8:16]))
			return time.Unix(sec, nsec), true
		}
		oob = oob[min(syscall.CmsgSpace(n-syscall.SizeofCmsghdr), len(oob)):]
	}
	return time.Time{}, false
}
