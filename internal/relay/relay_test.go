//go:build linux

package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/authgate/authgate/internal/openai"
	"golang.org/x/sys/unix"
)

// These tests relay over real loopback connections: for each stream the
// test plays the upstream and the client on its own ends of two TCP
// connections, and the relay gets the other ends. Time is the relay's
// injected clock (relayClock); relayWait only bounds, generously for a
// loaded machine, the waits for what a correct relay does at once.
const relayWait = 5 * time.Second

const relayHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

// relayClock is a relay's clock (Config.Now): it stands still until
// advanced.
type relayClock struct{ ns atomic.Int64 }

func newRelayClock() *relayClock {
	c := new(relayClock)
	c.ns.Store(time.Date(2025, time.December, 6, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *relayClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *relayClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// relayHarness is a Relay, on a relayClock unless the Config has a
// clock, and the loopback listener its streams' connections are made on.
// The test's cleanup closes the relay, then every connection.
type relayHarness struct {
	t     *testing.T
	ln    *net.TCPListener
	clock *relayClock
	r     *Relay
	conns []net.Conn
	dones []*doneRecorder
}

func newRelayHarness(t *testing.T, cfg Config) *relayHarness {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	h := &relayHarness{t: t, ln: ln, clock: newRelayClock()}
	if cfg.Now == nil {
		cfg.Now = h.clock.now
	}
	if h.r, err = New(cfg); err != nil {
		ln.Close()
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		h.r.Close() // first: a stream a failed test left must not outlive its sockets
		for _, c := range h.conns {
			c.Close()
		}
		ln.Close()
		for i, d := range h.dones {
			if n := d.calls.Load(); n > 1 {
				t.Errorf("stream %d: Done called %d times", i, n)
			}
		}
	})
	return h
}

// start starts s, failing the test if Start fails.
func (h *relayHarness) start(s *Stream) {
	h.t.Helper()
	if err := h.r.Start(s); err != nil {
		h.t.Fatalf("Start: %v", err)
	}
}

// dial makes a connection and returns its dialed and accepted ends. A
// positive readBuffer is the dialed end's SO_RCVBUF, set before it
// connects, so that the window it announces is small from the start.
func (h *relayHarness) dial(readBuffer int) (dialed, accepted *net.TCPConn) {
	h.t.Helper()
	var d net.Dialer
	if readBuffer > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, readBuffer)
			})
			return errors.Join(err, serr)
		}
	}
	c, err := d.Dial("tcp", h.ln.Addr().String())
	if err != nil {
		h.t.Fatalf("cannot dial: %v", err)
	}
	h.conns = append(h.conns, c)
	a, err := h.ln.AcceptTCP()
	if err != nil {
		h.t.Fatalf("cannot accept: %v", err)
	}
	h.conns = append(h.conns, a)
	if a.RemoteAddr().String() != c.LocalAddr().String() {
		h.t.Fatalf("accepted a connection from %v, dialed one from %v", a.RemoteAddr(), c.LocalAddr())
	}
	return c.(*net.TCPConn), a
}

// streamEnds are a stream's two connections: the test's ends, the client
// and the upstream, and the relay's.
type streamEnds struct {
	h        *relayHarness
	client   *net.TCPConn // reads what the relay writes
	upstream *net.TCPConn // writes the body
	rc, ru   *net.TCPConn // the relay's: Stream.Client, Stream.Upstream
	got      []byte       // what client has read
}

// connect makes a stream's connections; clientReadBuffer, if positive,
// is the client's SO_RCVBUF.
func (h *relayHarness) connect(clientReadBuffer int) *streamEnds {
	h.t.Helper()
	e := &streamEnds{h: h}
	e.ru, e.upstream = h.dial(0) // the relay dials its upstream
	e.client, e.rc = h.dial(clientReadBuffer)
	return e
}

// stream returns a Stream of e's relay ends, with relayHead, initial, a
// minute's Timeout and d's Done.
func (e *streamEnds) stream(initial string, d *doneRecorder) *Stream {
	t := e.h.t
	t.Helper()
	rawConn := func(c *net.TCPConn) syscall.RawConn {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatalf("SyscallConn: %v", err)
		}
		return rc
	}
	return &Stream{
		Client:   rawConn(e.rc),
		Upstream: rawConn(e.ru),
		Head:     []byte(relayHead),
		Initial:  []byte(initial),
		Timeout:  time.Minute,
		Done:     d.done,
	}
}

// write writes s to the upstream's end.
func (e *streamEnds) write(s string) {
	t := e.h.t
	t.Helper()
	e.upstream.SetWriteDeadline(time.Now().Add(relayWait))
	if _, err := io.WriteString(e.upstream, s); err != nil {
		t.Fatalf("upstream: cannot write %q: %v", s, err)
	}
}

// Read reads from the client's end, keeping what it reads in got.
func (e *streamEnds) Read(b []byte) (int, error) {
	n, err := e.client.Read(b)
	e.got = append(e.got, b[:n]...)
	return n, err
}

// readUntil reads from the client until it has the head and cond holds
// of the body's data so far and whether the body has ended.
func (e *streamEnds) readUntil(what string, cond func(data []byte, ended bool) bool) {
	t := e.h.t
	t.Helper()
	e.client.SetReadDeadline(time.Now().Add(relayWait))
	defer e.client.SetReadDeadline(time.Time{})
	buf := make([]byte, 4<<10)
	for {
		if len(e.got) >= len(relayHead) {
			if data, ended := decodeRelayed(t, e.got); cond(data, ended) {
				return
			}
		}
		if _, err := e.Read(buf); err != nil {
			t.Fatalf("client: waiting for %s, got ...%q: %v", what, lastBytes(e.got), err)
		}
	}
}

// readData reads until the client has the head and want, the body's data
// so far, and not its end.
func (e *streamEnds) readData(want string) {
	t := e.h.t
	t.Helper()
	var data []byte
	var ended bool
	e.readUntil(fmt.Sprintf("data %q", want), func(d []byte, end bool) bool {
		data, ended = d, end
		return end || len(d) >= len(want)
	})
	if ended || string(data) != want {
		t.Fatalf("client got data %q, body ended %v; want %q, not ended", data, ended, want)
	}
}

