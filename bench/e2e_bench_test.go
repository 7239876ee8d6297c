package bench_test

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/redistest"
	"github.com/authgate/authgate/limiter/redis"
	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// Every scenario sends the same request: a small chat completion with an
// Authorization header, so that the servers parse the same bytes and only
// what they do with them differs.
const (
	chatURI  = "/v1/chat/completions"
	chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}]}`

	keyValid   = "sk-bench-valid-0123456789abcdef"   // key_id "bench", rpm sized to the run
	keyLimited = "sk-bench-limited-0123456789abcdef" // key_id "limited", rpm=1
	keyUnknown = "sk-unknown-0123456789abcdef"       // valid format, in no key set
)

// parallelism is the b.SetParallelism of every benchmark: RunParallel runs
// parallelism*GOMAXPROCS client goroutines, each with a request in flight,
// enough to keep every server busy while the others wait on a pipe.
const parallelism = 4

var (
	strJSON = []byte("application/json")

	// body401 is the gateway's body for an unknown key (docs/http.md#authentication), which the
	// ceiling server answers too.
	body401 = []byte(`{"error":{"message":"Invalid API key","type":"invalid_request_error","param":"authorization","code":"invalid_api_key"}}`)

	// body200 is a chat completion of the mock upstream's shape and size.
	body200 = []byte(`{"id":"chatcmpl-mock-1","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock upstream."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":33,"completion_tokens":5,"total_tokens":38}}`)

	// clientAddr is the remote address the gateway sees, so that it appends
	// it to X-Forwarded-For as it does for TCP clients (an in-memory
	// connection's own address is not a *net.TCPAddr).
	clientAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 50000}
)

// ceilingHandler is the ceiling: the least a fasthttp server can do to
// answer 401, with the gateway's body.
func ceilingHandler(ctx *fasthttp.RequestCtx) {
	ctx.Response.SetStatusCode(fasthttp.StatusUnauthorized)
	ctx.Response.Header.SetContentTypeBytes(strJSON)
	ctx.Response.SetBodyRaw(body401)
}

// fixedHandler is the minimal upstream: 200 with a fixed chat completion,
// whatever the request.
func fixedHandler(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetContentTypeBytes(strJSON)
	ctx.Response.SetBodyRaw(body200)
}

// upstreams are the upstream handlers, by name: the fixed one for a clean
// measure of the proxy, the mock (which parses the JSON body) for a
// realistic one.
var upstreams = []struct {
	name    string
	handler func() fasthttp.RequestHandler
}{
	{"fixed", func() fasthttp.RequestHandler { return fixedHandler }},
	{"mock", func() fasthttp.RequestHandler { return mockupstream.New(mockupstream.Config{}).Handler }},
}

// logModes are the gateway's access-log settings: none, the text line of docs/operations.md#access-log
// lines, JSON lines; the files are in the test's temporary directory.
var logModes = []string{"off", "text", "json"}

// newServer returns a fasthttp server for h with the gateway's own wire
// settings (no Server header, no default Content-Type), so that the
// baselines answer with the same headers as the gateway.
func newServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               h,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
	}
}

// serve runs serve(ln) until the test ends; then it calls shutdown and
// checks that both succeeded.
func serve(tb testing.TB, ln net.Listener, serve func(net.Listener) error, shutdown func(context.Context) error) {
	done := make(chan error, 1)
	go func() { done <- serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
}

// serveInmem serves on an in-memory listener until the test ends and
// returns a client whose connections are pipes to it.
func serveInmem(tb testing.TB, s func(net.Listener) error, shutdown func(context.Context) error) *fasthttp.HostClient {
	ln := fasthttputil.NewInmemoryListener()
	serve(tb, ln, s, shutdown)
	c := &fasthttp.HostClient{
		Addr:     "authgate.bench",
		Dial:     func(string) (net.Conn, error) { return ln.DialWithLocalAddr(clientAddr) },
		MaxConns: 1024,
	}
	tb.Cleanup(c.CloseIdleConnections)
	return c
}

// serveTCP serves on a loopback TCP port until the test ends and returns
// its address.
func serveTCP(tb testing.TB, s func(net.Listener) error, shutdown func(context.Context) error) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	serve(tb, ln, s, shutdown)
	return ln.Addr().String()
}

