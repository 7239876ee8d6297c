//go:build linux

package eventsrv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authgate/authgate/bench/internal/loadgen"
	"github.com/authgate/authgate/bench/internal/rawhttp"
)

// withConnTrace records in local the local address of the connection a
// request goes on.
func withConnTrace(ctx context.Context, local *string) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		*local = i.Conn.LocalAddr().String()
	}})
}

func start(t *testing.T, cfg Config) string {
	t.Helper()
	s, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s.Addr()
}

// event is one server-sent event of a stream, decoded.
type event struct {
	raw   string
	done  bool
	chunk map[string]any
}

// readStream reads one streamed response's events from r, the body of a
// net/http response (which undoes the chunking).
func readStream(t *testing.T, r *bufio.Reader) []event {
	t.Helper()
	var evs []event
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v (got %q)", len(evs), err, line)
		}
		if blank, err := r.ReadString('\n'); err != nil || blank != "\n" {
			t.Fatalf("event %q not followed by a blank line: %q, %v", line, blank, err)
		}
		data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: ")
		if !ok {
			t.Fatalf("event without data: %q", line)
		}
		if data == "[DONE]" {
			if _, err := r.ReadByte(); err != io.EOF {
				t.Fatalf("bytes after [DONE]: %v", err)
			}
			return append(evs, event{raw: data, done: true})
		}
		var chunk map[string]any
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			t.Fatalf("event %d: %v: %s", len(evs), err, data)
		}
		evs = append(evs, event{raw: data, chunk: chunk})
	}
}

