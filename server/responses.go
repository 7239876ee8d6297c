package server

import (
	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/apierr"
)

// Wire bytes built once. Bodies are OpenAI's error shape, byte for byte as
// docs/http.md#error-codes lists them; they are written with SetBodyRaw, so they must
// never be modified.
var (
	strContentTypeJSON = []byte("application/json")
	strTextPlain       = []byte("text/plain; charset=utf-8")
	strOK              = []byte("ok")
	strNotReady        = []byte("not ready")

	// /readyz bodies while the configured Limiter (Redis) is failing, by
	// failure mode.
	strOKLimiterLocal        = []byte("ok: rate limiter unavailable, limits are per process (failure mode local)")
	strOKLimiterOpen         = []byte("ok: rate limiter unavailable, requests are not limited (failure mode open)")
	strNotReadyLimiterClosed = []byte("not ready: rate limiter unavailable, requests are refused (failure mode closed)")

	// Header names, in the form fasthttp's normalizing gives them, so that
	// the request path sets them with SetCanonical, without a copy and a
	// normalizing pass each (TestHeaderNamesCanonical).
	strAuthorization = []byte("Authorization")
	strExpect        = []byte("Expect")
	strXRequestID    = []byte("X-Request-Id")

	// body401 is indexed by auth.Reason.
	body401 = func() [auth.ReasonUnknown + 1][]byte {
		var b [auth.ReasonUnknown + 1][]byte
		for r := auth.ReasonMissing; r <= auth.ReasonUnknown; r++ {
			b[r] = []byte(`{"error":{"message":"` + r.Message() +
				`","type":"invalid_request_error","param":"authorization","code":"invalid_api_key"}}`)
		}
		return b
	}()

	// body400BareLF answers a request head whose lines end in a bare LF
	// (listen.ErrBareLFHead).
	body400BareLF = apierr.Body("Malformed HTTP request: lines of the request head must end in CRLF", "invalid_request_error", "bad_request")
)
