package openai

import (
	"unicode/utf8"

	"github.com/authgate/authgate/internal/jsonenc"
)

// Request is what ParseRequest reads from the JSON body of a chat
// completions, completions, embeddings or Responses API request. A member
// that is absent or null has its zero value, except N, which is then 1.
type Request struct {
	// Model is the top-level "model", unescaped. It aliases the body when
	// the string has no escapes, and is a copy otherwise: keep it no longer
	// than the body unless copied. Nil when HasModel is false.
	Model    []byte
	HasModel bool

	// Stream is "stream". IncludeUsage and ContinuousUsage are
	// "stream_options.include_usage" and
	// "stream_options.continuous_usage_stats" (vLLM and SGLang: usage in
	// every chunk, when include_usage is true too).
	Stream          bool
	IncludeUsage    bool
	ContinuousUsage bool

	// MaxTokens is the output limit the upstream applies and MaxTokensField
	// the member it came from: "max_completion_tokens", else "max_tokens"
	// (vLLM's precedence when both are given), else "max_output_tokens"
	// (Responses API); "" and 0 when none is given.
	MaxTokens      int
	MaxTokensField string

	// N is "n", the number of choices, 1 when absent.
	N int

	// PromptBound is an upper bound on the prompt tokens the upstream
	// counts: the length of the body in bytes. A token of a byte-level BPE
	// tokenizer (GPT-2's and its heirs': Llama 3, Qwen, Mistral's Tekken)
	// or of SentencePiece with byte fallback stands for at least one byte
	// of text; JSON spends at least as many bytes on a text as the text
	// has; and a message's JSON framing ({"role":"user","content":""}, 28
	// bytes) outnumbers the few special tokens a chat template puts around
	// it. It is not a bound for a media part given by URL (image_url,
	// video_url), which a model may expand to thousands of tokens, nor for
	// a chat template that adds a long text of its own (a default system
	// prompt); for plain English text it is about four times the count.
	PromptBound int

	// Where things are in the body, for AppendBody; start < 0 when absent.
	open          int  // the top-level '{'
	empty         bool // the top-level object has no members
	model         span // the value of "model" (also null)
	streamOptions span // the value of "stream_options" (also null)
	soEmpty       bool // stream_options is {}
	includeUsage  span // the value of "stream_options.include_usage"
}

// The top-level members ParseRequest reads, in the order of requestFields.
const (
	fieldModel = iota
	fieldStream
	fieldStreamOptions
	fieldMaxCompletionTokens
	fieldMaxTokens
	fieldMaxOutputTokens
	fieldN
)

var requestFields = [...]string{
	fieldModel:               "model",
	fieldStream:              "stream",
	fieldStreamOptions:       "stream_options",
	fieldMaxCompletionTokens: "max_completion_tokens",
	fieldMaxTokens:           "max_tokens",
	fieldMaxOutputTokens:     "max_output_tokens",
	fieldN:                   "n",
}