// TestStream: a stream in OpenAI's shape, as the mock upstream's: a role
// event, the content events (padded to EventBytes), a finish event, the
// usage when asked, [DONE]; each event but [DONE] stamped with its write,
// Interval after the one before. Two streams on one kept-alive connection.
func TestStream(t *testing.T) {
	const delay = 20 * time.Millisecond
	addr := start(t, Config{Events: 5, Interval: delay, EventBytes: 300})
	client := &http.Client{Timeout: 10 * time.Second} // a stream that never ends fails rather than hangs
	var conns []string
	for i, body := range []string{
		`{"model":"m","stream":true,"messages":[]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
	} {
		before := time.Now().UnixNano()
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
		var local string
		req = req.WithContext(withConnTrace(req.Context(), &local))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.TransferEncoding[0] != "chunked" {
			t.Fatalf("stream %d: %d %q %v", i, resp.StatusCode, resp.Header.Get("Content-Type"), resp.TransferEncoding)
		}
		evs := readStream(t, bufio.NewReader(resp.Body))
		resp.Body.Close()
		after := time.Now().UnixNano()
		conns = append(conns, local)

		want := 6 // role, 3 content, finish, [DONE]
		if i == 1 {
			want++ // the usage
		}
		if len(evs) != want {
			t.Fatalf("stream %d: %d events, want %d", i, len(evs), want)
		}
		var last int64
		for j, e := range evs[:len(evs)-1] {
			digits, ok := strings.CutPrefix(e.raw, `{"sent_at_ns":`)
			if !ok || len(digits) < 20 || digits[19] != ',' {
				t.Fatalf("event %d without a 19-digit stamp first: %s", j, e.raw)
			}
			var v int64
			for _, c := range digits[:19] {
				v = v*10 + int64(c-'0')
			}
			if v < before || v > after || j > 0 && v-last < int64(delay) {
				t.Errorf("stream %d event %d stamped %d: want within [%d, %d] and %v after the one before (%d)", i, j, v, before, after, delay, last)
			}
			last = v
			choices, _ := e.chunk["choices"].([]any)
			switch {
			case j == 0:
				if d := choices[0].(map[string]any)["delta"].(map[string]any); d["role"] != "assistant" {
					t.Errorf("first event %s: want the role", e.raw)
				}
			case j <= 3:
				if size := len("data: ") + len(e.raw) + 2; size != 300 {
					t.Errorf("content event %d: %d bytes, want 300", j, size)
				}
			case j == 4:
				if choices[0].(map[string]any)["finish_reason"] != "stop" {
					t.Errorf("event 4 %s: want the finish", e.raw)
				}
			default:
				u := e.chunk["usage"].(map[string]any)
				if u["completion_tokens"] != 3.0 || u["total_tokens"] != u["prompt_tokens"].(float64)+3 {
					t.Errorf("usage %v, want 3 completion tokens", u)
				}
			}
		}
	}
	if conns[0] == "" || conns[0] != conns[1] {
		t.Errorf("the two streams came on connections %q and %q, want one kept alive", conns[0], conns[1])
	}
}

// TestOtherRequests: the model list, a completion not streamed, 404, and
// 400 with the connection closed for what it cannot read.
func TestOtherRequests(t *testing.T) {
	addr := start(t, Config{Events: 3})
	get := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	if code, v := get("GET", "/v1/models", ""); code != 200 || v["data"].([]any)[0].(map[string]any)["id"] != Model {
		t.Errorf("GET /v1/models: %d %v", code, v)
	}
	if code, v := get("POST", "/v1/chat/completions", `{"messages":[]}`); code != 200 || v["object"] != "chat.completion" {
		t.Errorf("a completion not streamed: %d %v", code, v)
	}
	if code, _ := get("POST", "/v1/embeddings", `{}`); code != 404 {
		t.Errorf("POST /v1/embeddings: %d, want 404", code)
	}
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GARBAGE\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 400 ") {
		t.Errorf("a request it cannot read: %q, %v; want 400 and the end of the connection", b, err)
	}
}

// TestLoad: the load generator's streams, 50 at once, complete, and each
// of their events is timed on its way.
func TestLoad(t *testing.T) {
	const events, gap = 6, 5 * time.Millisecond
	addr := start(t, Config{Events: events, Interval: gap})
	body := `{"model":"m","stream":true,"messages":[]}`
	s := &loadgen.Streams{Addr: addr, Request: rawhttp.Request(addr, "/v1/chat/completions", "", body), Conns: 50, Events: events,
		Start: time.Now().Add(10 * time.Millisecond), Ramp: 50 * time.Millisecond, Plateau: 300 * time.Millisecond}
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Truncated != 0 || res.Completed < 50 || res.Measured < 1 {
		t.Fatalf("%d completed, %d measured, %d errors, %d truncated; first error: %s", res.Completed, res.Measured, res.Errors, res.Truncated, res.FirstErr)
	}
	if res.Stamped != res.Measured*events || res.Transit50 <= 0 {
		t.Errorf("%d events timed of %d streams of %d; p50 on its way %v µs", res.Stamped, res.Measured, events, res.Transit50)
	}
}

// TestSlowClient: what a client's socket does not take waits in order
// and is written as the socket takes more (flush, on its EPOLLOUT), and
// a client that leaves more than maxPending untaken is dropped.
func TestSlowClient(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[1])
	syscall.SetsockoptInt(fds[0], syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(epfd)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fds[0], &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fds[0])}); err != nil {
		t.Fatal(err)
	}
	s := &Server{epfd: epfd}
	c := &conn{fd: fds[0]}
	var sent []byte
	for i := range 50 { // 200,000 bytes, far more than the socket holds
		b := bytes.Repeat([]byte{byte('a' + i%26)}, 4000)
		sent = append(sent, b...)
		s.write(c, b)
	}
	if len(c.out) == 0 || c.fd < 0 {
		t.Fatalf("%d bytes pending, fd %d: want some pending, the client kept", len(c.out), c.fd)
	}
	var got []byte
	buf := make([]byte, 64<<10)
	for tries := 0; len(got) < len(sent); tries++ {
		if tries > 10000 {
			t.Fatalf("%d of %d bytes arrived; the rest never did", len(got), len(sent))
		}
		n, err := syscall.Read(fds[1], buf)
		if err == syscall.EAGAIN {
			if !s.flush(c) {
				t.Fatal("flush dropped the client")
			}
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("after %d bytes: %d, %v", len(got), n, err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, sent) || len(c.out) != 0 {
		t.Fatalf("got %d bytes (%d pending), want the %d sent, in order", len(got), len(c.out), len(sent))
	}

	// More than maxPending untaken: dropped.
	for range maxPending/(64<<10) + 2 {
		s.write(c, make([]byte, 64<<10))
	}
	if c.fd >= 0 {
		t.Fatalf("%d bytes pending, the client kept", len(c.out))
	}
}
