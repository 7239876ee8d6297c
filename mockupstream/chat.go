package mockupstream

import (
	"strconv"
	"time"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/valyala/fasthttp"
)

// replyWords is the mock's answer, one word per streamed chunk; the
// non-streamed answer is their concatenation, "Hello from the mock
// upstream.", or its first max_tokens words.
var replyWords = [...]string{"Hello", " from", " the", " mock", " upstream."}

// replyText is the whole answer, the words' concatenation.
const replyText = "Hello from the mock upstream."

// appendReply appends the first n words of the reply.
func appendReply(dst []byte, n int) []byte {
	for _, w := range replyWords[:n] {
		dst = append(dst, w...)
	}
	return dst
}

// appendFinish appends the JSON finish_reason of an answer max_tokens cut
// or not.
func appendFinish(dst []byte, cut bool) []byte {
	if cut {
		return append(dst, `"length"`...)
	}
	return append(dst, `"stop"`...)
}

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
		m.stream(ctx, streamChat, "chatcmpl-mock-", netconn.B2S(req.model), &req, prompt)
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
	words, cut := req.words(len(replyWords))
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":"`...)
	b = appendReply(b, words)
	end := len(b)
	b = append(b, `"},"logprobs":null,"finish_reason":`...)
	b = appendFinish(b, cut)
	b = append(b, `}],"usage":`...)
	b = appendUsage(b, prompt, words)
	b = append(b, '}')
	if n := m.replyBytes - len(b); n > 0 {
		// Config.ReplyBytes: spaces at the end of the content.
		b = appendSpaces(b, n)
		copy(b[end+n:], b[end:len(b)-n])
		for i := end; i < end+n; i++ {
			b[i] = ' '
		}
	}
	ctx.Response.SwapBody(b)
}
