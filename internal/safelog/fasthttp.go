package safelog

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// FasthttpLogger sends fasthttp's own messages (a failed TLS handshake, a
// connection error) to slog, at most one per throttleInterval with the
// count of those suppressed, since any client on the internet can cause
// them. Only fasthttp's format string and the arguments that cannot carry
// a client's bytes (addresses, numbers) are shown; an error is shown by
// its class (Class), any other argument as "?": fasthttp's errors quote
// the header values they could not parse, an Authorization header's
// among them.
type FasthttpLogger struct {
	L *slog.Logger
	// Ignore, if set, drops a message with an error argument that is it
	// (errors.Is): a client leaving mid-stream is not an error.
	Ignore error
	t      Throttle
}

func (f *FasthttpLogger) Printf(format string, args ...any) {
	for _, a := range args {
		if err, ok := a.(error); ok && f.Ignore != nil && errors.Is(err, f.Ignore) {
			return
		}
	}
	n, ok := f.t.Allow(time.Now())
	if !ok {
		return
	}
	safe := make([]any, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case net.Addr:
			safe[i] = a.String()
		case error:
			safe[i] = Class(a, "cannot read the request")
		case int, int64, uint64, float64, time.Duration:
			safe[i] = a
		default:
			safe[i] = "?"
		}
	}
	f.L.Warn("fasthttp: "+fmt.Sprintf(format, safe...), "suppressed", n)
}