// readEnd reads until the client has the body's end, and checks that the
// body's data are want.
func (e *streamEnds) readEnd(want string) {
	t := e.h.t
	t.Helper()
	e.readUntil("the body's end", func(_ []byte, ended bool) bool { return ended })
	if data, _ := decodeRelayed(t, e.got); string(data) != want {
		t.Fatalf("client got the body %q; want %q", data, want)
	}
}

// readFor reads what reaches the client within d. The relay is known to
// write nothing meanwhile: it is to collect what it may have written
// before, still on its way.
func (e *streamEnds) readFor(d time.Duration) {
	t := e.h.t
	t.Helper()
	e.client.SetReadDeadline(time.Now().Add(d))
	defer e.client.SetReadDeadline(time.Time{})
	buf := make([]byte, 4<<10)
	for {
		if _, err := e.Read(buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			t.Fatalf("client: %v", err)
		}
	}
}

// readBody reads the head and the whole body as they come, and returns
// the body's data; it does not fail the test, so that a goroutine may
// call it.
func (e *streamEnds) readBody() ([]byte, error) {
	e.client.SetReadDeadline(time.Now().Add(relayWait))
	defer e.client.SetReadDeadline(time.Time{})
	br := bufio.NewReader(e)
	head := make([]byte, len(relayHead))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != relayHead {
		return nil, fmt.Errorf("client got the head %q: %v", head, err)
	}
	data, err := io.ReadAll(httputil.NewChunkedReader(br))
	if err != nil {
		return data, fmt.Errorf("client: the body, after %d bytes of data: %w", len(data), err)
	}
	end := make([]byte, 2)
	if _, err := io.ReadFull(br, end); err != nil || string(end) != "\r\n" || br.Buffered() > 0 {
		return data, fmt.Errorf("client got %q and %d bytes more after the last chunk: %v", end, br.Buffered(), err)
	}
	return data, nil
}

// release does what a stream's owner does after Done: it closes the
// relay's ends of the connections.
func (e *streamEnds) release() {
	e.rc.Close()
	e.ru.Close()
}

// finish releases e and reads what is left for the client, to the end of
// its connection: after it, got is all that the relay wrote.
func (e *streamEnds) finish() {
	t := e.h.t
	t.Helper()
	e.release()
	e.client.SetReadDeadline(time.Now().Add(relayWait))
	if _, err := io.Copy(io.Discard, e); err != nil {
		t.Fatalf("client: reading to the end: %v", err)
	}
}

// awaitFull waits until the client's connection is full: bytes the client
// has not read in its socket, and bytes the relay's socket holds unsent
// for want of room at the client's. A relay given more than that to
// relay then waits for the client.
func (e *streamEnds) awaitFull() {
	t := e.h.t
	t.Helper()
	deadline := time.Now().Add(relayWait)
	for queued(t, e.client, unix.SIOCINQ) == 0 || queued(t, e.rc, unix.SIOCOUTQ) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the client's connection not full after %v", relayWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// queued returns the bytes in c's socket's queue req: unix.SIOCINQ,
// received and unread; unix.SIOCOUTQ, written and not yet acknowledged.
func queued(t *testing.T, c *net.TCPConn, req uint) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatalf("SyscallConn: %v", err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), req) }); err != nil || ierr != nil {
		t.Fatalf("ioctl %#x: %v", req, errors.Join(err, ierr))
	}
	return n
}

// tcpClose is TCP_CLOSE, a socket's state (TCP_INFO) once reset.
const tcpClose = 7

// awaitReset waits until c's peer has reset the connection: c's socket
// is closed (TCP_CLOSE), its error kept for the next call.
func awaitReset(t *testing.T, c *net.TCPConn) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(relayWait)
	for {
		var info *unix.TCPInfo
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		}); err != nil || gerr != nil {
			t.Fatalf("TCP_INFO: %v", errors.Join(err, gerr))
		}
		if info.State == tcpClose {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reset within %v", relayWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// doneRecorder is a stream's Done: it passes the first Result on and
// counts the calls.
type doneRecorder struct {
	ch    chan Result
	calls atomic.Int32
}

func (h *relayHarness) newDone() *doneRecorder {
	d := &doneRecorder{ch: make(chan Result, 1)}
	h.dones = append(h.dones, d)
	return d
}

func (d *doneRecorder) done(r Result) {
	if d.calls.Add(1) == 1 {
		d.ch <- r
	}
}

// ended reports whether Done has been called.
func (d *doneRecorder) ended() bool { return d.calls.Load() > 0 }

// wait returns the Result Done is called with.
func (d *doneRecorder) wait(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-d.ch:
		return r
	case <-time.After(relayWait):
		t.Fatalf("Done not called within %v", relayWait)
	}
	panic("unreachable")
}

// decodeRelayed decodes what a client got: relayHead, then a chunked
// body. It returns the body's data so far and reports whether the body
// has ended, and fails t if got is not that.
func decodeRelayed(t *testing.T, got []byte) (data []byte, ended bool) {
	t.Helper()
	if len(got) < len(relayHead) {
		if !strings.HasPrefix(relayHead, string(got)) {
			t.Fatalf("client got %q; want the head %q first", got, relayHead)
		}
		return nil, false
	}
	if string(got[:len(relayHead)]) != relayHead {
		t.Fatalf("client got ...%q; want the head %q first", lastBytes(got), relayHead)
	}
	br := bufio.NewReader(bytes.NewReader(got[len(relayHead):]))
	data, err := io.ReadAll(httputil.NewChunkedReader(br))
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return data, false
	case err != nil:
		t.Fatalf("client got a malformed chunked body ...%q: %v", lastBytes(got), err)
	}
	// The chunked reader stops after the last chunk's size line; the
	// relay sends no trailer, so the blank line that ends the body is left.
	rest, _ := io.ReadAll(br)
	if !strings.HasPrefix("\r\n", string(rest)) {
		t.Fatalf("client got %q after the last chunk", rest)
	}
	return data, len(rest) == 2
}

// lastBytes returns the end of b, short enough for a message.
func lastBytes(b []byte) []byte { return b[max(0, len(b)-300):] }

