package server_test

// Upstream faults under load: refused connections, resets in the
// middle of a body and of an event stream, a hung upstream and one that
// answers garbage, beside a healthy upstream in the same gateway. Every
// response must be the right OpenAI-shaped error, or a stream that ends
// truncated, never hung; afterwards the gateway must hold no more
// goroutines, file descriptors or pooled connections than before.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authgate/authgate/server"
)

const (
	faultRequests = 10_000
	faultWorkers  = 32
	// faultMargin is how many goroutines or file descriptors above its
	// baseline the process may hold once the load is over: the runtime
	// and the test's own client may keep one or two a little longer.
	faultMargin = 4
	// drainLimit bounds the wait for the count to come back: pooled
	// upstream connections are closed after 4 s idle.
	drainLimit = 20 * time.Second
)

const (
	healthyBody = `{"id":"chatcmpl-ok","object":"chat.completion"}`
	firstEvent  = "data: {\"id\":\"0\"}\n\n"
)

var healthyResponse = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
	strconv.Itoa(len(healthyBody)) + "\r\n\r\n" + healthyBody

// startFaultGateway starts a gateway for TestUpstreamFaults: alice's key
// never limited, health checks off (every request reaches the upstream it
// is balanced to, faulty or not), idle fasthttp workers ended after 100 ms
// rather than 10 s so that goroutines can be counted, and a Shutdown at the
// end of the test.
func startFaultGateway(t *testing.T, timeout time.Duration, upstreams ...string) (*server.Gateway, string) {
	t.Helper()
	g, err := server.New(server.Config{
		KeysFile:            defaultKeys(t),
		DefaultRPM:          2 * faultRequests,
		Upstreams:           upstreams,
		HealthCheckInterval: noChecks,
		UpstreamTimeout:     timeout,
		AccessLog:           filepath.Join(t.TempDir(), "access.log"),
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	server.SetMaxIdleWorkerDuration(g, 100*time.Millisecond)
	ln, err := server.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return g, "http://" + ln.Addr().String()
}

// healthyUpstream answers every request 200 with healthyBody, keeping its
// connections alive.
func healthyUpstream(t *testing.T) string {
	return startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, healthyResponse); err != nil {
				return
			}
		}
	})
}

// chaosUpstream fails by path:
//
//   - /v1/reset-body: a head announcing 1000 bytes, 10 of them, then a
//     reset (RST: SO_LINGER 0 and close);
//   - /v1/reset-stream: an event-stream head and one event, then, once the
//     client says it has the event (signals, by X-Request-Id), a reset;
//   - /v1/garbage: bytes that are not HTTP, the connection left open;
//
// and answers anything else as healthyUpstream does.
func chaosUpstream(t *testing.T, signals *sync.Map) string {
	return startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		reset := func() { c.(*net.TCPConn).SetLinger(0) } // the deferred Close then sends RST
		for {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/v1/reset-body":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n0123456789")
				reset()
				return
			case "/v1/reset-stream":
				io.WriteString(c, sseHead)
				writeChunk(c, firstEvent)
				id := req.Header.Get("X-Request-Id")
				ch, _ := signals.LoadOrStore(id, make(chan struct{}))
				select {
				case <-ch.(chan struct{}):
				case <-time.After(waitLimit):
				}
				signals.Delete(id)
				reset()
				return
			case "/v1/garbage":
				io.WriteString(c, "\x00\x01\x02 not HTTP at all \xff\r\n\r\n")
				br.ReadByte() // until the gateway closes the connection
				return
			default:
				if _, err := io.WriteString(c, healthyResponse); err != nil {
					return
				}
			}
		}
	})
}

// hungUpstream reads each request and never answers it.
func hungUpstream(t *testing.T) string {
	return startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err == nil {
			br.ReadByte() // until the gateway closes the connection
		}
	})
}

// openFDs returns the number of the process's open file descriptors, or -1
// where /proc/self/fd does not list them.
func openFDs() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds)
}

// faultKind is one kind of request of the load, and what may answer it.
type faultKind struct {
	url string
	// check reads resp and names its outcome, or says what is wrong.
	check func(resp *http.Response, signal func()) (string, error)
}