// startGateway starts a gateway in front of the upstream at upstreamAddr, on
// an in-memory listener, with keyValid at rpm and keyLimited at rpm=1, and
// returns a client connected to it. log is one of logModes.
func startGateway(tb testing.TB, upstreamAddr, log string, rpm int) *fasthttp.HostClient {
	return startGatewayRedis(tb, upstreamAddr, log, rpm, "")
}

// startGatewayRedis is startGateway with its limits shared through the
// Redis at redisURL ("" for the in-process limiter).
func startGatewayRedis(tb testing.TB, upstreamAddr, log string, rpm int, redisURL string) *fasthttp.HostClient {
	return startGatewayTo(tb, []string{"http://" + upstreamAddr}, log, rpm, redisURL)
}

// startGatewayTo is startGatewayRedis with UPSTREAM_URL's items given
// whole.
func startGatewayTo(tb testing.TB, upstreams []string, log string, rpm int, redisURL string) *fasthttp.HostClient {
	if rpm > auth.MaxRPM {
		tb.Fatalf("%d requests to admit: more than the largest rpm, %d; use a smaller -benchtime", rpm, auth.MaxRPM)
	}
	keys, warnings := auth.NewKeySet([]auth.Entry{
		{Line: 1, KeyID: "bench", Digest: sha256.Sum256([]byte(keyValid)), Settings: auth.Settings{RPM: rpm}},
		{Line: 2, KeyID: "limited", Digest: sha256.Sum256([]byte(keyLimited)), Settings: auth.Settings{RPM: 1}},
	})
	if len(warnings) > 0 {
		tb.Fatal(warnings[0])
	}
	cfg := server.Config{
		Keys:      keys,
		Upstreams: upstreams,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if redisURL != "" {
		r, err := redis.New(redis.Config{URL: redisURL})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(r.Close)
		cfg.Limiter = r
	}
	switch log {
	case "off":
	case "text":
		cfg.AccessLog = filepath.Join(tb.TempDir(), "access.log")
	case "json":
		cfg.AccessLog = filepath.Join(tb.TempDir(), "access.log")
		cfg.AccessLogFormat = logsink.FormatJSON
	default:
		tb.Fatalf("unknown log mode %q", log)
	}
	g, err := server.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return serveInmem(tb, g.Serve, g.Shutdown)
}

// scenario is one benchmark's setup: the servers, the key sent, and the
// statuses expected.
type scenario struct {
	// setup starts the servers and returns the client to load them with;
	// admit is how many requests with keyValid must be admitted (the
	// warm-up included).
	setup func(tb testing.TB, admit int) *fasthttp.HostClient
	key   string
	warm  int // status of the one warm-up request
	want  int // status of every request after it
	// latency, when set, times every request and reports the p50 and p99
	// latencies (µs) as well as ns/op.
	latency bool
	// conns is how many requests are in flight (client goroutines); zero
	// means parallelism*GOMAXPROCS.
	conns int
}

// ceiling is BenchmarkCeiling401: a bare fasthttp server answering 401.
func ceiling() scenario {
	return scenario{
		setup: func(tb testing.TB, _ int) *fasthttp.HostClient {
			s := newServer(ceilingHandler)
			return serveInmem(tb, s.Serve, s.ShutdownWithContext)
		},
		key:  keyUnknown,
		warm: fasthttp.StatusUnauthorized,
		want: fasthttp.StatusUnauthorized,
	}
}

// gatewayReject is BenchmarkGatewayReject: the gateway answering 401 to an
// unknown key. The upstream is never reached.
func gatewayReject(log string) scenario {
	return scenario{
		setup: func(tb testing.TB, admit int) *fasthttp.HostClient {
			s := newServer(fixedHandler)
			return startGateway(tb, serveTCP(tb, s.Serve, s.ShutdownWithContext), log, admit)
		},
		key:  keyUnknown,
		warm: fasthttp.StatusUnauthorized,
		want: fasthttp.StatusUnauthorized,
	}
}

// gatewayReject429 is BenchmarkGatewayReject429: the gateway answering 429
// to a key with rpm=1 whose one request (the warm-up) is in the window.
func gatewayReject429(log string) scenario {
	return scenario{
		setup: func(tb testing.TB, admit int) *fasthttp.HostClient {
			s := newServer(fixedHandler)
			return startGateway(tb, serveTCP(tb, s.Serve, s.ShutdownWithContext), log, admit)
		},
		key:  keyLimited,
		warm: fasthttp.StatusOK,
		want: fasthttp.StatusTooManyRequests,
	}
}

// upstreamDirect is BenchmarkUpstreamDirect: the client straight to the
// upstream, over a pipe (inmem) or over loopback TCP (tcp, the transport
// the gateway uses to reach its upstream).
func upstreamDirect(h fasthttp.RequestHandler, network string) scenario {
	return scenario{
		setup: func(tb testing.TB, _ int) *fasthttp.HostClient {
			s := newServer(h)
			if network == "inmem" {
				return serveInmem(tb, s.Serve, s.ShutdownWithContext)
			}
			c := &fasthttp.HostClient{Addr: serveTCP(tb, s.Serve, s.ShutdownWithContext), MaxConns: 1024}
			tb.Cleanup(c.CloseIdleConnections)
			return c
		},
		key:  keyValid,
		warm: fasthttp.StatusOK,
		want: fasthttp.StatusOK,
	}
}

// gatewayProxy is BenchmarkGatewayProxy: the client through the gateway,
// with a valid key whose limit is never reached, to the upstream on
// loopback TCP.
func gatewayProxy(h fasthttp.RequestHandler, log string) scenario {
	return scenario{
		setup: func(tb testing.TB, admit int) *fasthttp.HostClient {
			s := newServer(h)
			return startGateway(tb, serveTCP(tb, s.Serve, s.ShutdownWithContext), log, admit)
		},
		key:  keyValid,
		warm: fasthttp.StatusOK,
		want: fasthttp.StatusOK,
	}
}

// newRequest returns the request every scenario sends, with key.
func newRequest(key string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("http://authgate.bench" + chatURI)
	req.Header.SetContentTypeBytes(strJSON)
	req.Header.Set("Authorization", "Bearer "+key)
	req.SetBodyString(chatBody)
	return req
}

// roundTrip sends req with c and checks the response's status.
func roundTrip(tb testing.TB, c *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, want int) {
	if err := c.Do(req, resp); err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode() != want {
		tb.Fatalf("status %d, want %d: %s", resp.StatusCode(), want, resp.Body())
	}
}

// run benchmarks sc: one warm-up request (it opens a connection, allocates
// the limiter's ring, and fills the rpm=1 key's window), then b.N requests
// from parallelism*GOMAXPROCS goroutines.
func run(b *testing.B, sc scenario) {
	c := sc.setup(b, b.N+1)
	req, resp := newRequest(sc.key), fasthttp.AcquireResponse()
	roundTrip(b, c, req, resp, sc.warm)
	fasthttp.ReleaseRequest(req)
	fasthttp.ReleaseResponse(resp)

	var (
		mu        sync.Mutex
		latencies []time.Duration
	)
	b.ReportAllocs()
	if sc.conns > 0 {
		b.SetParallelism(max(sc.conns/runtime.GOMAXPROCS(0), 1))
	} else {
		b.SetParallelism(parallelism)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := newRequest(sc.key), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		var mine []time.Duration
		for pb.Next() {
			var start time.Time
			if sc.latency {
				start = time.Now()
			}
			if err := c.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if sc.latency {
				mine = append(mine, time.Since(start))
			}
			if resp.StatusCode() != sc.want {
				b.Fatalf("status %d, want %d: %s", resp.StatusCode(), sc.want, resp.Body())
			}
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	b.StopTimer() // the servers' shutdown is not measured
	if len(latencies) > 0 {
		slices.Sort(latencies)
		at := func(q float64) float64 {
			return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Microsecond)
		}
		b.ReportMetric(at(0.50), "p50-µs")
		b.ReportMetric(at(0.99), "p99-µs")
	}
}

func BenchmarkCeiling401(b *testing.B) {
	run(b, ceiling())
}

func BenchmarkGatewayReject(b *testing.B) {
	for _, log := range logModes {
		b.Run("log="+log, func(b *testing.B) { run(b, gatewayReject(log)) })
	}
}

func BenchmarkGatewayReject429(b *testing.B) {
	for _, log := range logModes {
		b.Run("log="+log, func(b *testing.B) { run(b, gatewayReject429(log)) })
	}
}

func BenchmarkUpstreamDirect(b *testing.B) {
	for _, up := range upstreams {
		for _, network := range []string{"inmem", "tcp"} {
			b.Run("upstream="+up.name+"/net="+network, func(b *testing.B) {
				run(b, upstreamDirect(up.handler(), network))
			})
		}
	}
}

func BenchmarkGatewayProxy(b *testing.B) {
	for _, up := range upstreams {
		for _, log := range logModes {
			b.Run("upstream="+up.name+"/log="+log, func(b *testing.B) {
				run(b, gatewayProxy(up.handler(), log))
			})
		}
	}
}

// BenchmarkGatewayRouted is BenchmarkGatewayProxy (fixed upstream, no
// access log) in front of one pool (pools=1: the body streams through
// unread) and routing by model between two declared pools (pools=2: the
// body is read for its model, which names the first pool), beside each
// other: what routing costs a request.
func BenchmarkGatewayRouted(b *testing.B) {
	for _, pools := range []int{1, 2} {
		b.Run("pools="+strconv.Itoa(pools), func(b *testing.B) {
			run(b, scenario{
				setup: func(tb testing.TB, admit int) *fasthttp.HostClient {
					s := newServer(fixedHandler)
					ups := []string{"http://" + serveTCP(tb, s.Serve, s.ShutdownWithContext)}
					if pools == 2 {
						other := newServer(fixedHandler)
						ups = []string{ups[0] + " models=gpt-4o-mini", "http://" + serveTCP(tb, other.Serve, other.ShutdownWithContext) + " models=other-model"}
					}
					return startGatewayTo(tb, ups, "off", admit, "")
				},
				key:  keyValid,
				warm: fasthttp.StatusOK,
				want: fasthttp.StatusOK,
			})
		})
	}
}

// BenchmarkGatewayProxyRedis is BenchmarkGatewayProxy (fixed upstream, no
// access log) with the in-process limiter and with limits shared through
// a redis-server on the same machine (started by the benchmark; skipped
// without one), at 8 and 64 requests in flight, timing every request for
// p50 and p99: the cost of the Redis round trip (the benchmark's bar: redis ≥ 50%
// of local's throughput).
func BenchmarkGatewayProxyRedis(b *testing.B) {
	for _, c := range []struct {
		lim   string
		conns int
	}{{"local", 8}, {"redis", 8}, {"local", 64}, {"redis", 64}} {
		lim := c.lim
		b.Run("limiter="+lim+"/conns="+strconv.Itoa(c.conns), func(b *testing.B) {
			url := ""
			if lim == "redis" {
				url = redistest.Start(b).URL()
			}
			run(b, scenario{
				setup: func(tb testing.TB, admit int) *fasthttp.HostClient {
					s := newServer(fixedHandler)
					return startGatewayRedis(tb, serveTCP(tb, s.Serve, s.ShutdownWithContext), "off", admit, url)
				},
				key:     keyValid,
				warm:    fasthttp.StatusOK,
				want:    fasthttp.StatusOK,
				latency: true,
				conns:   c.conns,
			})
		})
	}
}
