package server

import (
	"errors"
	"time"

	"github.com/valyala/fasthttp"
)

// errorHandler answers requests fasthttp could not read, in OpenAI's error
// shape, and logs them like any other request, under key_id "-": such a
// request (a body over MaxRequestBody, say) is refused before its key is
// looked at.
func (g *Gateway) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	status, body := parseErrorResponse(err)
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
	ctx.Response.SetBodyRaw(body)
	var rid [maxRequestID]byte
	id := requestID(&ctx.Request.Header, &rid)
	ctx.Response.Header.SetCanonical(strXRequestID, id)
	// ctx.Time() is not set for a request that could not be read: it would
	// be the previous request's time on a kept-alive connection.
	g.logRequest(ctx, g.none, time.Now(), id, "")
}

// parseErrorResponse maps an error from reading a request to its status
// and body: 413 for a body over MaxRequestBody, 431 for headers over the
// read buffer (Config.MaxHeaderBytes), 408 for a read timeout, 400 for
// anything malformed.
func parseErrorResponse(err error) (int, []byte) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, body413
	case errors.As(err, &small), errors.Is(err, fasthttp.ErrSmallReadBuffer):
		return fasthttp.StatusRequestHeaderFieldsTooLarge, body431
	case isTimeout(err):
		return fasthttp.StatusRequestTimeout, body408
	default:
		return fasthttp.StatusBadRequest, body400
	}
}
