package listen

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/forwarded"
)

// Limits applies MaxConns and MaxConnsPerIP as the public listener
// accepts connections (Wrap): a connection beyond either is
// answered in OpenAI's error shape (503 over MaxConns, 429 over
// MaxConnsPerIP) and closed without being served. A connection counts from
// its acceptance until it is closed; one from a trusted proxy counts
// against MaxConns only.
//
// fasthttp has both limits too (Server.Concurrency, MaxConnsPerIP), but
// answers in plain text, and its per-address wrapper hides the socket from
// the client watch and from closeGently's half-close. The gateway sets
// fasthttp's Concurrency a little above MaxConns (backstopConcurrency), as a
// backstop, and leaves its MaxConnsPerIP off.
type Limits struct {
	max, perIP int
	trusted    forwarded.Trusted // not counted per address (Config.TrustedProxies)
	tls        *tls.Config       // the listener's, to answer a refusal over TLS
	log        *slog.Logger

	mu   sync.Mutex
	open int
	// byIP counts the open connections of each address that has one, so
	// it holds at most max entries. Only kept with a per-address limit.
	byIP map[netip.Addr]int

	refused   atomic.Uint64
	answering atomic.Int32 // refusals being answered (refuse)
	lastLog   atomic.Int64 // unix nanoseconds of the last refusal logged
}

const (
	// maxAnswering bounds the refusals answered at once; one more is
	// closed without an answer.
	maxAnswering = 256
	// refuseTime bounds answering a refusal: its TLS handshake, its write,
	// and the wait for the client to close before the gateway does.
	refuseTime = time.Second
	// refuseDrainBytes bounds what is read of a refused client before the
	// gateway closes, as the gateway's gentle close of a request does.
	refuseDrainBytes = 256 << 10
	// refuseLogEvery is the least time between two refusals logged.
	refuseLogEvery = time.Minute
)

// NewLimits returns the limits of max connections at once, and perIP from
// one address (0: no such limit) but from the trusted proxies; a refusal
// is answered over TLS when tlsConf is set, and logged to log (nil: not
// logged).
func NewLimits(max, perIP int, trusted forwarded.Trusted, tlsConf *tls.Config, log *slog.Logger) *Limits {
	cl := &Limits{max: max, perIP: perIP, trusted: trusted, tls: tlsConf, log: log}
	if perIP > 0 {
		cl.byIP = make(map[netip.Addr]int)
	}
	return cl
}

// BackstopConcurrency is fasthttp's own Concurrency limit for MaxConns
// max: a little above it, since a connection's count is released when it
// is closed, a moment before fasthttp frees the worker that served it.
func BackstopConcurrency(max int) int { return max + max/64 + 16 }

// overLimit is the limit a new connection is over, if any.
type overLimit uint8

const (
	withinLimits overLimit = iota
	overMaxConns           // 503
	overPerIP              // 429
)

// Wire bytes of the refusals, by overLimit: a whole response, written
// straight to the connection.
var refusals = [...][]byte{
	overMaxConns: refusal(503, "Service Unavailable",
		apierr.Body("Too many connections to the server", "api_error", "too_many_connections")),
	overPerIP: refusal(429, "Too Many Requests",
		apierr.Body("Too many connections from your address", "rate_limit_error", "too_many_connections")),
}

func refusal(status int, reason string, body []byte) []byte {
	return []byte("HTTP/1.1 " + strconv.Itoa(status) + " " + reason + "\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Connection: close\r\n\r\n" + string(body))
}

// remoteIP returns c's peer address, unmapped from IPv6; it is not valid
// for a connection other than TCP.
func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// perAddress reports whether a connection from ip counts against the
// per-address limit: there is one, ip is known and not a trusted proxy.
func (cl *Limits) perAddress(ip netip.Addr) bool {
	return cl.byIP != nil && ip.IsValid() && !cl.trusted.Contains(ip)
}

// admit counts a new connection from ip and returns withinLimits, or
// returns the limit it is over, not counting it.
func (cl *Limits) admit(ip netip.Addr) overLimit {
	perAddress := cl.perAddress(ip)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.open >= cl.max {
		return overMaxConns
	}
	if perAddress {
		n := cl.byIP[ip]
		if n >= cl.perIP {
			return overPerIP
		}
		cl.byIP[ip] = n + 1
	}
	cl.open++
	return withinLimits
}

// release uncounts a connection admit counted.
func (cl *Limits) release(ip netip.Addr) {
	perAddress := cl.perAddress(ip)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.open--
	if perAddress {
		if n := cl.byIP[ip] - 1; n > 0 {
			cl.byIP[ip] = n
		} else {
			delete(cl.byIP, ip)
		}
	}
}

// refuse answers c with over's refusal and closes it, on a goroutine of
// its own: it writes the refusal (over TLS, after the handshake, when the
// listener speaks it), shuts down its writing side and reads what the client sends until
// the client closes, within refuseTime, so that the close does not reset
// the connection before the client has read the answer.
func (cl *Limits) refuse(c net.Conn, ip netip.Addr, over overLimit) {
	n := cl.refused.Add(1)
	cl.logRefusal(ip, over, n)
	resp := refusals[over]
	if cl.answering.Add(1) > maxAnswering {
		cl.answering.Add(-1)
		c.Close()
		return
	}
	go func() {
		defer cl.answering.Add(-1)
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseTime))
		if cl.tls != nil {
			tc := tls.Server(c, cl.tls)
			if _, err := tc.Write(resp); err != nil {
				return
			}
			tc.CloseWrite() // close_notify
		} else if _, err := c.Write(resp); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, refuseDrainBytes))
	}()
}

// logRefusal logs a refusal, at most one every refuseLogEvery.
func (cl *Limits) logRefusal(ip netip.Addr, over overLimit, total uint64) {
	now := time.Now().UnixNano()
	last := cl.lastLog.Load()
	if now-last < int64(refuseLogEvery) || !cl.lastLog.CompareAndSwap(last, now) || cl.log == nil {
		return
	}
	limit, n := "MAX_CONNS", cl.max
	if over == overPerIP {
		limit, n = "MAX_CONNS_PER_IP", cl.perIP
	}
	cl.log.Warn("connection refused: limit reached (logged at most once a minute)",
		"limit", limit, "max", n, "client", ip.String(), "refused_total", total)
}

// Refused returns the number of connections refused so far.
func (cl *Limits) Refused() uint64 { return cl.refused.Load() }

// Open returns how many connections are counted open.
func (cl *Limits) Open() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.open
}
