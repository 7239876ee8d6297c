package forwarded

import (
	"encoding/hex"
	"math/rand/v2"

	"github.com/valyala/fasthttp"
)

// MaxRequestID is the longest X-Request-Id passed on as it is.
const MaxRequestID = 128

// RequestID returns, in buf, the request's X-Request-Id if it is acceptable
// (1–128 visible ASCII bytes, no separators), else a new random 128-bit hex
// id. It is a copy, so that the proxy's rewriting of the request headers
// cannot change it.
func RequestID(h *fasthttp.RequestHeader, buf *[MaxRequestID]byte) []byte {
	return RequestIDFrom(h.Peek("X-Request-Id"), buf)
}

// RequestIDFrom is RequestID for a client-sent id (nil if none).
func RequestIDFrom(id []byte, buf *[MaxRequestID]byte) []byte {
	if ValidRequestID(id) {
		return buf[:copy(buf[:], id)]
	}
	var raw [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		raw[i] = byte(a >> (8 * i))
		raw[8+i] = byte(b >> (8 * i))
	}
	return buf[:hex.Encode(buf[:], raw[:])]
}

// ValidRequestID reports whether a client-sent request id may be passed on
// and logged as it is.
func ValidRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > MaxRequestID {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '|' {
			return false
		}
	}
	return true
}