// ParseRequest reads body, which must be one JSON object, and returns what
// it holds for routing and metering. It checks the whole body (RFC 8259,
// nesting at most MaxDepth deep), and refuses with a *FieldError a member
// it reads that is given twice (Python's json, and so vLLM and SGLang, keep
// the last; other parsers the first) or that has another type than the
// upstream expects: "model" a string of UTF-8 text (not with a lone
// surrogate escape), "stream", "stream_options.include_usage" and
// "stream_options.continuous_usage_stats" booleans, "stream_options" an
// object, "n" a positive integer and the max tokens members non-negative
// integers (digits only: not 1e3, 10.0 or "10"); each may also be null.
// Names are matched once unescaped, as encoding/json and Python's json
// match them: "mo\u0064el" is "model", "Model" is not. Errors wrap
// ErrSyntax, ErrNotObject, ErrTooDeep, ErrDuplicate or ErrType, and quote
// nothing of the body.
//
// It allocates only to unescape a model name that has escapes.
func ParseRequest(body []byte) (Request, error) {
	r := Request{
		N:             1,
		PromptBound:   len(body),
		model:         span{-1, -1},
		streamOptions: span{-1, -1},
		includeUsage:  span{-1, -1},
	}
	o, err := openDocument(body)
	if err != nil {
		return Request{}, err
	}
	r.open = skipSpace(body, 0)
	var seen uint
	var maxTokens [3]optionalInt // by fieldMaxCompletionTokens - fieldMaxCompletionTokens, ...
	for o.next() {
		f := -1
		for i, name := range requestFields {
			if o.keyIs(name) {
				f = i
				break
			}
		}
		if f < 0 {
			continue
		}
		if seen&(1<<f) != 0 {
			return Request{}, &FieldError{requestFields[f], ErrDuplicate}
		}
		seen |= 1 << f
		v := body[o.val.start:o.val.end]
		switch f {
		case fieldModel:
			r.model = o.val
			if isNull(v) {
				break
			}
			if r.Model, err = readText(v); err != nil {
				return Request{}, &FieldError{"model", ErrType}
			}
			r.HasModel = true
		case fieldStream:
			if r.Stream, err = readBool(v, "stream"); err != nil {
				return Request{}, err
			}
		case fieldStreamOptions:
			r.streamOptions = o.val
			if err := r.readStreamOptions(body, o.depth); err != nil {
				return Request{}, err
			}
		case fieldMaxCompletionTokens, fieldMaxTokens, fieldMaxOutputTokens:
			m := &maxTokens[f-fieldMaxCompletionTokens]
			if err := m.read(v, requestFields[f], 0); err != nil {
				return Request{}, err
			}
		case fieldN:
			var n optionalInt
			if err := n.read(v, "n", 1); err != nil {
				return Request{}, err
			}
			if n.set {
				r.N = n.n
			}
		}
	}
	if err := o.close(); err != nil {
		return Request{}, err
	}
	r.empty = !o.started
	for i, m := range maxTokens {
		if m.set {
			r.MaxTokens, r.MaxTokensField = m.n, requestFields[fieldMaxCompletionTokens+i]
			break
		}
	}
	return r, nil
}

// readStreamOptions reads the checked value of "stream_options", whose
// members are depth levels inside the document.
func (r *Request) readStreamOptions(body []byte, depth int) error {
	v := body[r.streamOptions.start:r.streamOptions.end]
	if isNull(v) {
		return nil
	}
	if v[0] != '{' {
		return &FieldError{"stream_options", ErrType}
	}
	o, _ := openObject(body, r.streamOptions.start, depth)
	r.soEmpty = true
	var continuous bool
	for o.next() {
		r.soEmpty = false
		v := body[o.val.start:o.val.end]
		var err error
		switch {
		case o.keyIs("include_usage"):
			if r.includeUsage.start >= 0 {
				return &FieldError{"stream_options.include_usage", ErrDuplicate}
			}
			r.includeUsage = o.val
			r.IncludeUsage, err = readBool(v, "stream_options.include_usage")
		case o.keyIs("continuous_usage_stats"):
			if continuous {
				return &FieldError{"stream_options.continuous_usage_stats", ErrDuplicate}
			}
			continuous = true
			r.ContinuousUsage, err = readBool(v, "stream_options.continuous_usage_stats")
		}
		if err != nil {
			return err
		}
	}
	return nil // the value was checked whole: o.err is nil
}

// isNull reports whether the checked value v is null.
func isNull(v []byte) bool { return v[0] == 'n' }

// readBool reads the checked value v of member field as a boolean; null
// is false.
func readBool(v []byte, field string) (bool, error) {
	switch v[0] {
	case 't':
		return true, nil
	case 'f', 'n':
		return false, nil
	}
	return false, &FieldError{field, ErrType}
}

// readText returns the text of the checked string v, unescaped: a slice of
// v when it has no escapes, a copy otherwise. It fails if v is not a
// string, or not UTF-8 text.
func readText(v []byte) ([]byte, error) {
	if v[0] != '"' {
		return nil, ErrType
	}
	raw := v[1 : len(v)-1]
	for _, c := range raw {
		if c == '\\' {
			text, ok := appendText(make([]byte, 0, len(raw)), raw)
			if !ok {
				return nil, ErrType
			}
			return text, nil
		}
	}
	if !utf8.Valid(raw) {
		return nil, ErrType
	}
	return raw, nil
}

// optionalInt is an integer member that may be absent or null.
type optionalInt struct {
	n   int
	set bool
}

