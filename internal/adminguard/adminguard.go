// Package adminguard decides who may use the admin listener (/metrics,
// /limits, pprof): with a token, only requests bearing it; without, only
// requests whose Host cannot be a DNS name rebound to the listener, and
// pprof only on loopback connections. Servers runs its listeners.
package adminguard

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

var (
	strAuthorization = []byte("Authorization")
	strBearer        = []byte("Bearer")
	strLocalhost     = []byte("localhost")
)

// Guard is the admin listener's access rule for one token (none when it
// was made from an empty one). The zero value has no token.
type Guard struct {
	token *[sha256.Size]byte // SHA-256 of the token; nil: none
}

// New returns the Guard of token ("" for none). Check the token with
// CheckToken first.
func New(token string) Guard {
	if token == "" {
		return Guard{}
	}
	sum := sha256.Sum256([]byte(token))
	return Guard{&sum}
}

// Admit decides ctx's admin request before its route: status is 0 when it
// may go on, 401 when a token is set and the request does not bear it,
// 403 when no token was presented and its Host could be a rebound DNS
// name (HostAllowed). trusted reports that the request bore the token.
func (g Guard) Admit(ctx *fasthttp.RequestCtx) (trusted bool, status int) {
	trusted = g.tokenPresented(ctx)
	switch {
	case g.token != nil && !trusted:
		return false, fasthttp.StatusUnauthorized
	case !trusted && !HostAllowed(ctx):
		return false, fasthttp.StatusForbidden
	}
	return trusted, 0
}

// tokenPresented reports whether g has a token and ctx's Authorization
// header is "Bearer <token>" (the scheme in any letter case). The token is
// compared by its SHA-256 digest in constant time, so that neither its
// bytes nor its length show in the time taken.
func (g Guard) tokenPresented(ctx *fasthttp.RequestCtx) bool {
	if g.token == nil {
		return false
	}
	tok, ok := bearerToken(ctx.Request.Header.PeekBytes(strAuthorization))
	if !ok {
		return false
	}
	sum := sha256.Sum256(tok)
	return subtle.ConstantTimeCompare(sum[:], g.token[:]) == 1
}

// bearerToken returns the token of an Authorization header value
// "Bearer <token>": the scheme in any letter case, then spaces or tabs,
// then the token (outer spaces and tabs ignored). It reports false for any
// other value, a bare token included. tok is a subslice of h.
func bearerToken(h []byte) (tok []byte, ok bool) {
	v := trimOWS(h)
	if len(v) <= len(strBearer) || !bytes.EqualFold(v[:len(strBearer)], strBearer) || !isOWS(v[len(strBearer)]) {
		return nil, false
	}
	tok = trimOWS(v[len(strBearer):])
	return tok, len(tok) > 0
}

// isOWS reports whether c is HTTP optional whitespace: a space or a tab.
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS returns b without leading and trailing spaces and tabs.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// HostAllowed reports whether ctx's Host header names no host that
// DNS rebinding could point at this listener: localhost (in any letter
// case) or an IP literal, each with an optional port. A request without a
// Host (HTTP/1.0) is allowed only on a loopback connection.
func HostAllowed(ctx *fasthttp.RequestCtx) bool {
	host := ctx.Request.Header.Host()
	if len(host) == 0 {
		return LocalIsLoopback(ctx)
	}
	var name, port []byte
	if host[0] == '[' {
		end := bytes.IndexByte(host, ']')
		if end < 0 {
			return false
		}
		name, port = host[1:end], host[end+1:]
		ip, err := netip.ParseAddr(string(name))
		if err != nil || !ip.Is6() {
			return false
		}
	} else {
		name, port = host, nil
		if i := bytes.IndexByte(host, ':'); i >= 0 {
			name, port = host[:i], host[i:]
		}
		if !bytes.EqualFold(name, strLocalhost) {
			ip, err := netip.ParseAddr(string(name))
			if err != nil || !ip.Is4() {
				return false
			}
		}
	}
	if len(port) == 0 {
		return true
	}
	if port[0] != ':' {
		return false
	}
	for _, c := range port[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// LocalIsLoopback reports whether ctx's connection arrived on a loopback
// address or a Unix socket, neither of which a remote client can reach.
func LocalIsLoopback(ctx *fasthttp.RequestCtx) bool {
	switch a := ctx.LocalAddr().(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// minTokenLen is the fewest characters a token may have.
const minTokenLen = 16

// CheckToken returns nil if token is a valid admin token: at
// least 16 characters of valid UTF-8, none of them whitespace or a control
// character. Its errors never show the token.
func CheckToken(token string) error {
	if !utf8.ValidString(token) {
		return errors.New("must be valid UTF-8")
	}
	for _, r := range token {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return errors.New("must not contain whitespace or control characters")
		}
	}
	if utf8.RuneCountInString(token) < minTokenLen {
		return fmt.Errorf("must be at least %d characters", minTokenLen)
	}
	return nil
}
