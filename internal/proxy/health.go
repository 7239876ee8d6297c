package proxy

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/safelog"
)

// Health-check defaults.
const (
	DefaultHealthCheckPath     = "/v1/models"
	DefaultHealthCheckInterval = 2 * time.Second
	// HealthCheckTCP as Config.HealthCheckPath checks that a TCP connection
	// can be opened, without an HTTP request.
	HealthCheckTCP = "-"
	// HealthCheckUserAgent is the User-Agent of health-check requests, so
	// that upstreams and their logs can tell them from clients' requests.
	HealthCheckUserAgent = "authgate-healthcheck"
)

// healthCheck is the per-upstream state of the active checker.
type healthCheck struct {
	client  *fasthttp.HostClient // nil for TCP checks
	listErr string               // the class of the model list's last failure, once logged
}

// healthChecker probes every upstream at an interval and keeps
// upstream.healthy current: an upstream failing its check gets no traffic
// until a check passes again. An HTTP check passes on any status below 500
// (a 401 from an upstream that wants its own key still shows it serving).
// An upstream that discovers its models has the list in a 200 answer read
// (discovered).
type healthChecker struct {
	ups      []*upstream
	path     string
	authz    []byte
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	// afterRound, if set, runs after each round of checks, on the
	// checker's goroutine: Proxy.refreshTable (tests wrap it to wait for
	// rounds).
	afterRound func()

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
}

func newHealthChecker(ups []*upstream, cfg *Config, authz []byte) *healthChecker {
	h := &healthChecker{
		ups:      ups,
		path:     cfg.HealthPath,
		authz:    authz,
		interval: cfg.HealthInterval,
		timeout:  min(cfg.HealthInterval, 2*time.Second),
		log:      cfg.Logger,
		stopCh:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	if h.path != HealthCheckTCP {
		for _, up := range ups {
			up.health.client = &fasthttp.HostClient{
				Addr:                     up.pool.addr,
				IsTLS:                    up.pool.tlsConfig != nil,
				TLSConfig:                up.pool.tlsConfig,
				ReadTimeout:              h.timeout,
				WriteTimeout:             h.timeout,
				MaxConns:                 1,
				NoDefaultUserAgentHeader: true,
				MaxResponseBodySize:      maxModelListBody,
			}
			if d := cfg.Dial; d != nil {
				up.health.client.Dial = dialFunc(d)
			}
		}
	}
	return h
}

// run checks every upstream once at once, then at every interval, until
// stop.
func (h *healthChecker) run() {
	defer close(h.done)
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.checkAll()
		// A stop that came during a long check wins over a pending tick.
		select {
		case <-h.stopCh:
			return
		default:
		}
		select {
		case <-h.stopCh:
			return
		case <-t.C:
		}
	}
}

func (h *healthChecker) stop() {
	h.stopOnce.Do(func() { close(h.stopCh) })
	<-h.done
}

func (h *healthChecker) checkAll() {
	var wg sync.WaitGroup
	for _, up := range h.ups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := h.check(up)
			setHealth(up, err == nil, err, h.log)
			up.pool.closeIdle(time.Now(), false)
		}()
	}
	wg.Wait()
	if h.afterRound != nil {
		h.afterRound()
	}
}

// check probes up once.
func (h *healthChecker) check(up *upstream) error {
	if up.health.client == nil {
		c, err := up.pool.dial()
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(string(up.prefix) + h.path)
	req.Header.SetHostBytes(up.host)
	req.Header.SetUserAgent(HealthCheckUserAgent)
	req.UseHostHeader = true
	if h.authz != nil {
		req.Header.SetBytesKV(strAuthorization, h.authz)
	}
	err := up.health.client.DoTimeout(req, resp, h.timeout)
	code := resp.StatusCode()
	switch {
	case err != nil && isBodyTooLarge(err) && code < 500:
		// The upstream answered; its body is over the bound of a model
		// list, which a passing check need not read.
		if up.discover {
			h.discovered(up, nil, errListTooLarge)
		}
		return nil
	case err != nil:
		return err
	case code >= 500:
		return &errStatus{code}
	case !up.discover:
	case code != fasthttp.StatusOK:
		h.discovered(up, nil, &errListStatus{code})
	default:
		models, err := parseModelList(resp.Body())
		h.discovered(up, models, err)
	}
	return nil
}

// errStatus is a health check's failing HTTP status.
type errStatus struct{ code int }

func (e *errStatus) Error() string    { return "health check answered " + fasthttp.StatusMessage(e.code) }
func (e *errStatus) ErrClass() string { return e.Error() } // a status code's standard text

// setHealth records a check's or a request's verdict on up, logging
// transitions only, so that a dead upstream does not flood the log.
func setHealth(up *upstream, healthy bool, err error, log *slog.Logger) {
	if up.healthy.Swap(healthy) == healthy {
		return
	}
	if healthy {
		log.Info("upstream is healthy again", "upstream", up.name)
	} else {
		log.Warn("upstream is down: no traffic until it recovers", "upstream", up.name, "err", safelog.Class(err, "malformed response"))
	}
}

// dialFunc adapts a context dialer to fasthttp's.
func dialFunc(d func(ctx context.Context, network, addr string) (net.Conn, error)) fasthttp.DialFunc {
	return func(addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), defaultDialTimeout)
		defer cancel()
		return d(ctx, "tcp", addr)
	}
}
