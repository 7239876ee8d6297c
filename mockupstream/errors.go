package mockupstream

import (
	"github.com/valyala/fasthttp"
)

// writeError answers status with OpenAI's error shape:
//
//	{"error":{"message":MSG,"type":"invalid_request_error","param":PARAM,"code":CODE}}
//
// An empty param is written as null. msg is escaped; param and code must be
// plain JSON-safe ASCII.
func writeError(ctx *fasthttp.RequestCtx, status int, msg []byte, param, code string) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	b := ctx.Response.SwapBody(nil)[:0]
	b = append(b, `{"error":{"message":`...)
	b = appendJSONBytes(b, msg)
	b = append(b, `,"type":"invalid_request_error","param":`...)
	if param == "" {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = append(b, param...)
		b = append(b, '"')
	}
	b = append(b, `,"code":"`...)
	b = append(b, code...)
	b = append(b, `"}}`...)
	ctx.Response.SwapBody(b)
}

// notFound answers 404 for a path the mock does not serve.
func notFound(ctx *fasthttp.RequestCtx) {
	msg := append([]byte("Invalid URL ("), ctx.Method()...)
	msg = append(msg, ' ')
	msg = append(msg, ctx.Path()...)
	msg = append(msg, ')')
	writeError(ctx, fasthttp.StatusNotFound, msg, "", "not_found")
}

// methodNotAllowed answers 405 with an Allow header listing allow.
func methodNotAllowed(ctx *fasthttp.RequestCtx, allow []byte) {
	ctx.Response.Header.SetBytesKV(strAllow, allow)
	msg := append([]byte("Method "), ctx.Method()...)
	msg = append(msg, " not allowed for "...)
	msg = append(msg, ctx.Path()...)
	msg = append(msg, "; use "...)
	msg = append(msg, allow...)
	writeError(ctx, fasthttp.StatusMethodNotAllowed, msg, "", "method_not_allowed")
}

// badRequest answers 400 with msg.
func badRequest(ctx *fasthttp.RequestCtx, msg, param, code string) {
	writeError(ctx, fasthttp.StatusBadRequest, []byte(msg), param, code)
}

// invalidJSON answers 400 for a body that cannot be parsed.
func invalidJSON(ctx *fasthttp.RequestCtx, err error) {
	badRequest(ctx, "We could not parse the JSON body of your request: "+err.Error(), "", "invalid_json")
}
