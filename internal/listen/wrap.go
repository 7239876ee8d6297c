package listen

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/valyala/fasthttp"
)

// Wrap returns ln as the gateway serves it: every connection it accepts is
// admitted by limits (nil: none), a refused one answered and closed there
// and never returned; wrapped in a netconn.Conn, with check run on the
// first read of a plain connection (nil: none) and parked by parker when
// idle (nil: never; the server's ConnState must then be ConnState); and,
// with cert set (and no parking), made
// to speak TLS above the wrapper, so that a *tls.Conn's deadlines are the
// netconn.Conn's. fasthttp's ServeTLS does the same TLS wrapping but with
// a copy of a fixed certificate list; GetCertificate is what lets
// Certificate.Reload change the certificate of a running listener.
// ctx.IsTLS() reports true for connections accepted from it.
func Wrap(ln net.Listener, limits *Limits, cert *Certificate, check func([]byte) error, parker *netconn.Parker) net.Listener {
	if cert != nil {
		return tls.NewListener(wrapped{ln, limits, nil, nil}, cert.conf)
	}
	return wrapped{ln, limits, check, parker}
}

// ConnState is the fasthttp.Server's ConnState of a listener with a
// Parker: it tells each connection when it is idle (netconn.SetIdle).
func ConnState(c net.Conn, state fasthttp.ConnState) {
	switch state {
	case fasthttp.StateIdle:
		netconn.SetIdle(c, true)
	case fasthttp.StateActive:
		netconn.SetIdle(c, false)
	}
}

// wrapped is Wrap's listener beneath TLS.
type wrapped struct {
	net.Listener
	limits *Limits
	check  func([]byte) error
	parker *netconn.Parker // plain HTTP only
}

func (l wrapped) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err // as it is: fasthttp tells timeouts and closes apart
		}
		o := netconn.Options{CheckFirstRead: l.check, Parker: l.parker}
		if l.limits != nil {
			ip := remoteIP(c)
			if over := l.limits.admit(ip); over != withinLimits {
				l.limits.refuse(c, ip, over)
				continue
			}
			o.OnClose = l.releaser(ip)
		}
		return netconn.Wrap(c, o), nil
	}
}

// releaser returns the function that uncounts a connection from ip.
func (l wrapped) releaser(ip netip.Addr) func() {
	return func() { l.limits.release(ip) }
}

// LogServeError reports whether fasthttp's worker pool would log err,
// returned by serving a connection (Server.ServeConn): not for a client
// gone (broken pipe, reset, EOF mid-request), nor for a timeout or a head
// larger than the read buffer, which the client was answered about. The
// gateway logs the errors of the parked connections it hands back to
// fasthttp itself, as the worker pool does those of the others.
func LogServeError(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, quiet := range quietServeErrors {
		if strings.Contains(s, quiet) {
			return false
		}
	}
	return !errors.Is(err, fasthttp.ErrBadTrailer)
}

// quietServeErrors are the errors fasthttp's worker pool does not log
// (fasthttp v1.78, workerpool.go), by their text.
var quietServeErrors = []string{"broken pipe", "reset by peer", "request headers: " + fasthttp.ErrSmallReadBuffer.Error(), "unexpected EOF", "i/o timeout"}
