package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// bodyReader is the body stream of a request on its way to the upstream:
// it reads the client's streamed body, refuses one of unknown length over
// limit (errBodyTooLarge), reports one cut short (io.ErrUnexpectedEOF),
// and, if timeout is set (a body still coming from the client), renews the
// upstream connection's write deadline after each piece, so that a slow
// client's upload is bounded by the server's ReadTimeout, not by
// UpstreamTimeout. Its first error other than io.EOF is kept: fasthttp's
// chunked writer calls Read again after an error that came with bytes, and
// must get it again.
type bodyReader struct {
	r       io.Reader
	pc      *upConn
	timeout time.Duration // 0: the body is in memory, no deadline to renew
	size    int64         // Content-Length, -1 if chunked
	limit   int64
	n       int64 // bytes read
	err     error // the first error other than io.EOF
	eof     bool
}

// errBodyTooLarge is a chunked body going over MaxRequestBody.
var errBodyTooLarge = fasthttp.ErrBodyTooLarge

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	// Read one byte past the limit at most: reaching it is allowed,
	// passing it is not.
	if left := b.limit - b.n + 1; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.limit {
		n -= int(b.n - b.limit)
		b.n = b.limit
		err = errBodyTooLarge
	}
	if err == io.EOF && b.n < b.size {
		// fasthttp's request stream ends a body cut short by the client
		// with a plain io.EOF.
		err = io.ErrUnexpectedEOF
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.err = err
	}
	if b.timeout > 0 {
		b.pc.SetWriteDeadline(time.Now().Add(b.timeout))
	}
	return n, err
}

// ClientGone reports whether err, from reading a client's body, means the
// client went away (rather than sent something malformed or too slowly).
func ClientGone(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// PreReadMax is the most of a body fasthttp reads before calling the
// handler on a server with StreamRequestBody: a body of up to PreReadMax
// bytes is in memory when the handler runs, provided MaxRequestBodySize
// is at least that (the gateway's headerReceived makes the pre-read of a
// larger one 1 byte).
const PreReadMax = 8 << 10

// BodyPending reports whether req's body is streamed and may not have been
// read to its end: chunked, or longer than what fasthttp pre-reads.
func BodyPending(req *fasthttp.Request) bool {
	if !req.IsBodyStream() {
		return false
	}
	cl := req.Header.ContentLength()
	return cl == -1 || cl > PreReadMax
}
