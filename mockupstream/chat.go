package mockupstream

import (
	"strconv"
	"time"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/valyala/fasthttp"
)

// replyWords is the mock's answer, one word per streamed chunk; the
// non-streamed answer is replyText, their concatenation.
var replyWords = [...]string{"Hello", " from", " the", " mock", " upstream."}

// replyText is the content of every non-streamed answer.
const replyText = "Hello from the mock upstream."

// chatCompletions answers POST /v1/chat/completions.
func (m *Mock) chatCompletions(ctx *fasthttp.RequestCtx) {
	p := parsers.Get()
	defer parsers.Put(p)
	var req completionRequest
	if !m.parseCompletion(ctx, p, &req) {
		return
	}
	prompt := estimateTokens(len(ctx.PostBody()))
	if req.stream {
		m.stream(ctx, streamChat, "chatcmpl-mock-", netconn.B2S(req.model), req.includeUsage, prompt)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	// Build the body in the response's own pooled buffer.
	b := ctx.Response.SwapBody(nil)[:0]
	b = append(b, `{"id":"chatcmpl-mock-`...)
	b = strconv.AppendUint(b, ctx.ID(), 16)
	b = append(b, `","object":"chat.completion","created":`...)
	b = appendInt(b, time.Now().Unix())
	b = append(b, `,"model":`...)
	b = m.appendModel(b, netconn.B2S(req.model))
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":"`+replyText+
		`"},"logprobs":null,"finish_reason":"stop"}],"usage":`...)
	b = appendUsage(b, prompt, len(replyWords))
	b = append(b, '}')
	ctx.Response.SwapBody(b)
}
