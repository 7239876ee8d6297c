// Package hopbyhop removes the headers that describe one connection, not
// the message (RFC 9110 section 7.6.1), from a request or a response a
// proxy passes on: the fixed list, and those the Connection header names.
package hopbyhop

import (
	"bytes"
	"iter"

	"github.com/valyala/fasthttp"
)

// hopByHop are the headers that describe one connection, not the message
// (RFC 9110 section 7.6.1), removed in both directions.
var hopByHop = [][]byte{
	[]byte("Connection"),
	[]byte("Proxy-Connection"),
	[]byte("Keep-Alive"),
	[]byte("Proxy-Authenticate"),
	[]byte("Proxy-Authorization"),
	[]byte("Te"),
	[]byte("Trailer"),
	[]byte("Transfer-Encoding"),
	[]byte("Upgrade"),
}

var (
	strConnection = []byte("Connection")
	strXRequestID = []byte("X-Request-Id")
)

// FromRequest deletes the headers named in Connection, then the fixed
// hop-by-hop list, from a request header. Most requests carry none of
// them: one pass over the headers finds which to delete, since a delete
// costs a pass of its own. X-Request-Id, which the gateway sets, is kept
// whatever Connection says, and a second copy the client sent is dropped,
// so that the upstream sees the id the client is told. It reports false,
// deleting nothing, for a Connection header that names Content-Length:
// the body's framing is not the client's to drop (the request is answered
// 400).
func FromRequest(h *fasthttp.RequestHeader) bool {
	present := hopByHopPresent(h.All())
	if present == 0 {
		return true
	}
	conn := h.PeekBytes(strConnection)
	if namesContentLength(conn) {
		return false
	}
	if present&dupRequestID != 0 {
		var buf [128]byte                                    // the longest id the gateway passes on
		id := append(buf[:0], h.PeekBytes(strXRequestID)...) // the gateway's: the first
		h.DelBytes(strXRequestID)
		h.SetCanonical(strXRequestID, id)
	}
	delHopByHop(present, conn, h.DelBytes)
	return true
}

// FromResponse is FromRequest for a response header; the
// upstream may name any header in its Connection. Copies of X-Request-Id
// beyond the first are dropped too (the gateway sets the first).
func FromResponse(h *fasthttp.ResponseHeader) {
	if present := hopByHopPresent(h.All()); present != 0 {
		if present&dupRequestID != 0 {
			h.DelBytes(strXRequestID)
		}
		delHopByHop(present, h.PeekBytes(strConnection), h.DelBytes)
	}
}

var strContentLength = []byte("Content-Length")

// namesContentLength reports whether the Connection header value conn
// names Content-Length.
func namesContentLength(conn []byte) bool {
	found := false
	forEachToken(conn, func(tok []byte) {
		found = found || bytes.EqualFold(tok, strContentLength)
	})
	return found
}

// dupRequestID is the bit of hopByHopPresent's result that says
// X-Request-Id appears more than once.
const dupRequestID = 1 << 31

// hopByHopPresent returns a bit set of the hopByHop headers among all:
// bit i for hopByHop[i], and dupRequestID.
func hopByHopPresent(all iter.Seq2[[]byte, []byte]) uint32 {
	var present uint32
	ids := 0
	for k := range all {
		if len(k) == len(strXRequestID) && bytes.EqualFold(k, strXRequestID) {
			if ids++; ids > 1 {
				present |= dupRequestID
			}
			continue
		}
		for i, name := range hopByHop {
			if len(k) == len(name) && bytes.EqualFold(k, name) {
				present |= 1 << i
				break
			}
		}
	}
	return present
}

// delHopByHop deletes, with del, the headers named in the Connection
// header's value conn but X-Request-Id, then those of hopByHop whose bit is
// set in present.
func delHopByHop(present uint32, conn []byte, del func([]byte)) {
	forEachToken(conn, func(name []byte) {
		if !bytes.EqualFold(name, strXRequestID) {
			del(name)
		}
	})
	for i, k := range hopByHop {
		if present&(1<<i) != 0 {
			del(k)
		}
	}
}

// forEachToken calls f with each comma-separated, trimmed, non-empty token
// of v. v is copied first, since f may delete the header v belongs to.
func forEachToken(v []byte, f func([]byte)) {
	if len(v) == 0 {
		return
	}
	var buf [256]byte
	v = append(buf[:0], v...)
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		if tok = bytes.TrimSpace(tok); len(tok) > 0 {
			f(tok)
		}
	}
}