// read reads the checked value v of member field: null, or an integer no
// less than low.
func (m *optionalInt) read(v []byte, field string, low int) error {
	if isNull(v) {
		return nil
	}
	n, ok := readInt(v)
	if !ok || n < low {
		return &FieldError{field, ErrType}
	}
	m.n, m.set = n, true
	return nil
}

// Edit is what AppendBody changes in a request body. The zero Edit
// changes nothing.
type Edit struct {
	// Model, if not "", is the new top-level "model" (UTF-8 text); it is
	// added where the body names none.
	Model string

	// IncludeUsage asks the upstream for the usage of a streamed request:
	// "stream_options":{"include_usage":true}, merged into an existing
	// stream_options object (its other members, such as
	// continuous_usage_stats, are kept). It changes nothing in a request
	// that is not streamed, since vLLM refuses stream_options there, nor in
	// one that asks for usage already. The stream then ends with a chunk
	// of usage and no choices (SSEEvent.UsageOnly), which a gateway drops
	// when the client did not ask for it. Where the client sent
	// continuous_usage_stats without include_usage, vLLM then adds usage to
	// every chunk too.
	IncludeUsage bool
}

// AppendBody appends body, the body r was parsed from, to dst with the
// changes e, and returns the extended slice. Every byte outside the
// changed values is kept as it was.
func (r *Request) AppendBody(dst, body []byte, e Edit) []byte {
	usage := e.IncludeUsage && r.Stream && !r.IncludeUsage
	addModel := e.Model != "" && r.model.start < 0
	addOptions := usage && r.streamOptions.start < 0
	pos := 0
	if addModel || addOptions {
		pos = r.open + 1
		dst = append(dst, body[:pos]...)
		if addModel {
			dst = jsonenc.AppendString(append(dst, `"model":`...), e.Model)
		}
		if addModel && addOptions {
			dst = append(dst, ',')
		}
		if addOptions {
			dst = append(dst, `"stream_options":{"include_usage":true}`...)
		}
		if !r.empty {
			dst = append(dst, ',')
		}
	}

	// At most two changes inside the body, in the order they appear.
	type change struct {
		at    span
		text  string // or the model, when model is true
		model bool
	}
	var changes [2]change
	n := 0
	if e.Model != "" && r.model.start >= 0 {
		changes[n] = change{at: r.model, model: true}
		n++
	}
	if usage && r.streamOptions.start >= 0 {
		so := r.streamOptions
		switch {
		case isNull(body[so.start:so.end]):
			changes[n] = change{at: so, text: `{"include_usage":true}`}
		case r.includeUsage.start >= 0: // false or null
			changes[n] = change{at: r.includeUsage, text: `true`}
		case r.soEmpty:
			changes[n] = change{at: span{so.start + 1, so.start + 1}, text: `"include_usage":true`}
		default:
			changes[n] = change{at: span{so.start + 1, so.start + 1}, text: `"include_usage":true,`}
		}
		n++
	}
	if n == 2 && changes[1].at.start < changes[0].at.start {
		changes[0], changes[1] = changes[1], changes[0]
	}
	for _, c := range changes[:n] {
		dst = append(dst, body[pos:c.at.start]...)
		if c.model {
			dst = jsonenc.AppendString(dst, e.Model)
		} else {
			dst = append(dst, c.text...)
		}
		pos = c.at.end
	}
	return append(dst, body[pos:]...)
}

// RewriteModel appends body to dst with its top-level "model" replaced by
// model (added if it names none). It is shorthand for ParseRequest then
// AppendBody; a caller that has parsed the body already calls AppendBody.
func RewriteModel(dst, body []byte, model string) ([]byte, error) {
	r, err := ParseRequest(body)
	if err != nil {
		return dst, err
	}
	return r.AppendBody(dst, body, Edit{Model: model}), nil
}

// InjectIncludeUsage appends body to dst with
// "stream_options":{"include_usage":true} merged in, as Edit.IncludeUsage
// describes: a body that is not streamed, or asks for usage already, is
// appended unchanged. It is shorthand for ParseRequest then AppendBody.
func InjectIncludeUsage(dst, body []byte) ([]byte, error) {
	r, err := ParseRequest(body)
	if err != nil {
		return dst, err
	}
	return r.AppendBody(dst, body, Edit{IncludeUsage: true}), nil
}