// firstDiff describes where got first differs from want, for a message.
func firstDiff(got, want []byte) string {
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	from := max(0, i-40)
	return fmt.Sprintf("%d bytes, want %d; from byte %d: got %q, want %q",
		len(got), len(want), from, got[from:min(len(got), i+40)], want[from:min(len(want), i+40)])
}

// encodeChunked frames data as a chunked body, in chunks of the sizes
// size returns (at least 1 byte), and ends it.
func encodeChunked(data []byte, size func() int) []byte {
	var b []byte
	for len(data) > 0 {
		n := min(size(), len(data))
		b = fmt.Appendf(b, "%x\r\n", n)
		b = append(append(b, data[:n]...), "\r\n"...)
		data = data[n:]
	}
	return append(b, "0\r\n\r\n"...)
}

// cycleSizes returns a size function for encodeChunked that returns ns
// in turn.
func cycleSizes(ns ...int) func() int {
	i := -1
	return func() int { i++; return ns[i%len(ns)] }
}

// bigStream is a 4 MiB body of random data, framed in chunks of 1 byte to
// 32 KiB, and its data: more than a client's connection and an upstream's
// hold together.
var bigStream = sync.OnceValues(func() (data, body []byte) {
	data = make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{'r', 'e', 'l', 'a', 'y'}).Read(data)
	rng := rand.New(rand.NewPCG(1, 2))
	return data, encodeChunked(data, func() int { return 1 + rng.IntN(32<<10) })
})

// writeInPieces writes b to c in pieces of 1 byte to maxPiece, on a
// goroutine of its own. The channel has the first write's error, or nil
// once all of b is written.
func writeInPieces(c *net.TCPConn, b []byte, maxPiece int, seed uint64) <-chan error {
	ch := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(seed, 3))
		c.SetWriteDeadline(time.Now().Add(relayWait))
		for len(b) > 0 {
			n := min(1+rng.IntN(maxPiece), len(b))
			if _, err := c.Write(b[:n]); err != nil {
				ch <- err
				return
			}
			b = b[n:]
		}
		ch <- nil
	}()
	return ch
}

