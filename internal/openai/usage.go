package openai

// Usage is the token count an upstream reports in a "usage" object: chat
// completions, completions and embeddings name its members prompt_tokens,
// completion_tokens and total_tokens, the Responses API input_tokens,
// output_tokens and total_tokens.
type Usage struct {
	Prompt     int // prompt_tokens, else input_tokens
	Completion int // completion_tokens, else output_tokens; 0 for embeddings
	Total      int // total_tokens, else Prompt + Completion
}

// ParseUsage reads the top-level "usage" of a response body that is not
// streamed, and reports whether there is one: an object with at least one
// of the members above, each a non-negative integer or null. Of several
// "usage" members the last counts, as for the client's JSON parser. A body
// that is not a JSON object has none.
func ParseUsage(body []byte) (Usage, bool) {
	r := ParseResponse(body)
	return r.Usage, r.HasUsage
}

// Response is what ParseResponse reads of a response body.
type Response struct {
	// Model is the top-level "model" string, unescaped, or nil if there
	// is none (or it is not a string). It aliases the body when the
	// string has no escapes, and is a copy otherwise.
	Model []byte
	// Usage is the top-level "usage", as ParseUsage reads it, if HasUsage.
	Usage    Usage
	HasUsage bool
}

// ParseResponse reads the top-level "model" and "usage" of a response
// body that is not streamed, in one pass. A body that is not a JSON
// object has neither.
func ParseResponse(body []byte) Response {
	o, err := openDocument(body)
	if err != nil {
		return Response{}
	}
	var r Response
	for o.next() {
		switch {
		case o.keyIs("usage"):
			r.Usage, r.HasUsage = readUsage(body, o.val, o.depth)
		case o.keyIs("model"):
			r.Model = nil
			if v := body[o.val.start:o.val.end]; v[0] == '"' {
				r.Model, _ = readText(v)
			}
		}
	}
	if o.close() != nil {
		return Response{}
	}
	return r
}

// readUsage reads the checked value v of a "usage" member, depth levels
// inside the document.
func readUsage(b []byte, v span, depth int) (Usage, bool) {
	if b[v.start] != '{' {
		return Usage{}, false
	}
	// Of a member given twice the last counts; a member that is not a
	// count spoils the usage if it is the one used.
	type count struct {
		n        int
		set, bad bool
	}
	var prompt, completion, input, output, total count
	o, _ := openObject(b, v.start, depth)
	for o.next() {
		var m *count
		switch {
		case o.keyIs("prompt_tokens"):
			m = &prompt
		case o.keyIs("completion_tokens"):
			m = &completion
		case o.keyIs("input_tokens"):
			m = &input
		case o.keyIs("output_tokens"):
			m = &output
		case o.keyIs("total_tokens"):
			m = &total
		default:
			continue
		}
		val := b[o.val.start:o.val.end]
		if isNull(val) {
			*m = count{}
			continue
		}
		n, ok := readInt(val)
		*m = count{n: n, set: ok, bad: !ok}
	}
	if !prompt.set && !prompt.bad {
		prompt = input
	}
	if !completion.set && !completion.bad {
		completion = output
	}
	if prompt.bad || completion.bad || total.bad || !prompt.set && !completion.set && !total.set {
		return Usage{}, false
	}
	u := Usage{Prompt: prompt.n, Completion: completion.n, Total: total.n}
	if !total.set {
		u.Total = u.Prompt + u.Completion
	}
	return u, true
}
