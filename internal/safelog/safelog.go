// Package safelog keeps what a client or an upstream sends out of the
// gateway's own log: a failure is described by its class in fixed words,
// never by an error's text, since errors from parsing HTTP quote the bytes
// they could not parse (a key, a credential); and a failure any client
// can cause is logged at most once per interval (Throttle).
package safelog

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/valyala/fasthttp"
)

// Fixed is an error whose text is a constant of the program, shown as it
// is by Class.
type Fixed string

func (e Fixed) Error() string { return string(e) }

// Classer is an error that describes itself for Class: ErrClass returns
// fixed words (it may call Class on what it wraps).
type Classer interface {
	error
	ErrClass() string
}

// Class describes err in fixed words: the kind of failure (timeout,
// connection reset by peer, cannot connect, head too large, a Fixed
// error's or a fasthttp sentinel's own text), never the error's text.
// other describes an error of no kind known here. It returns "" for nil.
func Class(err error, other string) string {
	var (
		fixed  Fixed
		self   Classer
		small  *fasthttp.ErrSmallBuffer
		dns    *net.DNSError
		errno  syscall.Errno
		record tls.RecordHeaderError
		alert  tls.AlertError
		verify *tls.CertificateVerificationError
		unkCA  x509.UnknownAuthorityError
		host   x509.HostnameError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &self):
		return self.ErrClass()
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return "cannot connect: timeout"
	case IsTimeout(err):
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
	case errors.As(err, &fixed):
		return string(fixed)
	}
	for _, s := range fasthttpErrors {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return other
}

// fasthttpErrors are fasthttp's errors whose text is a constant; the
// errors that wrap them add the bytes they could not parse.
var fasthttpErrors = []error{
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

// IsTimeout reports whether err is a timeout of fasthttp or of the network.
func IsTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
