package mockupstream

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/valyala/fasthttp"
)

// errNotObject is reported when a request body is valid JSON but not an object.
var errNotObject = errors.New("the body is not a JSON object")

// streamOptions is the "stream_options" member of a completion request.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// parseBody unmarshals the request body, which must be a JSON object, into
// v. On failure it answers 400 and reports false.
func parseBody(ctx *fasthttp.RequestCtx, v any) bool {
	body := ctx.PostBody()
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] != '{' {
		invalidJSON(ctx, errNotObject)
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		invalidJSON(ctx, err)
		return false
	}
	return true
}

// estimateTokens is the mock's token count for n bytes of input: one token
// per four bytes, rounded up, at least one.
func estimateTokens(n int) int {
	return max(1, (n+3)/4)
}

// appendModel appends the JSON string literal of the model a response
// reports: the requested one, or the configured one when none was named.
func (m *Mock) appendModel(dst []byte, requested string) []byte {
	if requested == "" {
		return append(dst, m.modelJSON...)
	}
	return appendJSONString(dst, requested)
}

// appendUsage appends OpenAI's usage object.
func appendUsage(dst []byte, prompt, completion int) []byte {
	dst = append(dst, `{"prompt_tokens":`...)
	dst = appendInt(dst, int64(prompt))
	dst = append(dst, `,"completion_tokens":`...)
	dst = appendInt(dst, int64(completion))
	dst = append(dst, `,"total_tokens":`...)
	dst = appendInt(dst, int64(prompt+completion))
	return append(dst, '}')
}
