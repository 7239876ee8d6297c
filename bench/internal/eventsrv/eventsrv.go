//go:build linux

// Package eventsrv is the upstream of the streams at scale: an
// OpenAI-compatible server that answers each streamed chat completion with
// a paced stream of events, as the mock upstream does, at a fraction of its
// cost per event.
//
// The mock upstream (mockupstream) writes each stream through fasthttp's
// body stream writer: a goroutine, a timer and a pipe per stream, and two
// goroutine wake-ups per event. At thousands of streams that saturated the
// load's core, which it shares with the load generator, and its own
// delays then stood in the figures of every server behind it. A Server
// here runs on one goroutine: it polls every connection through one epoll
// set, and it keeps the streams' next events in one queue in the order
// they are due. All streams have the same pace, so a stream's next event
// goes to the back of the queue and the queue stays sorted. An event costs
// one write.
//
// Each event but "data: [DONE]" opens with "sent_at_ns", the Unix time in
// ns just before its write, 19 digits: the load generator on the same
// machine times each event's way from here to its socket.
//
// It speaks what the benchmark asks of it, HTTP/1.1 with keep-alive, one
// request at a time per connection:
//
//   - POST to a path ending in /chat/completions with "stream":true: the
//     stream, chunked. A role event, Events-2 content events and a finish
//     event, Interval apart. A usage event follows if the body asks for
//     "include_usage":true, as the gateway does to meter the stream. Then
//     "data: [DONE]" and the body's end. The first event goes with the
//     response's head.
//   - POST without "stream":true: a chat.completion object.
//   - GET: the model list, in the mock's shape (the gateway's health check
//     and the idle clients ask for it).
//   - Anything else: 404. A request it cannot read: 400, and the
//     connection closed.
package eventsrv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Config is a Server's streams.
type Config struct {
	Events     int           // events per stream, "data: [DONE]" not counted; at least 3
	Interval   time.Duration // between two events of a stream
	EventBytes int           // pad each content event with spaces in its text to at least this many bytes; 0: none
}

// Model is the model the Server lists and answers as, whatever a request
// names, as the mock upstream's default.
const Model = "mock-model"

// Limits of what a Server keeps per connection.
const (
	maxRequest = 64 << 10 // head and body of a request
	maxPending = 1 << 20  // output a client has not taken: it is closed beyond
	maxEvents  = 256      // epoll events per wait
	tick       = 10 * time.Millisecond
)

// Server is a running upstream: Listen starts it, Close stops it.
type Server struct {
	cfg    Config
	lfd    int
	epfd   int
	addr   string
	closed atomic.Bool
	done   chan struct{}
	err    error // why Serve stopped, read after done

	conns  []*conn // by descriptor
	queue  []due   // the streams' next events, in the order they are due
	qhead  int
	nextID uint64
	rbuf   []byte
	ev     []byte // the event being written
	models []byte // the GET answer
}

// conn is one client connection.
type conn struct {
	fd  int
	gen uint32 // changes when the descriptor is reused
	in  []byte // a request's bytes so far
	out []byte // bytes the socket has not taken yet; while any, it is waited on for EPOLLOUT

	// The stream under way.
	streaming bool
	next      int // its next event: 0 the role event … Events-1 finish, Events usage, Events+1 [DONE]
	usage     bool
	id        uint64
	created   int64
}

// due is a stream's next event: its time and its connection.
type due struct {
	at  int64 // monotonic ns (nanotime)
	fd  int
	gen uint32
}

