// Package target checks a request before it may be proxied: its method
// and its request target, which must be a path with no "." or ".."
// segment however encoded, and its HTTP version (docs/http.md#proxy).
package target

import (
	"bytes"

	"github.com/authgate/authgate/internal/apierr"
	"github.com/valyala/fasthttp"
)

// Requests the gateway answers itself before a key is looked at, because
// no upstream should ever see them (docs/http.md#proxy).
var (
	// Body405 answers a method that is never proxied (TRACE, CONNECT, or
	// any other than those of allowedMethods).
	Body405 = apierr.Body("The method is not allowed: use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
		"invalid_request_error", "method_not_allowed")
	AllowedMethods = []byte("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")

	// body400Target answers a request target that is not a path: the
	// asterisk form (OPTIONS *), the authority form, or an absolute form
	// of another scheme than http or https.
	body400Target = apierr.Body("The request target must be a path, such as /v1/models",
		"invalid_request_error", "invalid_request_target")
	// body400DotSegment answers a path with a . or .. segment, which could
	// climb out of an upstream's path prefix.
	body400DotSegment = apierr.Body("The request path must not contain . or .. segments",
		"invalid_request_error", "invalid_request_target")
	// Body400Version answers a request line with another version than
	// HTTP/1.0 and HTTP/1.1 (fasthttp reads any HTTP/x.y).
	Body400Version = apierr.Body("The HTTP version is not supported: use HTTP/1.1",
		"invalid_request_error", "bad_request")
	// Body400Connection answers a Connection header naming Content-Length:
	// removing it, as a hop-by-hop header, would leave the body unframed.
	Body400Connection = apierr.Body("The Connection header must not name Content-Length",
		"invalid_request_error", "bad_request")
)

// AllowedMethod reports whether a request of method m may be proxied:
// GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS. TRACE would echo the
// request the upstream received, UPSTREAM_API_KEY included, and CONNECT
// would open a tunnel; extension methods are refused with them.
func AllowedMethod(m []byte) bool {
	switch string(m) { // no allocation: the conversion is only compared
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodPost, fasthttp.MethodPut,
		fasthttp.MethodPatch, fasthttp.MethodDelete, fasthttp.MethodOptions:
		return true
	}
	return false
}

var (
	strSchemeHTTP  = []byte("http://")
	strSchemeHTTPS = []byte("https://")
)

// Check brings req's target to origin form, which every upstream is
// sent and the access log shows: an absolute-form target
// (http://host/v1/models?x, RFC 9112 section 3.2.2) is reduced to its path
// and query. It returns the 400 body of a target that cannot be so
// reduced, or whose path has a dot segment, and nil for one that may go
// on. An origin-form target without a dot or a percent sign, nearly every
// request's, costs one scan.
func Check(req *fasthttp.Request) []byte {
	uri := req.Header.RequestURI()
	if len(uri) == 0 || uri[0] != '/' {
		var rest []byte
		switch {
		case hasPrefixFold(uri, strSchemeHTTP):
			rest = uri[len(strSchemeHTTP):]
		case hasPrefixFold(uri, strSchemeHTTPS):
			rest = uri[len(strSchemeHTTPS):]
		default:
			return body400Target
		}
		var origin []byte
		if i := bytes.IndexAny(rest, "/?#"); i >= 0 {
			origin = rest[i:]
		}
		if len(origin) == 0 || origin[0] != '/' {
			// No path: "/" stands for it, before the query if any.
			origin = append(append(make([]byte, 0, 1+len(origin)), '/'), origin...)
		} else {
			origin = append([]byte(nil), origin...) // rest is the header's own buffer
		}
		req.SetRequestURIBytes(origin)
		uri = req.Header.RequestURI()
	}
	if hasDotSegment(uri) {
		return body400DotSegment
	}
	return nil
}

// hasDotSegment reports whether the path of target (up to its query) has a
// segment that is "." or "..", written plainly or percent-encoded
// ("%2e"), counting "\" and an encoded "/" or "\" ("%2f", "%5c") as
// separators too, since some servers decode or accept them before they
// resolve dot segments.
func hasDotSegment(target []byte) bool {
	path := target
	if i := bytes.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if bytes.IndexByte(path, '.') < 0 && bytes.IndexByte(path, '%') < 0 {
		return false
	}
	dots, other := 0, false // the current segment's dots, and whether it has anything else
	for i := 0; i <= len(path); {
		sep, n := true, 1 // whether path[i:] starts with a separator, and its length
		if i < len(path) {
			sep, n = separatorAt(path, i)
		}
		if sep {
			if !other && (dots == 1 || dots == 2) {
				return true
			}
			dots, other = 0, false
			i += n
			continue
		}
		switch {
		case path[i] == '.':
			dots++
		case path[i] == '%' && i+2 < len(path) && path[i+1] == '2' && (path[i+2]|0x20) == 'e':
			dots++
			n = 3
		default:
			other = true
		}
		i += n
	}
	return false
}

// separatorAt reports whether path[i:] begins with a path separator ("/",
// "\", "%2f", "%5c", any case) and its length.
func separatorAt(path []byte, i int) (bool, int) {
	switch c := path[i]; {
	case c == '/' || c == '\\':
		return true, 1
	case c == '%' && i+2 < len(path):
		h, l := path[i+1], path[i+2]|0x20
		if (h == '2' && l == 'f') || (h == '5' && l == 'c') {
			return true, 3
		}
	}
	return false, 1
}

// hasPrefixFold reports whether b begins with prefix, ASCII case folded.
func hasPrefixFold(b, prefix []byte) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], prefix)
}
