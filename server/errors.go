package server

import (
	"errors"
	"time"

	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/forwarded"
	"github.com/authgate/authgate/internal/listen"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/valyala/fasthttp"
)

// errorHandler answers requests fasthttp could not read, in OpenAI's error
// shape, and logs them like any other request, with what is known of them:
// under key_id "-", since such a request (a body over MaxRequestBody, say)
// is refused before its key is looked at, unless expectContinue admitted
// it on its head and its body then failed; then under its key_id, with
// status 499 if the client left. fasthttp resets a request head it could
// not parse: such a request is logged with method and path "-".
func (g *Gateway) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	status, body := parseErrorResponse(err)
	acct := g.none
	x := takeExpected(ctx, !headParsed(&ctx.Request.Header))
	if x != nil {
		acct = x.acct
		if proxy.ClientGone(err) {
			status = StatusClientClosed
		}
	}
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
	ctx.Response.SetBodyRaw(body)
	var rid [forwarded.MaxRequestID]byte
	id := forwarded.RequestID(&ctx.Request.Header, &rid)
	ctx.Response.Header.SetCanonical(strXRequestID, id)
	// ctx.Time() is not set for a request that could not be read: it would
	// be the previous request's time on a kept-alive connection.
	if x != nil && !headParsed(&ctx.Request.Header) {
		// fasthttp reset the request when its body failed.
		ctx.Request.Header.SetMethodBytes(x.method)
		ctx.Request.Header.SetRequestURIBytes(x.path)
	}
	g.logRequestAs(ctx, acct, time.Now(), id, served{}, x != nil || headParsed(&ctx.Request.Header))
}

// headParsed reports whether h holds a request head fasthttp parsed,
// rather than one it reset after failing to: a parsed head has a Host
// (HTTP/1.1 requires one) or a body.
func headParsed(h *fasthttp.RequestHeader) bool {
	return len(h.Host()) > 0 || h.ContentLength() != 0
}

// parseErrorResponse maps an error from reading a request to its status
// and body (apierr.ForReadError), a bare-LF head's 400 with its own
// message.
func parseErrorResponse(err error) (int, []byte) {
	if errors.Is(err, listen.ErrBareLFHead) {
		return fasthttp.StatusBadRequest, body400BareLF
	}
	return apierr.ForReadError(err)
}