// Listen opens addr (an IPv4 host:port; port 0 picks one) and serves it
// on a goroutine of its own until Close.
func Listen(addr string, cfg Config) (*Server, error) {
	if cfg.Events < 3 || cfg.Interval < 0 {
		return nil, fmt.Errorf("eventsrv: %d events %v apart: want at least 3 events, a pause of 0 or more", cfg.Events, cfg.Interval)
	}
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil || ta.IP.To4() == nil {
		return nil, fmt.Errorf("eventsrv: address %q: want an IPv4 host:port", addr)
	}
	sa := &syscall.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("eventsrv: socket: %w", err)
	}
	s := &Server{cfg: cfg, lfd: lfd, epfd: -1, done: make(chan struct{}), rbuf: make([]byte, 64<<10)}
	fail := func(what string, err error) (*Server, error) {
		s.closeFDs()
		return nil, fmt.Errorf("eventsrv: %s: %w", what, err)
	}
	if err := syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if err := syscall.Bind(lfd, sa); err != nil {
		return fail("bind "+addr, err)
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		return fail("listen", err)
	}
	bound, err := syscall.Getsockname(lfd)
	if err != nil {
		return fail("getsockname", err)
	}
	b4 := bound.(*syscall.SockaddrInet4)
	s.addr = net.JoinHostPort(net.IP(b4.Addr[:]).String(), strconv.Itoa(b4.Port))
	if s.epfd, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
		return fail("epoll_create1", err)
	}
	if err := syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_ADD, lfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return fail("epoll_ctl", err)
	}
	s.models = fmt.Appendf(nil, `{"object":"list","data":[{"id":%q,"object":"model","created":%d,"owned_by":"eventsrv","root":%q,"parent":null}]}`,
		Model, time.Now().Unix(), Model)
	go s.serve()
	return s, nil
}

// Addr is the address the Server listens on.
func (s *Server) Addr() string { return s.addr }

// Close stops the Server, closing every connection, and returns why it
// had stopped before, if it had.
func (s *Server) Close() error {
	s.closed.Store(true)
	<-s.done
	return s.err
}

// Done is closed when the Server stops.
func (s *Server) Done() <-chan struct{} { return s.done }

func (s *Server) closeFDs() {
	for _, c := range s.conns {
		if c != nil && c.fd >= 0 {
			syscall.Close(c.fd)
		}
	}
	if s.epfd >= 0 {
		syscall.Close(s.epfd)
	}
	syscall.Close(s.lfd)
}

var epoch = time.Now()

// nanotime is the monotonic clock in ns.
func nanotime() int64 { return int64(time.Since(epoch)) }

// serve is the Server's goroutine.
func (s *Server) serve() {
	defer close(s.done)
	defer s.closeFDs()
	events := make([]syscall.EpollEvent, maxEvents)
	for !s.closed.Load() {
		wait := tick
		if s.qhead < len(s.queue) {
			wait = min(wait, time.Duration(s.queue[s.qhead].at-nanotime()))
		}
		ms := 0
		if wait > 0 {
			ms = int((wait + time.Millisecond - 1) / time.Millisecond)
		}
		n, err := syscall.EpollWait(s.epfd, events, ms)
		if err != nil && err != syscall.EINTR {
			s.err = fmt.Errorf("eventsrv: epoll_wait: %w", err)
			return
		}
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			if fd == s.lfd {
				s.accept()
				continue
			}
			if fd >= len(s.conns) || s.conns[fd] == nil {
				continue
			}
			c := s.conns[fd]
			if ev.Events&(syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
				s.drop(c)
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 && !s.flush(c) {
				continue
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP) != 0 {
				s.read(c)
			}
		}
		s.sendDue()
	}
}

// accept takes every connection waiting.
func (s *Server) accept() {
	for {
		fd, _, err := syscall.Accept4(s.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or a connection that failed before it was taken
		}
		syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if err := syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
			syscall.Close(fd)
			continue
		}
		for fd >= len(s.conns) {
			s.conns = append(s.conns, nil)
		}
		c := s.conns[fd]
		if c == nil {
			c = &conn{}
			s.conns[fd] = c
		}
		gen := c.gen + 1
		*c = conn{fd: fd, gen: gen, in: c.in[:0], out: c.out[:0]}
	}
}

// drop closes c; its queued event, if any, finds it gone.
func (s *Server) drop(c *conn) {
	if c.fd < 0 {
		return
	}
	syscall.Close(c.fd) // leaves the epoll set with it
	c.fd, c.streaming = -1, false
	c.gen++
}

// read takes what c's socket has and answers the requests it completes.
func (s *Server) read(c *conn) {
	for c.fd >= 0 {
		n, err := syscall.Read(c.fd, s.rbuf)
		if err == syscall.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			s.drop(c)
			return
		}
		if len(c.in)+n > maxRequest {
			s.reject(c)
			return
		}
		c.in = append(c.in, s.rbuf[:n]...)
		s.requests(c)
	}
}