// A chat completions stream as OpenAI sends it when asked for usage
// (stream_options.include_usage): "usage": null in every chunk but the
// last, which has empty choices.
const (
	sseRole = `data: {"id":"chatcmpl-BX3kq8","object":"chat.completion.chunk","created":1764990000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n"
	sseStop = `data: {"id":"chatcmpl-BX3kq8","object":"chat.completion.chunk","created":1764990000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}` + "\n\n"
	sseDone = "data: [DONE]\n\n"
)

// sseContent returns the stream's event of a content delta, s (JSON
// string text).
func sseContent(s string) string {
	return `data: {"id":"chatcmpl-BX3kq8","object":"chat.completion.chunk","created":1764990000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[{"index":0,"delta":{"content":"` + s + `"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n"
}

// sseUsageOnly returns the stream's usage-only event.
func sseUsageOnly(prompt, completion int) string {
	return fmt.Sprintf(`data: {"id":"chatcmpl-BX3kq8","object":"chat.completion.chunk","created":1764990000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`+"\n\n",
		prompt, completion, prompt+completion)
}

// TestRelayBody relays a body that arrives in pieces cut inside its
// framing, each read on its own: the client gets the head, then the same
// data, then the body's end, and only after Ending has returned.
func TestRelayBody(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	e := h.connect(0)
	d := h.newDone()
	var endings, endingsAtDone atomic.Int32
	entered, proceed := make(chan Result, 1), make(chan struct{})
	release := sync.OnceFunc(func() { close(proceed) })
	t.Cleanup(release) // before the harness's: Close waits for the loop, blocked in Ending
	s := e.stream("5\r\nhe", d)
	s.Ending = func(r *Result) {
		if endings.Add(1) == 1 {
			entered <- *r
		}
		<-proceed
	}
	s.Done = func(r Result) {
		endingsAtDone.Store(endings.Load())
		d.done(r)
	}
	h.start(s)

	// The client has each write's data before the next write: the relay
	// reads each write on its own.
	for _, step := range []struct{ write, data string }{
		{"", "he"},                                              // Initial, ending inside a chunk's data
		{"llo\r\n1", "hello"},                                   // a size line split
		{"0\r\n0123456", "hello0123456"},                        // "10": 16 bytes, in two reads
		{"789abcdef\r", "hello0123456789abcdef"},                // the CRLF after the data split
		{"\n3;ext=1\r\nxyz\r\n0\r", "hello0123456789abcdefxyz"}, // an extension; the last chunk split
	} {
		if step.write != "" {
			e.write(step.write)
		}
		e.readData(step.data)
	}
	const want = "hello0123456789abcdefxyz"
	e.write("\n\r\n")
	var seen Result
	select {
	case seen = <-entered:
	case <-time.After(relayWait):
		t.Fatalf("Ending not called within %v of the body's end", relayWait)
	}
	if seen.Err != nil || !seen.Reusable {
		t.Errorf("Ending got %+v; want no error, reusable", seen)
	}
	// The loop waits in Ending: the client must not have the body's end.
	e.readFor(50 * time.Millisecond)
	if data, ended := decodeRelayed(t, e.got); ended || string(data) != want {
		t.Fatalf("while Ending runs, client got data %q, ended %v; want %q, not ended", data, ended, want)
	}
	if d.ended() {
		t.Fatal("Done called before Ending returned")
	}
	release()
	e.readEnd(want)
	r := d.wait(t)
	e.finish()
	if data, ended := decodeRelayed(t, e.got); !ended || string(data) != want {
		t.Fatalf("after the connection's end, client got data %q, ended %v; want %q, ended", data, ended, want)
	}
	if r.Err != nil || !r.Reusable || r.Sent != int64(len(e.got)) || r.HasUsage || r.Content != 0 {
		t.Errorf("Done got %+v; want no error, reusable, no usage, Sent %d (what the client got)", r, len(e.got))
	}
	if n, m := endings.Load(), endingsAtDone.Load(); n != 1 || m != 1 {
		t.Errorf("Ending called %d times, %d of them before Done; want once, before", n, m)
	}
}

// TestRelayFirstBytes: Start writes a stream's head and first bytes on
// its caller's goroutine, so they reach the client while the loop is busy
// (here, in another stream's Done); a body that ends in them is then
// whole (Ending called by Start), and the rest of another comes once the
// loop is free. What the client's socket does not take of them waits for
// it.
func TestRelayFirstBytes(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	a := h.connect(0)
	da := h.newDone()
	inDone, proceed := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(proceed) })
	t.Cleanup(release) // before the harness's: Close waits for the loop, blocked in Done
	sa := a.stream("", da)
	sa.Done = func(r Result) {
		close(inDone)
		<-proceed
		da.done(r)
	}
	h.start(sa)
	a.write("0\r\n\r\n")
	select {
	case <-inDone:
	case <-time.After(relayWait):
		t.Fatalf("Done not called within %v of the body's end", relayWait)
	}

	// The loop waits in a's Done.
	b := h.connect(0)
	db := h.newDone()
	h.start(b.stream("5\r\nhello\r\n", db))
	b.readData("hello")

	c := h.connect(0)
	dc := h.newDone()
	sc := c.stream("5\r\nhello\r\n0\r\n\r\n", dc)
	var endings atomic.Int32
	sc.Ending = func(r *Result) {
		if r.Err != nil || !r.Reusable || dc.ended() {
			t.Errorf("Ending got %+v, Done called before: %v; want no error, reusable, before Done", r, dc.ended())
		}
		// Before the client has a byte of c, Active counts it (and b; a
		// has ended): a stop's Wait must not miss it.
		if n := h.r.Active(); n != 2 {
			t.Errorf("Active = %d while Start writes c's first bytes; want 2 (b and c)", n)
		}
		endings.Add(1)
	}
	h.start(sc)
	c.readEnd("hello")
	if n := endings.Load(); n != 1 {
		t.Fatalf("Ending called %d times by the time the client has the body's end; want once", n)
	}

	// More than the client's connection holds.
	big := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB
	e := h.connect(4 << 10)
	if err := e.rc.SetWriteBuffer(4 << 10); err != nil { // no autotuning: the write is cut
		t.Fatal(err)
	}
	de := h.newDone()
	h.start(e.stream(fmt.Sprintf("%x\r\n%s\r\n", len(big), big), de))
	e.awaitFull()

	release()
	if r := da.wait(t); r.Err != nil {
		t.Errorf("a: Done got %+v; want no error", r)
	}
	if r := dc.wait(t); r.Err != nil || !r.Reusable || r.Sent != int64(len(c.got)) {
		t.Errorf("c: Done got %+v; want no error, reusable, Sent %d", r, len(c.got))
	}
	b.write("6\r\n world\r\n0\r\n\r\n")
	b.readEnd("hello world")
	if r := db.wait(t); r.Err != nil || r.Sent != int64(len(b.got)) {
		t.Errorf("b: Done got %+v; want no error, Sent %d", r, len(b.got))
	}
	e.readData(big)
	e.write("0\r\n\r\n")
	e.readEnd(big)
	if r := de.wait(t); r.Err != nil || r.Sent != int64(len(e.got)) {
		t.Errorf("e: Done got %+v; want no error, Sent %d", r, len(e.got))
	}
}

// TestRelayEvents relays chat completions streams whose events are cut by
// the chunks and the reads: the usage and the content events are counted,
// and the usage-only event kept from the client if asked.
func TestRelayEvents(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	f := func(stream string, size func() int, events, drop bool, want string, u openai.Usage, content int) {
		t.Helper()
		body := encodeChunked([]byte(stream), size)
		cut := min(90, len(body)/3) // Initial
		e := h.connect(0)
		d := h.newDone()
		var endings atomic.Int32
		ending := make(chan Result, 1)
		s := e.stream(string(body[:cut]), d)
		s.Events, s.DropUsageOnly = events, drop
		s.Ending = func(r *Result) {
			if endings.Add(1) == 1 {
				ending <- *r
			}
		}
		h.start(s)
		werr := writeInPieces(e.upstream, body[cut:], 61, uint64(len(body)))
		got, err := e.readBody()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("Events %v, DropUsageOnly %v: client got the body: %s", events, drop, firstDiff(got, []byte(want)))
		}
		r := d.wait(t)
		if err := <-werr; err != nil {
			t.Fatalf("upstream: %v", err)
		}
		e.finish()
		hasUsage := u != openai.Usage{}
		if r.Err != nil || !r.Reusable || r.Sent != int64(len(e.got)) {
			t.Errorf("Events %v, DropUsageOnly %v: Done got %+v; want no error, reusable, Sent %d (what the client got)",
				events, drop, r, len(e.got))
		}
		if r.HasUsage != hasUsage || r.Usage != u || r.Content != content {
			t.Errorf("Events %v, DropUsageOnly %v: usage %v %+v, %d content events; want %v %+v, %d",
				events, drop, r.HasUsage, r.Usage, r.Content, hasUsage, u, content)
		}
		if n := endings.Load(); n != 1 {
			t.Fatalf("Ending called %d times; want once", n)
		}
		if er := <-ending; er.HasUsage != hasUsage || er.Usage != u || er.Content != content {
			t.Errorf("Events %v, DropUsageOnly %v: Ending got usage %v %+v, %d content events; want %v %+v, %d",
				events, drop, er.HasUsage, er.Usage, er.Content, hasUsage, u, content)
		}
	}
	usageOnly := sseUsageOnly(19, 3)
	u := openai.Usage{Prompt: 19, Completion: 3, Total: 22}
	stream := sseRole + sseContent("Hello") + sseContent(", world") + sseContent("!") + sseStop + usageOnly + sseDone
	small := func() func() int { return cycleSizes(53, 7, 200, 1) }
	f(stream, small(), true, true, strings.Replace(stream, usageOnly, "", 1), u, 3)
	f(stream, small(), true, false, stream, u, 3)
	f(stream, small(), false, false, stream, openai.Usage{}, 0)
	f(stream, small(), false, true, stream, openai.Usage{}, 0) // nothing is read, nothing dropped

	// A body that ends inside an event: its bytes are passed on as they
	// came, with the body's end.
	cutShort := sseRole + sseContent("Hi") + usageOnly + "data: [DONE]\n"
	f(cutShort, small(), true, true, strings.Replace(cutShort, usageOnly, "", 1), u, 1)

	// An event longer than openai.DefaultMaxEvent, passed through in
	// pieces; the usage-only event after it is still read and dropped.
	long := sseContent(strings.Repeat("x", openai.DefaultMaxEvent)) + usageOnly + sseDone
	f(long, cycleSizes(16<<10, 3), true, true, strings.Replace(long, usageOnly, "", 1), u, 1)
}

// TestRelayStreamReuse: a Stream started again after Done, as its owner
// may pool it, relays the new body only, though the first ended inside a
// chunk and an event.
func TestRelayStreamReuse(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	one, two := sseContent("one"), sseContent("two")
	e := h.connect(0)
	d := h.newDone()
	s := e.stream(fmt.Sprintf("%x\r\n", 2*len(one))+one+two[:len(two)/2], d)
	s.Events, s.DropUsageOnly = true, true
	h.start(s)
	e.readData(one)
	e.upstream.Close()
	if r := d.wait(t); r.Err != ErrUpstream || r.Content != 1 {
		t.Fatalf("the first stream: Done got %+v; want %v, 1 content event", r, ErrUpstream)
	}
	e.finish()

	usageOnly := sseUsageOnly(7, 1)
	stream := sseContent("three") + usageOnly + sseDone
	e = h.connect(0)
	d = h.newDone()
	fresh := e.stream("", d)
	s.Client, s.Upstream, s.Done = fresh.Client, fresh.Upstream, fresh.Done
	s.Initial = encodeChunked([]byte(stream), cycleSizes(100))
	h.start(s)
	want := strings.Replace(stream, usageOnly, "", 1)
	e.readEnd(want)
	r := d.wait(t)
	e.finish()
	u := openai.Usage{Prompt: 7, Completion: 1, Total: 8}
	if r.Err != nil || !r.Reusable || r.Sent != int64(len(e.got)) || !r.HasUsage || r.Usage != u || r.Content != 1 {
		t.Errorf("the second stream: Done got %+v; want no error, reusable, Sent %d (what the client got), usage %+v, 1 content event",
			r, len(e.got), u)
	}
}

// TestRelayReusable: the upstream's connection is reusable when its bytes
// end where the body does.
func TestRelayReusable(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	f := func(initial string, writes []string, want string, wantReusable bool) {
		t.Helper()
		e := h.connect(0)
		d := h.newDone()
		h.start(e.stream(initial, d))
		for _, w := range writes {
			e.write(w)
		}
		e.readEnd(want)
		r := d.wait(t)
		e.finish()
		if r.Err != nil || r.Reusable != wantReusable || r.Sent != int64(len(e.got)) {
			t.Errorf("Initial %q, then %q: Done got %+v; want no error, Reusable %v, Sent %d (what the client got)",
				initial, writes, r, wantReusable, len(e.got))
		}
	}
	f("5\r\nhello\r\n0\r\n\r\n", nil, "hello", true) // the whole body in Initial
	f("5\r\nhello\r\n0\r\n\r\nXYZ", nil, "hello", false)
	f("0\r\n\r\n", nil, "", true)
	f("", []string{"0\r\n\r\n"}, "", true)
	f("5\r\nhel", []string{"lo\r\n0\r\n\r\n"}, "hello", true)
	f("5\r\nhel", []string{"lo\r\n0\r\n\r\nXYZ"}, "hello", false)
	f("", []string{"5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"}, "hello", false)
	f("5\r\nhello\r\n", []string{"0\r\nX-Checksum: 1\r\n\r\n"}, "hello", true) // the trailer read, not passed on
}

// TestRelayUpstreamGone: an upstream that closes or resets its
// connection before the body's end ends the stream with ErrUpstream, and
// the client never gets the body's end.
func TestRelayUpstreamGone(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	f := func(initial, write, want string, reset bool) {
		t.Helper()
		e := h.connect(0)
		d := h.newDone()
		h.start(e.stream(initial, d))
		if write != "" {
			e.write(write)
		}
		e.readData(want) // all the upstream sent
		if reset {
			e.upstream.SetLinger(0)
		}
		e.upstream.Close()
		r := d.wait(t)
		e.finish()
		if data, ended := decodeRelayed(t, e.got); ended || string(data) != want {
			t.Errorf("Initial %q, then %q: client got data %q, ended %v; want %q, not ended", initial, write, data, ended, want)
		}
		if r.Err != ErrUpstream || r.Reusable || r.Sent != int64(len(e.got)) {
			t.Errorf("Initial %q, then %q: Done got %+v; want %v, not reusable, Sent %d (what the client got)",
				initial, write, r, ErrUpstream, len(e.got))
		}
	}
	for _, reset := range []bool{false, true} {
		f("", "", "", reset)                                   // before the body
		f("5\r\nhello\r\n", "", "hello", reset)                // between chunks
		f("5\r\nhello\r\n", "5\r\nwor", "hellowor", reset)     // inside a chunk
		f("5\r\nhello\r\n0\r\n", "", "hello", reset)           // before the blank line ending the body
		f("5\r\nhello\r\n", "0\r\nX-A: b\r\n", "hello", reset) // inside the trailer
	}
}

// TestRelayMalformed: a body that is not chunked ends the stream with
// errChunked, and the client never gets the body's end.
func TestRelayMalformed(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	f := func(initial, write, valid string) {
		t.Helper()
		e := h.connect(0)
		d := h.newDone()
		h.start(e.stream(initial, d))
		if write != "" {
			e.write(write)
		}
		r := d.wait(t)
		e.finish()
		if !errors.Is(r.Err, errChunked) || r.Reusable || r.Sent != int64(len(e.got)) {
			t.Errorf("Initial %q, then %q: Done got %+v; want %v, not reusable, Sent %d (what the client got)",
				initial, write, r, errChunked, len(e.got))
		}
		if data, ended := decodeRelayed(t, e.got); ended || !strings.HasPrefix(valid, string(data)) {
			t.Errorf("Initial %q, then %q: client got data %q, ended %v; want part of %q, not ended", initial, write, data, ended, valid)
		}
	}
	f("zz\r\n", "", "")
	f("5\nhello\r\n0\r\n\r\n", "", "") // a bare LF
	f("5\r\nhello\r\n", "zz\r\n", "hello")
	f("5\r\nhello\r\n", "3\r\nabcXY\r\n0\r\n\r\n", "helloabc") // more data than the size says
	f("5\r\nhello\r\n", "1234567890abcdef0\r\nx", "hello")     // a size of 17 hex digits
	f("5\r\nhello\r\n0\r\n\r", "X", "hello")                   // the blank line ending the body
}

// TestRelayClientGone: a client that closes or resets its connection
// ends the stream at once with ErrClientGone, the upstream sending
// nothing more; also while the relay waits for it to read.
func TestRelayClientGone(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	f := func(reset bool) {
		t.Helper()
		e := h.connect(0)
		d := h.newDone()
		h.start(e.stream("5\r\nhello\r\n", d))
		e.readData("hello")
		if reset {
			e.client.SetLinger(0)
		}
		e.client.Close()
		r := d.wait(t)
		e.release()
		if r.Err != ErrClientGone || r.Reusable || r.Sent != int64(len(e.got)) {
			t.Errorf("reset %v: Done got %+v; want %v, not reusable, Sent %d (what the client got)",
				reset, r, ErrClientGone, len(e.got))
		}
	}
	f(false)
	f(true)

	// A client gone before Start: its write of the head fails, and the loop
	// ends the stream.
	e0 := h.connect(0)
	d0 := h.newDone()
	e0.client.SetLinger(0)
	e0.client.Close()
	awaitReset(t, e0.rc)
	h.start(e0.stream("5\r\nhello\r\n", d0))
	if r := d0.wait(t); r.Err != ErrClientGone || r.Reusable || r.Sent != 0 {
		t.Errorf("gone before Start: Done got %+v; want %v, not reusable, nothing sent", r, ErrClientGone)
	}
	e0.release()

	// A client that reads nothing, and closes when the relay waits for it.
	_, body := bigStream()
	e := h.connect(4 << 10)
	d := h.newDone()
	h.start(e.stream("", d))
	werr := writeInPieces(e.upstream, body, 64<<10, 1)
	e.awaitFull()
	e.client.Close() // unread bytes: a reset
	r := d.wait(t)
	e.release()
	<-werr // the relay's end closed
	if r.Err != ErrClientGone || r.Reusable {
		t.Errorf("closed while the relay waited for it: Done got %+v; want %v, not reusable", r, ErrClientGone)
	}
}

// TestRelayTimeout: Timeout bounds each wait for the upstream, on the
// relay's clock.
func TestRelayTimeout(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	a, b := h.connect(0), h.connect(0)
	da, db := h.newDone(), h.newDone()
	sa := a.stream("", da)
	sa.Timeout = 10 * time.Second
	sb := b.stream("", db)
	sb.Timeout = time.Hour
	h.start(sa)
	h.start(sb)
	a.readData("")
	b.readData("")
	bdata := ""
	barrier := func() { sweepBarrier(b, &bdata) }

	a.write("3\r\none\r\n")
	a.readData("one")
	h.clock.advance(6 * time.Second)
	barrier()
	if da.ended() {
		t.Fatalf("a stream with a 10 s Timeout ended 6 s after its upstream's bytes: %+v", <-da.ch)
	}
	a.write("3\r\ntwo\r\n")
	a.readData("onetwo")
	h.clock.advance(6 * time.Second)
	barrier()
	if da.ended() {
		t.Fatalf("a stream with a 10 s Timeout ended 6 s after its upstream's last bytes, 12 s after the first: %+v", <-da.ch)
	}
	h.clock.advance(5 * time.Second) // 11 s after the last bytes
	r := da.wait(t)
	a.finish()
	if data, ended := decodeRelayed(t, a.got); ended || string(data) != "onetwo" {
		t.Errorf("client got data %q, ended %v; want %q, not ended", data, ended, "onetwo")
	}
	if r.Err != ErrTimeout || r.Reusable || r.Sent != int64(len(a.got)) {
		t.Errorf("Done got %+v; want %v, not reusable, Sent %d (what the client got)", r, ErrTimeout, len(a.got))
	}

	// b, with an hour's Timeout, goes on, through sweeps past the
	// deadline a had: a's slot is free, and swept no more.
	h.clock.advance(20 * time.Second)
	barrier()
	b.write("0\r\n\r\n")
	b.readEnd(bdata)
	if rb := db.wait(t); rb.Err != nil {
		t.Errorf("the other stream: Done got %+v; want no error", rb)
	}
}

// sweepBarrier returns once the loop of b's stream has swept its streams
// on the clock as it is at the call: b has had a chunk relayed in each
// of two turns of the loop after the call, and the loop sweeps at the end
// of a turn. data is what b's client has had so far; it grows by the two
// chunks.
func sweepBarrier(b *streamEnds, data *string) {
	b.h.t.Helper()
	for range 2 {
		*data += "."
		b.write("1\r\n.\r\n")
		b.readData(*data)
	}
}

// TestRelayNoTimeout: a Timeout of zero does not bound the wait for the
// upstream, whatever WriteTimeout is; WriteTimeout bounds only a wait for
// a client that does not read. Nor does the longest Timeout there is.
func TestRelayNoTimeout(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	a, b := h.connect(0), h.connect(0)
	da, db := h.newDone(), h.newDone()
	sa := a.stream("", da)
	sa.Timeout, sa.WriteTimeout = 0, time.Second
	sb := b.stream("", db)
	sb.Timeout = math.MaxInt64
	h.start(sa)
	h.start(sb)
	a.readData("")
	b.readData("")
	bdata := ""
	for turn := range 3 {
		h.clock.advance(time.Hour)
		sweepBarrier(b, &bdata)
		if da.ended() {
			t.Fatalf("a stream without a Timeout ended %d h after its start: %+v", turn+1, <-da.ch)
		}
	}
	a.write("3\r\none\r\n0\r\n\r\n")
	a.readEnd("one")
	if r := da.wait(t); r.Err != nil {
		t.Errorf("Done got %+v; want no error", r)
	}
	b.write("0\r\n\r\n")
	b.readEnd(bdata)
	if r := db.wait(t); r.Err != nil {
		t.Errorf("the other stream: Done got %+v; want no error", r)
	}
}

// TestRelaySlowClient: a client that reads nothing makes the relay wait,
// the upstream unread, for as long as WriteTimeout on the relay's clock;
// one that reads in the end gets the whole body.
func TestRelaySlowClient(t *testing.T) {
	data, body := bigStream()
	// connect makes a stream whose client's connection holds little: its
	// SO_RCVBUF and the relay's SO_SNDBUF 4 KiB (the kernel's doubled).
	connect := func(t *testing.T, h *relayHarness) (*streamEnds, *doneRecorder, *Stream) {
		t.Helper()
		e := h.connect(4 << 10)
		if err := e.rc.SetWriteBuffer(4 << 10); err != nil {
			t.Fatalf("cannot set the relay's SO_SNDBUF: %v", err)
		}
		d := h.newDone()
		s := e.stream("", d)
		s.Timeout = time.Hour
		return e, d, s
	}

	t.Run("WriteTimeout", func(t *testing.T) {
		h := newRelayHarness(t, Config{Loops: 1})
		e, d, s := connect(t, h)
		s.WriteTimeout = 3 * time.Second
		h.start(s)
		werr := writeInPieces(e.upstream, body, 64<<10, 2)
		e.awaitFull()
		if d.ended() {
			t.Fatalf("ended before the clock moved: %+v", <-d.ch)
		}
		// The relay may not wait for the client yet: time passes until it
		// has waited WriteTimeout.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		timeout := time.After(relayWait)
		var r Result
	waiting:
		for {
			select {
			case r = <-d.ch:
				break waiting
			case <-tick.C:
				h.clock.advance(time.Second)
			case <-timeout:
				t.Fatalf("Done not called within %v", relayWait)
			}
		}
		e.finish()
		<-werr // the relay's end closed
		if got, ended := decodeRelayed(t, e.got); ended || !bytes.HasPrefix(data, got) {
			t.Errorf("client got %d bytes of data, ended %v; want part of the data, not ended", len(got), ended)
		}
		if r.Err != ErrWriteTimeout || r.Reusable || r.Sent != int64(len(e.got)) {
			t.Errorf("Done got %+v; want %v, not reusable, Sent %d (what the client got)", r, ErrWriteTimeout, len(e.got))
		}
	})

	t.Run("backpressure", func(t *testing.T) {
		h := newRelayHarness(t, Config{Loops: 1})
		e, d, s := connect(t, h)
		s.WriteTimeout = time.Second // the clock stands still
		h.start(s)
		werr := writeInPieces(e.upstream, body, 64<<10, 3)
		e.awaitFull()
		got, err := e.readBody()
		if err != nil {
			t.Fatal(err)
		}
		r := d.wait(t)
		if err := <-werr; err != nil {
			t.Fatalf("upstream: %v", err)
		}
		e.finish()
		if !bytes.Equal(got, data) {
			t.Errorf("client got the body: %s", firstDiff(got, data))
		}
		if r.Err != nil || !r.Reusable || r.Sent != int64(len(e.got)) {
			t.Errorf("Done got %+v; want no error, reusable, Sent %d (what the client got)", r, len(e.got))
		}
	})

	t.Run("upstream reset", func(t *testing.T) {
		// While the relay waits for the client it reads nothing from the
		// upstream, but sees its reset.
		h := newRelayHarness(t, Config{Loops: 1})
		e, d, s := connect(t, h)
		h.start(s)
		werr := writeInPieces(e.upstream, body, 64<<10, 4)
		e.awaitFull()
		e.upstream.SetLinger(0)
		e.upstream.Close()
		r := d.wait(t)
		<-werr
		e.finish()
		if got, ended := decodeRelayed(t, e.got); ended || !bytes.HasPrefix(data, got) {
			t.Errorf("client got %d bytes of data, ended %v; want part of the data, not ended", len(got), ended)
		}
		if r.Err != ErrUpstream || r.Reusable || r.Sent != int64(len(e.got)) {
			t.Errorf("Done got %+v; want %v, not reusable, Sent %d (what the client got)", r, ErrUpstream, len(e.got))
		}
	})
}

// TestRelayClose: Close ends every stream, relayed or just started, with
// ErrClosed before it returns; Start then returns ErrClosed.
func TestRelayClose(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 2})
	var ends []*streamEnds
	var dones []*doneRecorder
	for range 4 {
		e := h.connect(0)
		d := h.newDone()
		h.start(e.stream("5\r\nhello\r\n", d))
		ends, dones = append(ends, e), append(dones, d)
	}
	for _, e := range ends {
		e.readData("hello")
	}
	e := h.connect(0) // started just before Close: admitted or not yet
	d := h.newDone()
	h.start(e.stream("5\r\nhello\r\n", d))
	ends, dones = append(ends, e), append(dones, d)

	h.r.Close()
	for i, d := range dones {
		if n := d.calls.Load(); n != 1 {
			t.Fatalf("stream %d: Done called %d times by the time Close returned; want once", i, n)
		}
		if r := <-d.ch; r.Err != ErrClosed || r.Reusable {
			t.Errorf("stream %d: Done got %+v; want %v, not reusable", i, r, ErrClosed)
		}
	}
	if n := h.r.Active(); n != 0 {
		t.Errorf("Active() = %d after Close; want 0", n)
	}
	for i, e := range ends {
		e.finish()
		if data, ended := decodeRelayed(t, e.got); ended {
			t.Errorf("stream %d: client got the body's end, data %q", i, data)
		}
	}

	e = h.connect(0)
	d = h.newDone()
	if err := h.r.Start(e.stream("5\r\nhello\r\n0\r\n\r\n", d)); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v; want %v", err, ErrClosed)
	}
	h.r.Close() // again: nothing to do

	// A relay whose loops never started.
	r, err := New(Config{Loops: 3})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.Close()
	if err := r.Start(e.stream("5\r\nhello\r\n0\r\n\r\n", d)); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close of a relay that never started: %v; want %v", err, ErrClosed)
	}
	if d.ended() {
		t.Errorf("Done called for a stream Start refused: %+v", <-d.ch)
	}
}

