//go:build linux

package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/internal/relay"
)

// wrapListener wraps each connection it accepts as the gateway's
// listener does (netconn.Wrap), so that its streams may be relayed.
type wrapListener struct{ net.Listener }

func (l wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return netconn.Wrap(c, netconn.Options{}), nil
}

// startRelayFront serves p, whose streams go to its relay, on a loopback
// port, and returns its address.
func startRelayFront(t *testing.T, p *Proxy) string {
	t.Helper()
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { p.Serve(ctx) }, KeepHijackedConns: true}
	ln := listenLoopback(t)
	go s.Serve(wrapListener{ln})
	t.Cleanup(func() { _ = s.Shutdown() })
	return ln.Addr().String()
}

// streamRequest sends a streamed chat completion on a new connection to
// addr and returns the connection and its reader.
func streamRequest(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := `{"model":"m1","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

// readStream reads a whole streamed response from br, failing the test
// unless it is a 200 whose events end with [DONE].
func readStream(t *testing.T, br *bufio.Reader) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
		t.Fatalf("stream: %d %v %q", resp.StatusCode, err, b)
	}
}

// TestRelayReservedBeforeHijack: the relay counts a stream from the
// handler on, before fasthttp calls the hijack handler that starts it, so
// that a stop that waits for the relay (the server's Shutdown does not
// wait for hijack handlers) waits for the stream; and a stream whose
// relay has closed is written by fasthttp, whole.
func TestRelayReservedBeforeHijack(t *testing.T) {
	up := startUpstream(t, "m1")
	r, err := relay.New(relay.Config{Loops: 1})
	if err != nil {
		t.Skipf("no relay here: %v", err)
	}
	t.Cleanup(r.Close)
	p, _, _ := startProxy(t, Config{Upstreams: []string{up.url}, Relay: r})
	held, resume := make(chan struct{}), make(chan struct{})
	p.hijackHook = func() {
		held <- struct{}{}
		<-resume
	}
	addr := startRelayFront(t, p)
	stopped, cancel := context.WithCancel(context.Background())
	cancel()

	_, br := streamRequest(t, addr)
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream was not hijacked")
	}
	if n := r.Active(); n != 1 {
		t.Errorf("Active() = %d between the handler and the hijack handler; want 1", n)
	}
	if err := r.Wait(stopped); err == nil {
		t.Error("Wait returned nil with a stream about to be relayed")
	}
	resume <- struct{}{}
	readStream(t, br)
	wait, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Wait(wait); err != nil {
		t.Fatalf("Wait after the stream: %v (Active %d)", err, r.Active())
	}

	// The relay closed: the next stream is fasthttp's, and whole.
	r.Close()
	p.hijackHook = func() { t.Error("a stream was hijacked after the relay closed") }
	_, br = streamRequest(t, addr)
	readStream(t, br)
	if n := r.Active(); n != 0 {
		t.Errorf("Active() = %d after the relay closed; want 0", n)
	}
}