// requests answers the whole requests in c.in.
func (s *Server) requests(c *conn) {
	for c.fd >= 0 {
		end := bytes.Index(c.in, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		head := c.in[:end]
		line, headers, _ := bytes.Cut(head, []byte("\r\n"))
		method, rest, ok1 := bytes.Cut(line, []byte(" "))
		path, proto, ok2 := bytes.Cut(rest, []byte(" "))
		length, okLen := contentLength(headers)
		if !ok1 || !ok2 || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || !okLen {
			s.reject(c)
			return
		}
		if len(c.in) < end+4+length {
			return
		}
		if c.streaming {
			s.reject(c) // a request before the stream's end: not this benchmark's client
			return
		}
		body := c.in[end+4 : end+4+length]
		switch {
		case string(method) == "GET":
			s.answer(c, "200 OK", "application/json", s.models)
		case string(method) == "POST" && bytes.HasSuffix(path, []byte("/chat/completions")):
			if bytes.Contains(body, []byte(`"stream":true`)) {
				s.startStream(c, bytes.Contains(body, []byte(`"include_usage":true`)))
			} else {
				s.answer(c, "200 OK", "application/json", s.completion())
			}
		default:
			s.answer(c, "404 Not Found", "application/json", []byte(`{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}`))
		}
		c.in = c.in[:copy(c.in, c.in[end+4+length:])]
	}
}

// contentLength returns the Content-Length of headers, 0 if it has none;
// ok is false for a value that is not a length, or a chunked body.
func contentLength(headers []byte) (int, bool) {
	n := 0
	for len(headers) > 0 {
		var h []byte
		h, headers, _ = bytes.Cut(headers, []byte("\r\n"))
		k, v, _ := bytes.Cut(h, []byte(":"))
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			l, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil || l < 0 || l > maxRequest {
				return 0, false
			}
			n = l
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, false
		}
	}
	return n, true
}