// TestRelayReserve: a reserved stream counts in Active, and Wait waits
// for it, from Reserve on; Start takes the reservation over, counting the
// stream once, and gives it up if it fails; Unreserve gives it up once;
// after Close nothing is reserved.
func TestRelayReserve(t *testing.T) {
	h := newRelayHarness(t, Config{Loops: 1})
	done, cancel := context.WithCancel(context.Background())
	cancel()
	active := func(want int) {
		t.Helper()
		if n := h.r.Active(); n != want {
			t.Fatalf("Active() = %d; want %d", n, want)
		}
		if err := h.r.Wait(done); (err == nil) != (want == 0) {
			t.Fatalf("Wait, with %d streams: %v", want, err)
		}
	}

	e := h.connect(0)
	d := h.newDone()
	s := e.stream("5\r\nhello\r\n", d)
	if err := h.r.Reserve(s); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	active(1)
	h.start(s)
	active(1)
	e.readData("hello")
	e.write("0\r\n\r\n")
	if r := d.wait(t); r.Err != nil {
		t.Fatalf("Done: %+v", r)
	}
	active(0)

	// Given up, once.
	s = e.stream("", h.newDone())
	if err := h.r.Reserve(s); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	s.Unreserve()
	s.Unreserve()
	active(0)

	// Start fails: the reservation goes with it.
	gone := h.connect(0)
	s = gone.stream("", h.newDone())
	gone.rc.Close()
	if err := h.r.Reserve(s); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if err := h.r.Start(s); err == nil {
		t.Fatal("Start of a stream whose client socket is closed succeeded")
	}
	active(0)

	// Reserved, then the relay closes: Start returns ErrClosed.
	s = e.stream("", h.newDone())
	if err := h.r.Reserve(s); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	h.r.Close()
	active(1)
	if err := h.r.Start(s); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start of a stream reserved before Close: %v; want %v", err, ErrClosed)
	}
	active(0)
	if err := h.r.Reserve(s); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reserve after Close: %v; want %v", err, ErrClosed)
	}
	active(0)
}

