package mockupstream

import (
	"strconv"

	"github.com/authgate/authgate/internal/jsonenc"
	"github.com/authgate/authgate/internal/netconn"
)

// appendJSONString appends s to dst as a JSON string literal
// (jsonenc.AppendString).
func appendJSONString(dst []byte, s string) []byte { return jsonenc.AppendString(dst, s) }

// appendJSONBytes is appendJSONString for a byte slice.
func appendJSONBytes(dst, b []byte) []byte {
	// The conversion does not allocate: appendJSONString keeps no reference.
	return appendJSONString(dst, netconn.B2S(b))
}

// appendInt appends the decimal form of n to dst.
func appendInt(dst []byte, n int64) []byte {
	return strconv.AppendInt(dst, n, 10)
}