// reject answers 400 and closes c.
func (s *Server) reject(c *conn) {
	s.write(c, []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	s.drop(c)
}

// answer writes a whole response of body.
func (s *Server) answer(c *conn, status, contentType string, body []byte) {
	b := s.ev[:0]
	b = append(b, "HTTP/1.1 "...)
	b = append(b, status...)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, contentType...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	s.ev = b
	s.write(c, b)
}

// completion is the answer to a chat completion not streamed.
func (s *Server) completion() []byte {
	s.nextID++
	return fmt.Appendf(nil, `{"id":"chatcmpl-eventsrv-%x","object":"chat.completion","created":%d,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":1,"total_tokens":%d}}`,
		s.nextID, time.Now().Unix(), Model, promptTokens, promptTokens+1)
}

// promptTokens is every request's prompt, in the usage it reports.
const promptTokens = 20

// streamHead opens every stream's response.
const streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"

// startStream answers c with a stream: its head and first event now.
func (s *Server) startStream(c *conn, usage bool) {
	s.nextID++
	c.streaming, c.next, c.usage, c.id, c.created = true, 0, usage, s.nextID, time.Now().Unix()
	s.sendEvent(c, []byte(streamHead))
}

// sendDue sends the events that are due.
func (s *Server) sendDue() {
	now := nanotime()
	for s.qhead < len(s.queue) && s.queue[s.qhead].at <= now {
		d := s.queue[s.qhead]
		s.qhead++
		if d.fd < len(s.conns) {
			if c := s.conns[d.fd]; c != nil && c.gen == d.gen && c.streaming {
				s.sendEvent(c, nil)
			}
		}
	}
	if s.qhead == len(s.queue) {
		s.queue, s.qhead = s.queue[:0], 0
	} else if s.qhead > 4096 && s.qhead > len(s.queue)/2 {
		s.queue = s.queue[:copy(s.queue, s.queue[s.qhead:])]
		s.qhead = 0
	}
}

// words are the content events' text, in turn.
var words = [...]string{"Hello", " from", " the", " event", " server."}

// sendEvent writes c's next event, after head if any, as a chunk, and
// queues the one after it; after "data: [DONE]" the body ends and c waits
// for its next request.
func (s *Server) sendEvent(c *conn, head []byte) {
	e := s.cfg.Events
	b := append(s.ev[:0], head...)
	sizeAt := len(b)
	b = append(b, "0000\r\n"...) // the chunk's size, 4 hex digits, set below
	data := len(b)
	last := c.next > e || c.next == e && !c.usage
	if last {
		b = append(b, "data: [DONE]\n\n"...)
	} else {
		b = append(b, `data: {"sent_at_ns":0000000000000000000,"id":"chatcmpl-eventsrv-`...)
		b = strconv.AppendUint(b, c.id, 16)
		b = append(b, `","object":"chat.completion.chunk","created":`...)
		b = strconv.AppendInt(b, c.created, 10)
		b = append(b, `,"model":"`+Model+`"`...)
		switch {
		case c.next == 0:
			b = append(b, `,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]`...)
		case c.next < e-1:
			b = append(b, `,"choices":[{"index":0,"delta":{"content":"`...)
			b = append(b, words[(c.next-1)%len(words)]...)
			const tail = `"},"logprobs":null,"finish_reason":null}]}` + "\n\n"
			if pad := s.cfg.EventBytes - (len(b) - data) - len(tail); pad > 0 {
				b = append(b, bytes.Repeat([]byte(" "), pad)...)
			}
			b = append(b, tail[:len(tail)-3]...)
		case c.next == e-1:
			b = append(b, `,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]`...)
		default:
			b = append(b, `,"choices":[],"usage":{"prompt_tokens":`...)
			b = strconv.AppendInt(b, promptTokens, 10)
			b = append(b, `,"completion_tokens":`...)
			b = strconv.AppendInt(b, int64(e-2), 10)
			b = append(b, `,"total_tokens":`...)
			b = strconv.AppendInt(b, int64(promptTokens+e-2), 10)
			b = append(b, '}')
		}
		b = append(b, "}\n\n"...)
	}
	size := len(b) - data
	if size > 0xffff {
		panic("eventsrv: an event over 64 KiB")
	}
	const hex = "0123456789abcdef"
	for i := range 4 {
		b[sizeAt+3-i] = hex[size>>(4*i)&0xf]
	}
	b = append(b, "\r\n"...)
	if last {
		b = append(b, "0\r\n\r\n"...)
	}
	if !last {
		// The time, just before the write.
		digits := b[data+len(`data: {"sent_at_ns":`):][:19]
		v := time.Now().UnixNano()
		for i := 18; i >= 0; i-- {
			digits[i] = byte('0' + v%10)
			v /= 10
		}
	}
	s.ev = b
	c.next++
	if last {
		c.streaming = false
	} else {
		s.queue = append(s.queue, due{at: nanotime() + int64(s.cfg.Interval), fd: c.fd, gen: c.gen})
	}
	s.write(c, b)
}

// write sends b to c, keeping what the socket does not take for when it
// can (flush). A client that leaves more than maxPending untaken, or whose
// socket fails, is dropped.
func (s *Server) write(c *conn, b []byte) {
	if c.fd < 0 {
		return
	}
	if len(c.out) > 0 {
		if len(c.out)+len(b) > maxPending {
			s.drop(c)
			return
		}
		c.out = append(c.out, b...)
		return
	}
	n, err := syscall.Write(c.fd, b)
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		s.drop(c)
		return
	}
	n = max(n, 0)
	if n == len(b) {
		return
	}
	c.out = append(c.out, b[n:]...)
	if syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_MOD, c.fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLOUT, Fd: int32(c.fd)}) != nil {
		s.drop(c)
	}
}

// flush writes what c's socket did not take before, on its EPOLLOUT;
// false if c was dropped.
func (s *Server) flush(c *conn) bool {
	for len(c.out) > 0 {
		n, err := syscall.Write(c.fd, c.out)
		if errors.Is(err, syscall.EAGAIN) {
			return true
		}
		if err != nil {
			s.drop(c)
			return false
		}
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	if syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_MOD, c.fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}) != nil {
		s.drop(c)
		return false
	}
	return true
}