// checkHealthy accepts only the healthy upstream's answer.
func checkHealthy(resp *http.Response, body []byte) (string, error) {
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(body) != healthyBody {
		return "", fmt.Errorf("status %d, Content-Type %q, body %.200q; want the healthy upstream's 200",
			resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return "200", nil
}

// checkAPIError accepts only status with OpenAI's error shape and code.
func checkAPIError(resp *http.Response, body []byte, status int, code string) (string, error) {
	var e struct {
		Error struct {
			Type string `json:"type"`
			Code string `json:"code"`
		} `json:"error"`
	}
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal(body, &e) != nil || e.Error.Type != "api_error" || e.Error.Code != code {
		return "", fmt.Errorf("status %d, Content-Type %q, body %.200q; want %d api_error %s",
			resp.StatusCode, resp.Header.Get("Content-Type"), body, status, code)
	}
	return strconv.Itoa(status), nil
}

// healthyOr checks a response from a gateway whose request went either to
// the healthy upstream or to the faulty one, answered with status and code.
func healthyOr(status int, code string) func(*http.Response, func()) (string, error) {
	return func(resp *http.Response, _ func()) (string, error) {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", fmt.Errorf("status %d: body: %w", resp.StatusCode, err)
		}
		if resp.StatusCode == 200 {
			return checkHealthy(resp, body)
		}
		return checkAPIError(resp, body, status, code)
	}
}

// TestUpstreamFaults sends 10,000 requests, 32 at a time, through three
// gateways:
//
//   - mixed: a healthy upstream, the chaos upstream (resets mid-body and
//     mid-stream, garbage) and a refused port, balanced (a refused
//     connection is retried on another upstream). A request answered by the
//     healthy upstream must come back 200 with its body, whatever its path;
//     one answered by the chaos upstream 502 upstream_unavailable, or for a
//     reset stream 200 with its first event and then a truncated body;
//   - hung: an upstream that never answers, with UpstreamTimeout 100 ms:
//     504 upstream_timeout;
//   - refused: a refused port alone: 502 upstream_unavailable.
//
// Afterwards no request is in flight, no pool holds more idle connections
// than its cap or than there were concurrent requests, and the process's
// goroutines and file descriptors come back to their baseline (within
// faultMargin) once the idle connections have timed out.
func TestUpstreamFaults(t *testing.T) {
	var signals sync.Map // X-Request-Id → chan struct{}, for /v1/reset-stream
	mixed, mixedURL := startFaultGateway(t, 2*waitLimit, healthyUpstream(t), chaosUpstream(t, &signals), deadURL(t))
	hung, hungURL := startFaultGateway(t, 100*time.Millisecond, hungUpstream(t))
	refused, refusedURL := startFaultGateway(t, 2*waitLimit, deadURL(t))
	gateways := map[string]*server.Gateway{"mixed": mixed, "hung": hung, "refused": refused}

	tr := &http.Transport{MaxIdleConnsPerHost: faultWorkers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 4 * waitLimit}

	kinds := map[string]faultKind{
		"ok":         {url: mixedURL + "/v1/chat/completions", check: healthyOr(0, "")},
		"reset-body": {url: mixedURL + "/v1/reset-body", check: healthyOr(502, "upstream_unavailable")},
		"garbage":    {url: mixedURL + "/v1/garbage", check: healthyOr(502, "upstream_unavailable")},
		"reset-stream": {url: mixedURL + "/v1/reset-stream", check: func(resp *http.Response, signal func()) (string, error) {
			if resp.Header.Get("Content-Type") != "text/event-stream" {
				return healthyOr(0, "")(resp, signal)
			}
			first := make([]byte, len(firstEvent))
			if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != firstEvent || resp.StatusCode != 200 {
				return "", fmt.Errorf("status %d, first event %q, %v; want 200 and %q", resp.StatusCode, first, err, firstEvent)
			}
			signal()
			rest, err := io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				return "", fmt.Errorf("after the reset the stream ended with %q, %v; want it truncated (unexpected EOF)", rest, err)
			}
			return "truncated", nil
		}},
		"hung": {url: hungURL + "/v1/chat/completions", check: func(resp *http.Response, _ func()) (string, error) {
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return "", err
			}
			return checkAPIError(resp, body, 504, "upstream_timeout")
		}},
		"refused": {url: refusedURL + "/v1/chat/completions", check: func(resp *http.Response, _ func()) (string, error) {
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return "", err
			}
			return checkAPIError(resp, body, 502, "upstream_unavailable")
		}},
	}
	// One round of the mix: a hung request holds its worker 100 ms, so
	// there is one in 16.
	plan := []string{"ok", "reset-body", "reset-stream", "garbage", "ok", "refused", "reset-body", "reset-stream",
		"garbage", "ok", "reset-body", "reset-stream", "garbage", "ok", "refused", "hung"}

	send := func(i int, kindName string) (string, error) {
		k := kinds[kindName]
		req, err := http.NewRequest("POST", k.url, strings.NewReader(`{"model":"m","messages":[]}`))
		if err != nil {
			return "", err
		}
		id := "fault-" + strconv.Itoa(i)
		req.Header.Set("Authorization", "Bearer "+keyAlice)
		req.Header.Set("X-Request-Id", id)
		resp, err := cl.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if got := resp.Header.Get("X-Request-Id"); got != id {
			return "", fmt.Errorf("X-Request-Id %q, want %q", got, id)
		}
		signal := func() {
			ch, _ := signals.LoadOrStore(id, make(chan struct{}))
			close(ch.(chan struct{}))
		}
		return k.check(resp, signal)
	}

	// Baseline: every server up, one request through each gateway (their
	// accept loops run), the client's connections closed again.
	for i, name := range []string{"ok", "hung", "refused"} {
		if _, err := send(-1-i, name); err != nil {
			t.Fatalf("warm-up %s: %v", name, err)
		}
	}
	tr.CloseIdleConnections()
	baseG, baseFD := settle(t)

	var (
		next           atomic.Int64
		mu             sync.Mutex
		outcomes       = map[string]map[string]int{}
		failures       []string
		peakG, peakFD  atomic.Int64
		wg             sync.WaitGroup
		samplerStop    = make(chan struct{})
		samplerStopped = make(chan struct{})
		start          = time.Now()
	)
	go func() { // peaks, for the report
		defer close(samplerStopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if n := int64(runtime.NumGoroutine()); n > peakG.Load() {
				peakG.Store(n)
			}
			if n := int64(openFDs()); n > peakFD.Load() {
				peakFD.Store(n)
			}
			select {
			case <-samplerStop:
				return
			case <-tick.C:
			}
		}
	}()
	for w := 0; w < faultWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= faultRequests {
					return
				}
				kind := plan[i%len(plan)]
				outcome, err := send(i, kind)
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("request %d (%s): %v", i, kind, err))
					if len(failures) >= 10 {
						next.Store(faultRequests) // enough to go on
					}
				} else {
					if outcomes[kind] == nil {
						outcomes[kind] = map[string]int{}
					}
					outcomes[kind][outcome]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(samplerStop)
	<-samplerStopped
	elapsed := time.Since(start)
	for _, f := range failures {
		t.Error(f)
	}
	if len(failures) > 0 {
		t.FailNow()
	}
	t.Logf("%d requests in %v, %d at a time: %v", faultRequests, elapsed.Round(time.Millisecond), faultWorkers, outcomes)
	// Each fault must have happened, and the healthy upstream must have
	// answered beside it: otherwise this test proves nothing.
	for kind, want := range map[string]string{"reset-body": "502", "garbage": "502", "reset-stream": "truncated", "hung": "504", "refused": "502"} {
		if outcomes[kind][want] == 0 {
			t.Errorf("%s: no request got %s: %v", kind, want, outcomes[kind])
		}
	}
	for _, kind := range []string{"ok", "reset-body", "garbage", "reset-stream"} {
		if outcomes[kind]["200"] == 0 {
			t.Errorf("%s: the healthy upstream answered none: %v", kind, outcomes[kind])
		}
	}

	// Nothing in flight, and no pool above its cap, or above the number of
	// requests that could ever hold a connection at once.
	poolsIdle := func() (idle int) {
		for name, g := range gateways {
			for _, s := range server.UpstreamPoolStats(g) {
				idle += s.Idle
				if s.Idle > s.MaxIdle || s.Idle > faultWorkers {
					t.Errorf("%s: %s holds %d idle connections (cap %d, %d concurrent requests)", name, s.Upstream, s.Idle, s.MaxIdle, faultWorkers)
				}
			}
		}
		return idle
	}
	eventually(t, "no request in flight after the load", func() bool {
		for _, g := range gateways {
			for _, s := range server.UpstreamPoolStats(g) {
				if s.InFlight != 0 {
					return false
				}
			}
		}
		return true
	})
	idleAfter := poolsIdle()

	// The client leaves; the gateway's idle upstream connections time out.
	tr.CloseIdleConnections()
	deadline := time.Now().Add(drainLimit)
	var g, fd int
	for {
		g, fd = runtime.NumGoroutine(), openFDs()
		if g <= baseG+faultMargin && fd <= baseFD+faultMargin {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%v after the load: %d goroutines (baseline %d), %d open file descriptors (baseline %d), %d idle upstream connections",
				drainLimit, g, baseG, fd, baseFD, poolsIdle())
			buf := make([]byte, 1<<20)
			t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("goroutines: baseline %d, peak %d, after %d; open fds: baseline %d, peak %d, after %d; idle upstream connections: %d right after the load, %d at the end (%v after it)",
		baseG, peakG.Load(), g, baseFD, peakFD.Load(), fd, idleAfter, poolsIdle(), time.Since(start.Add(elapsed)).Round(time.Millisecond))
}

// settle waits until the goroutine and file-descriptor counts have held
// still for a quarter of a second, and returns them.
func settle(t *testing.T) (goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(drainLimit)
	still := 0
	g, fd := runtime.NumGoroutine(), openFDs()
	for still < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines and fds not still within %v: %d, %d", drainLimit, g, fd)
		}
		time.Sleep(50 * time.Millisecond)
		g2, fd2 := runtime.NumGoroutine(), openFDs()
		if g2 == g && fd2 == fd {
			still++
		} else {
			g, fd, still = g2, fd2, 0
		}
	}
	return g, fd
}
