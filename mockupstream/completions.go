package mockupstream

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// completionRequest is the part of a legacy completion request the mock
// reads. The prompt is only skipped over: prompt_tokens is estimated from
// the body size.
type completionRequest struct {
	Model         string         `json:"model"`
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options"`
}

// completions answers POST /v1/completions.
func (m *Mock) completions(ctx *fasthttp.RequestCtx) {
	var req completionRequest
	if !parseBody(ctx, &req) {
		return
	}
	prompt := estimateTokens(len(ctx.PostBody()))
	if req.Stream {
		m.stream(ctx, streamCompletion, "cmpl-mock-", req.Model, req.StreamOptions, prompt)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	b := ctx.Response.SwapBody(nil)[:0]
	b = append(b, `{"id":"cmpl-mock-`...)
	b = strconv.AppendUint(b, ctx.ID(), 16)
	b = append(b, `","object":"text_completion","created":`...)
	b = appendInt(b, time.Now().Unix())
	b = append(b, `,"model":`...)
	b = m.appendModel(b, req.Model)
	b = append(b, `,"choices":[{"text":"`+replyText+
		`","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":`...)
	b = appendUsage(b, prompt, len(replyWords))
	b = append(b, '}')
	ctx.Response.SwapBody(b)
}
