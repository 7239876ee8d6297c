package apierr

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestHeaderNamesCanonical: the names set with SetCanonical are already in
// the form fasthttp's normalizing gives them, so that skipping the
// normalizing changes nothing on the wire.
func TestHeaderNamesCanonical(t *testing.T) {
	for _, k := range [][]byte{strRetryAfter, strRetryAfterMs, strRateLimitLimit, strRateLimitRemaining, strRateLimitReset} {
		var h fasthttp.ResponseHeader
		h.SetBytesKV(k, []byte("1"))
		if !strings.Contains(string(h.Header()), "\r\n"+string(k)+": 1\r\n") {
			t.Errorf("%q is not in the form fasthttp's normalizing gives it", k)
		}
	}
}
