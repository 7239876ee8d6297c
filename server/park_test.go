//go:build linux

package server_test

// Idle keep-alive connections park (Config.ParkIdleAfter): after a moment
// without a request a client connection is given up by fasthttp, and so
// holds no goroutine or buffer, and waits on the gateway's epoll set. Its
// next request wakes it and is served on the same connection; its client's
// close, the idle timeout, or Shutdown close it.

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authgate/authgate/server"
)

// parkAfter is the tests' ParkIdleAfter: short, so that they wait little.
const parkAfter = 50 * time.Millisecond

// parkUpstream answers every request 200 with a body naming its path and
// request body, and sends each request's path and body to got.
func parkUpstream(t *testing.T) (string, <-chan string) {
	got := make(chan string, 16)
	return echoUpstream(t, func(seen string) { got <- seen }), got
}

// echoUpstream answers every request 200 with a body naming its path and
// request body, having passed them to record.
func echoUpstream(t *testing.T, record func(seen string)) string {
	return startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, body, err := readRequest(br)
			if err != nil {
				return
			}
			seen := req.URL.Path + " " + string(body)
			record(seen)
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "+
				strconv.Itoa(len(seen))+"\r\n\r\n"+seen); err != nil {
				return
			}
		}
	})
}

// startParkGateway starts a gateway with ParkIdleAfter parkAfter and
// IdleTimeout idle, before upURL; it returns the gateway and its address.
func startParkGateway(t *testing.T, upURL string, idle time.Duration) (*gateway, string) {
	t.Helper()
	return startParkGatewayLogging(t, upURL, idle, nil)
}

// startParkGatewayLogging is startParkGateway with the gateway's log
// written to logs (nil: discarded).
func startParkGatewayLogging(t *testing.T, upURL string, idle time.Duration, logs io.Writer) (*gateway, string) {
	t.Helper()
	cfg := server.Config{
		KeysFile: defaultKeys(t), Upstreams: []string{upURL}, HealthCheckInterval: noChecks,
		ParkIdleAfter: parkAfter, IdleTimeout: idle, DefaultRPM: 10_000,
	}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	g := startGateway(t, cfg)
	return g, strings.TrimPrefix(g.url, "http://")
}

// waitFor waits, up to waitLimit, for cond to hold.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(waitLimit); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("still not %s after %v", what, waitLimit)
		}
	}
}

// parkClient is one client connection to the gateway.
type parkClient struct {
	c  net.Conn
	br *bufio.Reader
}

func dialPark(t *testing.T, addr string) *parkClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &parkClient{c: c, br: bufio.NewReader(c)}
}

