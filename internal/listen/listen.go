// Package listen is the gateway's public listener: a TCP listener with
// SO_REUSEPORT (Listen), and the wrapper that applies the connection limits
// as it accepts, answering a refused connection itself, wraps every
// connection for cheap deadlines (netconn), and speaks TLS with a
// certificate that reloads without a restart (Wrap, Limits, Certificate).
package listen

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/valyala/fasthttp/reuseport"
)

// Listen opens a TCP listener on addr with SO_REUSEPORT (through
// fasthttp/reuseport), so that a new authgate can bind the same port while
// an old one drains. Where the system has no SO_REUSEPORT it falls back to a
// plain listener and logs that it did.
func Listen(addr string, log *slog.Logger) (net.Listener, error) {
	network := "tcp4"
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			network = "tcp6"
		}
	}
	ln, err := reuseport.Listen(network, addr)
	if err == nil {
		return ln, nil
	}
	var noReuse *reuseport.ErrNoReusePort
	if !errors.As(err, &noReuse) {
		return nil, fmt.Errorf("cannot listen on %q: %w", addr, err)
	}
	if log != nil {
		log.Warn("SO_REUSEPORT is unavailable; using a plain listener", "addr", addr, "err", err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %q: %w", addr, err)
	}
	return ln, nil
}
