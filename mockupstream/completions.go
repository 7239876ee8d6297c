package mockupstream

import (
	"strconv"
	"time"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/valyala/fasthttp"
)

// completions answers POST /v1/completions.
func (m *Mock) completions(ctx *fasthttp.RequestCtx) {
	p := parsers.Get()
	defer parsers.Put(p)
	var req completionRequest
	if !m.parseCompletion(ctx, p, &req) {
		return
	}
	prompt := estimateTokens(len(ctx.PostBody()))
	if req.stream {
		m.stream(ctx, streamCompletion, "cmpl-mock-", netconn.B2S(req.model), &req, prompt)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	b := ctx.Response.SwapBody(nil)[:0]
	b = append(b, `{"id":"cmpl-mock-`...)
	b = strconv.AppendUint(b, ctx.ID(), 16)
	b = append(b, `","object":"text_completion","created":`...)
	b = appendInt(b, time.Now().Unix())
	b = append(b, `,"model":`...)
	b = m.appendModel(b, netconn.B2S(req.model))
	words, cut := req.words(len(replyWords))
	b = append(b, `,"choices":[{"text":"`...)
	b = appendReply(b, words)
	b = append(b, `","index":0,"logprobs":null,"finish_reason":`...)
	b = appendFinish(b, cut)
	b = append(b, `}],"usage":`...)
	b = appendUsage(b, prompt, words)
	b = append(b, '}')
	ctx.Response.SwapBody(b)
}