// request writes raw and reads the response, returning its status and
// body.
func (pc *parkClient) request(t *testing.T, raw string) (int, string) {
	t.Helper()
	if _, err := io.WriteString(pc.c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	return pc.response(t)
}

func (pc *parkClient) response(t *testing.T) (int, string) {
	t.Helper()
	pc.c.SetReadDeadline(time.Now().Add(waitLimit))
	resp, err := http.ReadResponse(pc.br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// closedByGateway reports whether the gateway closed the connection: a
// read ends (EOF or reset) with nothing read, within waitLimit.
func (pc *parkClient) closedByGateway(t *testing.T) {
	t.Helper()
	pc.c.SetReadDeadline(time.Now().Add(waitLimit))
	if n, err := pc.br.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("the gateway did not close the connection: read %d bytes, %v", n, err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func chatRequest(body string) string {
	return "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + keyAlice +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func upstreamGot(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case s := <-got:
		if s != want {
			t.Fatalf("upstream got %q, want %q", s, want)
		}
	case <-time.After(waitLimit):
		t.Fatalf("upstream got nothing, want %q", want)
	}
}

// TestIdleConnectionParks: a connection idle for ParkIdleAfter leaves
// fasthttp (which no longer counts it) for the parked set; its next
// request, on the same connection, is served and reaches the upstream
// whole; it is counted open throughout, and parks again once idle.
func TestIdleConnectionParks(t *testing.T) {
	upURL, got := parkUpstream(t)
	g, addr := startParkGateway(t, upURL, time.Minute)
	pc := dialPark(t, addr)
	for i, body := range []string{`{"model":"m","n":1}`, `{"model":"m","n":2}`, `{"model":"m","n":3}`} {
		if s, b := pc.request(t, chatRequest(body)); s != 200 || b != "/v1/chat/completions "+body {
			t.Fatalf("request %d: %d %q", i+1, s, b)
		}
		upstreamGot(t, got, "/v1/chat/completions "+body)
		waitFor(t, "parked", func() bool { return server.ParkedConns(g.Gateway) == 1 })
		if n := server.ServedConns(g.Gateway); n != 0 {
			t.Fatalf("after request %d, fasthttp still serves %d connections with one parked", i+1, n)
		}
	}
	lines := g.logLines(t)
	if len(lines) != 3 {
		t.Fatalf("access log has %d lines, want 3: %q", len(lines), lines)
	}
}

// TestParkedConnectionCloses: a parked connection is closed at its idle
// timeout, and forgotten when its client closes it; either way its count
// against MAX_CONNS is released.
func TestParkedConnectionCloses(t *testing.T) {
	upURL, got := parkUpstream(t)
	t.Run("idle timeout", func(t *testing.T) {
		g, pc := parkedClient(t, upURL, got, 300*time.Millisecond)
		pc.closedByGateway(t)
		if n := server.ParkedConns(g.Gateway); n != 0 {
			t.Fatalf("%d parked after the idle timeout", n)
		}
		waitFor(t, "uncounted", func() bool { return server.OpenConns(g.Gateway) == 0 })
	})
	t.Run("client closes", func(t *testing.T) {
		g, pc := parkedClient(t, upURL, got, time.Minute)
		pc.c.Close()
		waitFor(t, "closed", func() bool {
			return server.ParkedConns(g.Gateway) == 0 && server.OpenConns(g.Gateway) == 0 && server.ServedConns(g.Gateway) == 0
		})
	})
	t.Run("shutdown", func(t *testing.T) {
		g, pc := parkedClient(t, upURL, got, time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		pc.closedByGateway(t)
		if n := server.OpenConns(g.Gateway); n != 0 {
			t.Fatalf("%d connections counted open after Shutdown", n)
		}
	})
}

// parkedClient starts a gateway as startParkGateway does and returns it
// with a client connection that has made one request and parked.
func parkedClient(t *testing.T, upURL string, got <-chan string, idle time.Duration) (*gateway, *parkClient) {
	t.Helper()
	g, addr := startParkGateway(t, upURL, idle)
	pc := dialPark(t, addr)
	if s, _ := pc.request(t, chatRequest(`{}`)); s != 200 {
		t.Fatalf("status %d", s)
	}
	upstreamGot(t, got, "/v1/chat/completions {}")
	waitFor(t, "parked", func() bool { return server.ParkedConns(g.Gateway) == 1 })
	return g, pc
}

// TestParkingSlowRequests: a request whose first bytes arrive before the
// connection parks is read whole however slowly the rest comes (it is not
// idle: parking would cut it), whether they came alone or pipelined behind
// the request before; one whose bytes come in pieces after the connection
// parked is read whole too, from the parked socket.
func TestParkingSlowRequests(t *testing.T) {
	upURL, got := parkUpstream(t)
	g, addr := startParkGateway(t, upURL, time.Minute)
	body := `{"model":"m","slow":true}`
	raw := chatRequest(body)
	pc := dialPark(t, addr)
	if s, _ := pc.request(t, chatRequest(`{}`)); s != 200 {
		t.Fatalf("status %d", s)
	}
	upstreamGot(t, got, "/v1/chat/completions {}")

	// Started at once: the rest comes after the time a connection parks.
	io.WriteString(pc.c, raw[:10])
	waitFor(t, "served", func() bool { return server.ServedConns(g.Gateway) == 1 })
	time.Sleep(4 * parkAfter) // longer than ParkIdleAfter, with the request begun
	if n := server.ParkedConns(g.Gateway); n != 0 {
		t.Fatalf("a connection with a request begun was parked (%d)", n)
	}
	if s, b := pc.request(t, raw[10:]); s != 200 || b != "/v1/chat/completions "+body {
		t.Fatalf("request begun before parking: %d %q", s, b)
	}
	upstreamGot(t, got, "/v1/chat/completions "+body)

	// Pipelined: begun in the same write as the request before it, so
	// already read when the connection goes idle; the rest comes later.
	first := chatRequest(`{"model":"m","before":true}`)
	io.WriteString(pc.c, first+raw[:10])
	if s, b := pc.response(t); s != 200 || b != "/v1/chat/completions "+`{"model":"m","before":true}` {
		t.Fatalf("the request before the pipelined one: %d %q", s, b)
	}
	upstreamGot(t, got, "/v1/chat/completions "+`{"model":"m","before":true}`)
	time.Sleep(4 * parkAfter)
	if s, b := pc.request(t, raw[10:]); s != 200 || b != "/v1/chat/completions "+body {
		t.Fatalf("pipelined request: %d %q", s, b)
	}
	upstreamGot(t, got, "/v1/chat/completions "+body)

	// Started after parking, in two pieces.
	waitFor(t, "parked", func() bool { return server.ParkedConns(g.Gateway) == 1 })
	io.WriteString(pc.c, raw[:10])
	waitFor(t, "woken", func() bool { return server.ParkedConns(g.Gateway) == 0 })
	if s, b := pc.request(t, raw[10:]); s != 200 || b != "/v1/chat/completions "+body {
		t.Fatalf("request begun after parking: %d %q", s, b)
	}
	upstreamGot(t, got, "/v1/chat/completions "+body)
}

// TestParkingChurn: many clients whose pauses between requests fall on
// either side of ParkIdleAfter, so that connections park and wake while
// others are served, each request on the connection it was sent on; some
// clients close while parked. Every response must be the answer to its
// own request, every request must reach the upstream once, and nothing
// may stay parked or counted open once every client has gone.
func TestParkingChurn(t *testing.T) {
	const clients, requests = 48, 12
	upURL, got := parkUpstreamCounting(t)
	g, addr := startParkGateway(t, upURL, time.Minute)
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			errs <- func() error {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return err
				}
				defer c.Close()
				br := bufio.NewReader(c)
				for j := range requests {
					// 0 to 2.75 × ParkIdleAfter, by client and request.
					time.Sleep(time.Duration((i*7+j*5)%12) * parkAfter / 4)
					body := `{"client":` + strconv.Itoa(i) + `,"request":` + strconv.Itoa(j) + `}`
					if _, err := io.WriteString(c, chatRequest(body)); err != nil {
						return err
					}
					c.SetReadDeadline(time.Now().Add(waitLimit))
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						return err
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						return err
					}
					if want := "/v1/chat/completions " + body; resp.StatusCode != 200 || string(b) != want {
						return &wrongAnswer{resp.StatusCode, string(b), want}
					}
				}
				return nil
			}()
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := got.total(); n != clients*requests {
		t.Errorf("the upstream got %d requests, want %d", n, clients*requests)
	}
	waitFor(t, "all closed", func() bool {
		return server.ParkedConns(g.Gateway) == 0 && server.OpenConns(g.Gateway) == 0 && server.ServedConns(g.Gateway) == 0
	})
}

type wrongAnswer struct {
	status     int
	body, want string
}

func (w *wrongAnswer) Error() string {
	return "answer " + strconv.Itoa(w.status) + " " + strconv.Quote(w.body) + ", want 200 " + strconv.Quote(w.want)
}

// requestCount counts the requests an upstream got, and each distinct one.
type requestCount struct {
	mu   sync.Mutex
	seen map[string]int
}

func (rc *requestCount) total() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, k := range rc.seen {
		if k != 1 {
			return -k // a request that arrived twice: never the count wanted
		}
		n += k
	}
	return n
}

// parkUpstreamCounting is parkUpstream recording every request it got.
func parkUpstreamCounting(t *testing.T) (string, *requestCount) {
	rc := &requestCount{seen: map[string]int{}}
	return echoUpstream(t, func(seen string) {
		rc.mu.Lock()
		rc.seen[seen]++
		rc.mu.Unlock()
	}), rc
}

// TestParkedConnectionErrorLogged: a malformed request on a connection
// that parked is answered 400 and logged, as on a fresh connection (by
// fasthttp's worker pool there, by the gateway for a woken one), without
// the request's bytes. One gateway each: the log is throttled.
func TestParkedConnectionErrorLogged(t *testing.T) {
	upURL, got := parkUpstream(t)
	const malformed = "GET /healthz HTTP/1.1\r\nHost: gw\r\nBad\x01Header: secret-bytes\r\n\r\n"
	for _, parked := range []bool{false, true} {
		var logs syncBuffer
		g, addr := startParkGatewayLogging(t, upURL, time.Minute, &logs)
		pc := dialPark(t, addr)
		if parked {
			if s, _ := pc.request(t, chatRequest(`{}`)); s != 200 {
				t.Fatalf("status %d", s)
			}
			upstreamGot(t, got, "/v1/chat/completions {}")
			waitFor(t, "parked", func() bool { return server.ParkedConns(g.Gateway) == 1 })
		}
		if s, _ := pc.request(t, malformed); s != 400 {
			t.Fatalf("parked %v: malformed request answered %d, want 400", parked, s)
		}
		waitFor(t, "logged", func() bool { return strings.Contains(logs.String(), "error when serving connection") })
		if l := logs.String(); strings.Contains(l, "secret-bytes") || !strings.Contains(l, "cannot read the request") {
			t.Fatalf("parked %v: log: %s", parked, l)
		}
	}
}
