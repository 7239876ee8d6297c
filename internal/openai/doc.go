// Package openai reads and edits, in place, the members of OpenAI-compatible
// request and response bodies that a gateway routes and meters by: the
// top-level "model", "stream", "stream_options", the max tokens members and
// "n" of a request (ParseRequest), which it can rewrite or extend
// (Request.AppendBody); the "model" field of a multipart/form-data request
// (MultipartModel); the "usage" of a response (ParseUsage) and of the events
// of a stream (SSEScanner); and an upstream's model list (ParseModelList).
//
// It reads what the upstream will read, or refuses the body. A JSON body is
// checked whole, as RFC 8259 defines JSON (no NaN, no byte order mark, no
// trailing commas), nesting at most MaxDepth deep; only top-level members
// count, matched by their name once unescaped, as encoding/json and
// Python's json match them; a member the package reads that is given twice
// is refused (ErrDuplicate), because Python's json, and so vLLM and SGLang
// behind FastAPI, keep the last one and other parsers the first; so is one
// of an unexpected type (ErrType), since pydantic would coerce "true" or
// 10.0 where the gateway would not. A multipart body is held to the form
// clients send (see MultipartModel). Errors name the member at fault and
// quote nothing of the body. The bounds: MaxDepth for JSON, MaxPartHeader
// for a multipart header block, SSEScanner.MaxEvent bytes held per stream,
// MaxModels and MaxModelListSize for a model list.
//
// The hot paths allocate nothing: ParseRequest (unless the model name has
// escapes), AppendBody into a large enough dst, ParseUsage, and
// SSEScanner per event once its buffer has grown.
//
// The JSON scanner is the package's own, chosen by benchmark against the
// libraries made to read as strictly (BenchmarkTopLevelModel): reading the
// model last in a 64 KiB chat body takes it 34 µs, 4 MiB 2.1 ms, with no
// allocation; tidwall/gjson checked (ValidBytes, then ForEach over the
// top-level members) 71 µs and 4.0 ms, valyala/fastjson checked
// (ValidateBytes, since its parser does not check strings, then the parse)
// 42 µs and 3.0 ms, also allocation-free; encoding/json 352 µs and 21 ms.
// Unchecked, both are faster and wrong: gjson takes the first of two
// "model" members and reads a model from a body that is not JSON,
// fastjson's parser accepts raw control characters and invalid escapes
// (TestModelReadersDisagree). The scanner also
// gives the places of the values, so that AppendBody splices them, where
// fastjson would re-encode the whole body and gjson would scan it again.
package openai