// TestRelayManyStreams relays 200 streams at once on two loops, each a
// chat completions stream whose events are cut by the chunks and the
// reads, interleaved with the others' on the loops' shared buffers.
func TestRelayManyStreams(t *testing.T) {
	const n = 200
	h := newRelayHarness(t, Config{Loops: 2, Now: time.Now})
	type job struct {
		e          *streamEnds
		d          *doneRecorder
		s          *Stream
		body, want string
		content    int
		data       []byte
		err        error
	}
	jobs := make([]*job, n)
	for i := range jobs {
		rng := rand.New(rand.NewPCG(uint64(i), 5))
		j := &job{content: 1 + rng.IntN(8)}
		var sb strings.Builder
		sb.WriteString(sseRole)
		for k := range j.content {
			sb.WriteString(sseContent(fmt.Sprintf("word %d of stream %d", k, i)))
		}
		sb.WriteString(sseStop)
		stream := sb.String()
		usageOnly := sseUsageOnly(i+1, j.content)
		j.want = stream + usageOnly + sseDone
		drop := i%2 == 1
		if drop {
			j.want = stream + sseDone
		}
		j.body = string(encodeChunked([]byte(stream+usageOnly+sseDone), func() int { return 1 + rng.IntN(300) }))
		cut := rng.IntN(len(j.body) / 2)
		j.e, j.d = h.connect(0), h.newDone()
		j.s = j.e.stream(j.body[:cut], j.d)
		j.s.Events, j.s.DropUsageOnly = true, drop
		j.body = j.body[cut:]
		jobs[i] = j
	}
	var wg sync.WaitGroup
	for i, j := range jobs {
		h.start(j.s)
		wg.Go(func() {
			werr := writeInPieces(j.e.upstream, []byte(j.body), 200, uint64(i))
			j.data, j.err = j.e.readBody()
			j.err = errors.Join(j.err, <-werr)
		})
	}
	wg.Wait()
	for i, j := range jobs {
		if j.err != nil {
			t.Fatalf("stream %d: %v", i, j.err)
		}
		if string(j.data) != j.want {
			t.Fatalf("stream %d: client got the body: %s", i, firstDiff(j.data, []byte(j.want)))
		}
		r := j.d.wait(t)
		u := openai.Usage{Prompt: i + 1, Completion: j.content, Total: i + 1 + j.content}
		if r.Err != nil || !r.Reusable || r.Sent != int64(len(j.e.got)) || !r.HasUsage || r.Usage != u || r.Content != j.content {
			t.Errorf("stream %d: Done got %+v; want no error, reusable, Sent %d (what the client got), usage %+v, %d content events",
				i, r, len(j.e.got), u, j.content)
		}
	}
	if n := h.r.Active(); n != 0 {
		t.Errorf("Active() = %d after every Done; want 0", n)
	}
}

// BenchmarkSweep is a loop's sweep of 9,800 streams, none of them due:
// what the loop spends every sweepEvery at the scale benchmark's count.
// cold: the streams' memory is out of the caches, as the traffic of a
// sweepEvery between two sweeps leaves it.
func BenchmarkSweep(b *testing.B) {
	const n = 9800
	now := time.Now()
	l := &loop{r: &Relay{now: func() time.Time { return now }}, epoch: now}
	for range n {
		s := &Stream{Timeout: time.Minute}
		s.slot = int32(len(l.slots))
		l.slots = append(l.slots, s)
		l.deadlines = append(l.deadlines, never)
		l.setDeadline(s, s.Timeout)
	}
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			l.sweep(now)
		}
	})
	b.Run("cold", func(b *testing.B) {
		other := make([]byte, 64<<20)
		for b.Loop() {
			b.StopTimer()
			for i := 0; i < len(other); i += 64 {
				other[i]++
			}
			b.StartTimer()
			l.sweep(now)
		}
	})
}
