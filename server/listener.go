package server

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/internal/safelog"
)

// gatewayListener wraps every connection it accepts in a netconn.Conn,
// after applying the connection limits, if it has them: a connection
// beyond one is answered and closed there (connLimits.refuse), and never
// returned. Gateway.Serve puts it beneath the TLS listener, so that a
// *tls.Conn's deadlines are the netconn.Conn's.
type gatewayListener struct {
	net.Listener
	limits *connLimits // nil: no limits
	// plain is set when the connections carry HTTP itself, not TLS: their
	// first request's head is checked for bare LF line ends (bareLFHead).
	plain bool
}

func (l gatewayListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err // as it is: fasthttp tells timeouts and closes apart
		}
		var ip netip.Addr
		if l.limits != nil {
			ip = remoteIP(c)
			if over := l.limits.admit(ip); over != withinLimits {
				l.limits.refuse(c, ip, over)
				continue
			}
		}
		var o netconn.Options
		if l.limits != nil {
			o.OnClose = func() { l.limits.release(ip) }
		}
		if l.plain {
			o.CheckFirstRead = checkBareLFHead
		}
		return netconn.Wrap(c, o), nil
	}
}

// expected is a request that expectContinue admitted on its head: its
// admission, kept for the handler, and what the error handler logs if the
// body never comes (fasthttp then resets the request, user values
// included).
type expected struct {
	admission
	method, path []byte
}

// checkBareLFHead is the check of a plain connection's first read
// (netconn.Options.CheckFirstRead).
func checkBareLFHead(b []byte) error {
	if bareLFHead(b) {
		return errBareLFHead
	}
	return nil
}

// errBareLFHead fails the read after a first read whose request head ended
// in a blank line of bare LF (see bareLFHead): fasthttp takes a head to be
// complete only once its bytes hold a CRLFCRLF, and would wait for one
// until ReadTimeout; with the error it answers 400 at once.
var errBareLFHead = safelog.Fixed("request head lines end in a bare LF")

// bareLFHead reports whether b, the first bytes of a connection, holds a
// blank line that is not the end of a CRLFCRLF ("\n\n", or "\n\r\n" after
// a bare LF) and no CRLFCRLF: a request head fasthttp would wait on. RFC
// 9112 section 2.2 lets a server accept a bare LF as a line end; fasthttp
// accepts one only in a head that a CRLFCRLF ends.
func bareLFHead(b []byte) bool {
	if bytes.Contains(b, strCRLFCRLF) {
		return false
	}
	for i := bytes.IndexByte(b, '\n'); i >= 0 && i+1 < len(b); {
		switch {
		case b[i+1] == '\n':
			return true
		case b[i+1] == '\r' && i+2 < len(b) && b[i+2] == '\n' && (i == 0 || b[i-1] != '\r'):
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

var strCRLFCRLF = []byte("\r\n\r\n")
