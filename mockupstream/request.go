package mockupstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// errNotObject is reported when a request body is valid JSON but not an object.
var errNotObject = errors.New("the body is not a JSON object")

// completionRequest is the part of a chat or legacy completion request the
// mock reads. The rest (messages or prompt, sampling parameters, tools) is
// only checked to be JSON and skipped over: prompt_tokens is estimated from
// the body size.
type completionRequest struct {
	model           []byte // nil if not named; valid until the parser is put back
	stream          bool
	includeUsage    bool // "stream_options": {"include_usage": true}
	continuousUsage bool // "stream_options": {"continuous_usage_stats": true}
	maxTokens       int  // "max_completion_tokens", else "max_tokens"; 0 if neither
}

// words is how many words of the reply req gets: the reply's own number,
// or fewer under maxTokens; and whether maxTokens cut them.
func (req *completionRequest) words(reply int) (n int, cut bool) {
	if req.maxTokens > 0 && req.maxTokens < reply {
		return req.maxTokens, true
	}
	return reply, false
}

// parsers parse completion requests with valyala/fastjson, which, unlike
// encoding/json, allocates nothing per request once warm: the mock is the
// load benchmark's upstream and shares a core with the load generator, so
// its cost per request is the benchmark's headroom.
var parsers fastjson.ParserPool

// parseCompletion parses ctx's body with p into req: a JSON object whose
// "model" is a string, "stream" a boolean and "stream_options" an object
// with a boolean "include_usage", each optional or null. On failure it
// answers 400, or 404 for a model not served, and reports false.
func (m *Mock) parseCompletion(ctx *fasthttp.RequestCtx, p *fastjson.Parser, req *completionRequest) bool {
	*req = completionRequest{}
	v, err := p.ParseBytes(ctx.PostBody())
	if err != nil {
		invalidJSON(ctx, err)
		return false
	}
	o, err := v.Object()
	if err != nil {
		invalidJSON(ctx, errNotObject)
		return false
	}
	if f := member(o, "model"); f != nil {
		if req.model, err = f.StringBytes(); err != nil {
			invalidJSON(ctx, errFieldType("model", "a string"))
			return false
		}
	}
	if f := member(o, "stream"); f != nil {
		if req.stream, err = f.Bool(); err != nil {
			invalidJSON(ctx, errFieldType("stream", "a boolean"))
			return false
		}
	}
	for _, name := range []string{"max_tokens", "max_completion_tokens"} {
		if f := member(o, name); f != nil {
			n, err := f.Int()
			if err != nil || n < 1 {
				invalidJSON(ctx, errFieldType(name, "a positive integer"))
				return false
			}
			req.maxTokens = n // max_completion_tokens, read last, wins
		}
	}
	if f := member(o, "stream_options"); f != nil {
		if m.rejectStreamOptions {
			badRequest(ctx, "stream_options: Extra inputs are not permitted", "stream_options", "invalid_request_error")
			return false
		}
		so, err := f.Object()
		if err != nil {
			invalidJSON(ctx, errFieldType("stream_options", "an object"))
			return false
		}
		if u := member(so, "include_usage"); u != nil {
			if req.includeUsage, err = u.Bool(); err != nil {
				invalidJSON(ctx, errFieldType("stream_options.include_usage", "a boolean"))
				return false
			}
		}
		if u := member(so, "continuous_usage_stats"); u != nil {
			if req.continuousUsage, err = u.Bool(); err != nil {
				invalidJSON(ctx, errFieldType("stream_options.continuous_usage_stats", "a boolean"))
				return false
			}
		}
	}
	if !m.cat.Load().serves(req.model) {
		modelNotFound(ctx, req.model)
		return false
	}
	return true
}

// member returns o's member key, or nil if it is absent or null.
func member(o *fastjson.Object, key string) *fastjson.Value {
	v := o.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil
	}
	return v
}

// errFieldType reports a member of the wrong JSON type.
func errFieldType(field, want string) error {
	return fmt.Errorf("the %q member must be %s", field, want)
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
// reports: the requested one, or the first configured one when none was
// named.
func (m *Mock) appendModel(dst []byte, requested string) []byte {
	if requested == "" {
		return append(dst, m.cat.Load().defaultJSON...)
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
