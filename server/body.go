package server

import (
	"bytes"
	"time"

	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/forwarded"
	"github.com/authgate/authgate/internal/listen"
	"github.com/authgate/authgate/internal/netconn"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/valyala/fasthttp"
)

// Request bodies on the public listener are streamed (fasthttp's
// StreamRequestBody), so that a request is answered on its headers alone
// when they decide it: no valid key (401), over its limit (429), a body
// declared over MaxRequestBody (413). Only an admitted request's body is
// read, and it goes to the upstream as it arrives, never held whole.
//
// What fasthttp v1.78.0 does, and how the gateway uses it:
//
//   - Before calling the handler, fasthttp reads min(MaxRequestBodySize,
//     Content-Length, 8 KiB) bytes of the body, waiting until they have
//     all arrived (readBodyWithStreaming); the rest, and a chunked body
//     (none of which is pre-read), is left to the handler's
//     Request.BodyStream. headerReceived makes that pre-read 1 byte for a
//     body over preReadMax, so that a request is decided as soon as its
//     first body byte is in; a body up to preReadMax is pre-read whole, and
//     refusing it leaves nothing unread.
//   - With streaming, fasthttp does not refuse a body over
//     MaxRequestBodySize (it only sizes the pre-read): the gateway does,
//     from Content-Length before the key is looked at, and while it streams
//     a chunked body to the upstream (bodyReader).
//   - After the handler, fasthttp discards up to 256 KiB of an unread body
//     to keep the connection, waiting for the client to send it. A refused
//     request whose body is not all read (bodyPending) closes its
//     connection instead ("Connection: close"), so the next request on it
//     can never be parsed out of the unread body, and closes it gently
//     (listen.CloseGently), so that a client still sending gets the response.
//   - "Expect: 100-continue" stops fasthttp before it reads any of the body
//     and calls the server's ExpectHandler (expectContinue), whose status
//     other than 100 is the answer, sent without "100 Continue" and with
//     the connection closed. headerReceived adds the expectation to a body
//     declared over MaxRequestBody, so that its 413 reads none of it.
//   - ctx.Request.Body (ctx.PostBody) reads a streamed body whole, so a
//     handler wrapped by Wrap may still call it.

// preReadMax is proxy.PreReadMax: the most of a body fasthttp reads
// before calling the handler (readBodyWithStreaming).
const preReadMax = proxy.PreReadMax

var str100Continue = []byte("100-continue")

// headerReceived runs when a request's headers have been read, before any
// of its body: a body declared over MaxRequestBody gets "Expect:
// 100-continue", so that expectContinue answers 413 before a byte of it is
// read (and without inviting the client to send it), and a body over
// preReadMax is pre-read by 1 byte only (see the top of this file).
func (g *Gateway) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	cl := h.ContentLength()
	if cl > g.cfg.MaxRequestBody {
		h.SetBytesKV(strExpect, str100Continue)
	}
	if cl > preReadMax {
		return fasthttp.RequestConfig{MaxRequestBodySize: 1}
	}
	return fasthttp.RequestConfig{}
}

// expectContinue is the public server's ExpectHandler: it decides a
// request with "Expect: 100-continue" on its headers alone, before any of
// its body is read, as the handler would: a body declared over
// MaxRequestBody is answered 413, a request without a valid key 401, one
// over its key_id's limit 429 (or 503 when the Limiter cannot decide),
// each logged; the client is never told to send the body, and the
// connection is closed (gently: see listen.CloseGently). An admitted request gets
// "100 Continue", and its admission is kept for the handler (expected),
// which then takes it through the rest of the request path without
// authenticating or counting it again; if the client leaves before its
// body is in, errorHandler logs it under its key_id.
//
// fasthttp documents that an ExpectHandler must not modify the response:
// v1.78.0 writes it as it is left, with the returned status, and
// closeGently writes it itself; TestRefusedBodyNotRead checks the 401's
// body.
func (g *Gateway) expectContinue(ctx *fasthttp.RequestCtx) int {
	if isProbe(ctx) {
		return fasthttp.StatusContinue
	}
	start := time.Now()
	var rid [forwarded.MaxRequestID]byte
	requestID := forwarded.RequestID(&ctx.Request.Header, &rid)
	if ctx.Request.Header.ContentLength() > g.cfg.MaxRequestBody {
		apierr.Write(ctx, fasthttp.StatusRequestEntityTooLarge, apierr.TooLarge)
		ctx.Response.Header.SetCanonical(strXRequestID, requestID)
		g.logRequest(ctx, g.none, start, requestID, served{})
	} else if acct, res := g.admit(ctx, start, requestID); acct != nil {
		if dc := netconn.Of(ctx.Conn()); dc != nil {
			dc.Slot = &expected{
				admission: admission{acct: acct, res: res},
				method:    append([]byte(nil), ctx.Method()...),
				path:      append([]byte(nil), ctx.Request.Header.RequestURI()...),
			}
		}
		return fasthttp.StatusContinue
	}
	// The client may be sending the body all the same: one that did not
	// ask (headerReceived's 413), or one that stopped waiting.
	listen.CloseGently(ctx, g.cfg.WriteTimeout)
	return ctx.Response.StatusCode()
}

// isProbe reports whether ctx is a GET or HEAD of /healthz or /readyz.
func isProbe(ctx *fasthttp.RequestCtx) bool {
	if !ctx.IsGet() && !ctx.IsHead() {
		return false
	}
	path := ctx.Request.Header.RequestURI()
	return bytes.Equal(path, strHealthz) || bytes.Equal(path, strReadyz)
}

// bodyTooLarge reports whether req's body is streamed and declared over
// limit: fasthttp has then left its refusal to the handler. (Without
// streaming fasthttp refuses it before the handler, through the error
// handler.)
func bodyTooLarge(req *fasthttp.Request, limit int) bool {
	return req.IsBodyStream() && req.Header.ContentLength() > limit
}
