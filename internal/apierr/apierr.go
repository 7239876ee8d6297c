// Package apierr builds the gateway's error bodies in OpenAI's shape,
// {"error":{"message":…,"type":…,"param":null,"code":…}}, and holds those
// that more than one package answers with.
package apierr

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/authgate/authgate/internal/safelog"
	"github.com/valyala/fasthttp"
)

// Body returns an OpenAI-shaped error body. The arguments are constants
// of the program: they are not JSON-escaped.
func Body(message, typ, code string) []byte {
	return []byte(`{"error":{"message":"` + message + `","type":"` + typ + `","param":null,"code":"` + code + `"}}`)
}

// The bodies of requests that could not be read. They are shared: never
// modify them.
var (
	BadRequest     = Body("Malformed HTTP request", "invalid_request_error", "bad_request")
	TooLarge       = Body("Request body too large", "invalid_request_error", "request_too_large")
	HeaderTooLarge = Body("Request header fields too large", "invalid_request_error", "request_header_too_large")
	Timeout        = Body("Timed out reading the request", "invalid_request_error", "request_timeout")
)

// ForReadError maps an error from reading a request to its status and
// body: 413 for a body over the limit, 431 for headers over the read
// buffer, 408 for a read timeout, 400 for anything malformed.
func ForReadError(err error) (int, []byte) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, TooLarge
	case errors.As(err, &small), errors.Is(err, fasthttp.ErrSmallReadBuffer):
		return fasthttp.StatusRequestHeaderFieldsTooLarge, HeaderTooLarge
	case safelog.IsTimeout(err):
		return fasthttp.StatusRequestTimeout, Timeout
	default:
		return fasthttp.StatusBadRequest, BadRequest
	}
}

// MaxShownModel is the most bytes of a model name an error body shows.
const MaxShownModel = 256

// ModelNotFound is the 404 body for a model that is unknown or that the
// key_id may not use: the same body either way, so that a key cannot
// probe what exists (docs/http.md#model-routing). The name is cut to
// MaxShownModel bytes, made valid UTF-8 and JSON-escaped.
func ModelNotFound(model []byte) []byte {
	if len(model) > MaxShownModel {
		cut := MaxShownModel
		for cut > 0 && !utf8.RuneStart(model[cut]) {
			cut--
		}
		model = model[:cut]
	}
	name, _ := json.Marshal(strings.ToValidUTF8(string(model), "\uFFFD"))
	body := make([]byte, 0, len(name)+160)
	body = append(body, "{\"error\":{\"message\":\"The model `"...)
	body = append(body, name[1:len(name)-1]...)
	return append(body, "` does not exist or you do not have access to it.\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}"...)
}

var strContentTypeJSON = []byte("application/json")

// Write answers ctx with status and the JSON body, which is shared (one
// of this package's bodies, say): never modified.
func Write(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
	ctx.Response.SetBodyRaw(body)
}
