package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/valyala/fasthttp"
)

// errClass describes err for a log line in fixed words: the kind of
// failure, never the error's own text. Errors from parsing HTTP quote the
// bytes they could not parse (fasthttp's "invalid header value \"Bearer
// sk-…\"", a response's "contents: …"), and those bytes came from a client
// or an upstream: a key or a credential may be among them. other is the
// description of an error of no kind known here.
func errClass(err error, other string) string {
	var (
		small  *fasthttp.ErrSmallBuffer
		dial   *errDial
		dns    *net.DNSError
		errno  syscall.Errno
		record tls.RecordHeaderError
		alert  tls.AlertError
		verify *tls.CertificateVerificationError
		unkCA  x509.UnknownAuthorityError
		host   x509.HostnameError
		status *errStatus
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errClientLeft):
		return "client left"
	case errors.As(err, &status):
		return status.Error() // a status code's standard text
	case errors.As(err, &dial):
		return "cannot connect: " + errClass(dial.err, "dial failed")
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return "cannot connect: timeout"
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return "body too large"
	case errors.As(err, &small), errors.Is(err, fasthttp.ErrSmallReadBuffer):
		return "head too large"
	case errors.As(err, &dns):
		return "DNS lookup failed"
	case errors.As(err, &record):
		return "TLS: not a TLS record"
	case errors.As(err, &alert):
		return "TLS: alert: " + alert.Error() // the alert's name, from a fixed table
	case errors.As(err, &verify), errors.As(err, &unkCA), errors.As(err, &host):
		return "TLS: certificate not accepted"
	case errors.As(err, &errno):
		return errno.Error() // the system's fixed text: "connection reset by peer"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed in the middle of a message"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return "connection closed"
	}
	for _, s := range fixedTextErrors {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return other
}

// fixedTextErrors are errors whose text is a constant, shown as it is by
// errClass.
var fixedTextErrors = []error{
	errNoHealthyUpstream,
	errTooManyInterim,
	errBareLFHead,
	fasthttp.ErrConnectionClosed,
	fasthttp.ErrTLSHandshakeTimeout,
	fasthttp.ErrBadTrailer,
	fasthttp.ErrDuplicateContentLength,
	fasthttp.ErrUnsupportedTransferEncoding,
	fasthttp.ErrUnsupportedRequestMethod,
	fasthttp.ErrMissingRequestMethod,
	fasthttp.ErrExtraWhitespaceInRequestLine,
	fasthttp.ErrEmptyRequestURI,
	fasthttp.ErrNonNumericChars,
	fasthttp.ErrResponseFirstLineMissingSpace,
	fasthttp.ErrUnexpectedStatusCodeChar,
}
