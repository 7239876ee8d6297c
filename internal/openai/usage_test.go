package openai

import "testing"

func TestParseUsage(t *testing.T) {
	f := func(body string, want Usage, wantOK bool) {
		t.Helper()
		got, ok := ParseUsage([]byte(body))
		if got != want || ok != wantOK {
			t.Fatalf("ParseUsage(%s) = %+v, %v; want %+v, %v", body, got, ok, want, wantOK)
		}
	}
	// Chat completions, with a "usage" in the content that does not count.
	f(`{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"{\"usage\":{\"prompt_tokens\":1}}","usage":{"prompt_tokens":1}}}],`+
		`"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":8}}}`, Usage{12, 5, 17}, true)
	// Embeddings: no completion tokens.
	f(`{"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}`, Usage{8, 0, 8}, true)
	// vLLM may send a null completion_tokens.
	f(`{"usage":{"prompt_tokens":8,"completion_tokens":null,"total_tokens":8}}`, Usage{8, 0, 8}, true)
	// The Responses API.
	f(`{"object":"response","output":[],"usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":0},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":34}}`,
		Usage{30, 4, 34}, true)
	// No total: the sum.
	f(`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, Usage{3, 4, 7}, true)
	// The last "usage" counts.
	f(`{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}`, Usage{2, 0, 2}, true)
	f(`{"usage":{"prompt_tokens":1},"usage":null}`, Usage{}, false)

	f(`{}`, Usage{}, false)
	f(`{"usage":null}`, Usage{}, false)
	f(`{"usage":{}}`, Usage{}, false)
	f(`{"usage":{"cached":1}}`, Usage{}, false)
	f(`{"usage":[1]}`, Usage{}, false)
	f(`{"usage":{"prompt_tokens":-1}}`, Usage{}, false)
	f(`{"usage":{"prompt_tokens":1.5}}`, Usage{}, false)
	f(`{"usage":{"prompt_tokens":"1"}}`, Usage{}, false)
	f(`{"usage":{"prompt_tokens":1}`, Usage{}, false)
	f(`{"usage":{"prompt_tokens":1}} x`, Usage{}, false)
	f(`[{"usage":{"prompt_tokens":1}}]`, Usage{}, false)
}

// TestParseResponse: the top-level model and usage in one pass; a "model"
// inside choices is not the response's; a model that is not a string is
// none; a body that is not a JSON object has neither.
func TestParseResponse(t *testing.T) {
	f := func(body, wantModel string, wantUsage Usage, wantHas bool) {
		t.Helper()
		r := ParseResponse([]byte(body))
		if string(r.Model) != wantModel || r.Usage != wantUsage || r.HasUsage != wantHas {
			t.Errorf("ParseResponse(%s) = %q, %+v, %v; want %q, %+v, %v", body, r.Model, r.Usage, r.HasUsage, wantModel, wantUsage, wantHas)
		}
	}
	f(`{"model":"qwen","usage":{"prompt_tokens":3,"completion_tokens":4}}`, "qwen", Usage{3, 4, 7}, true)
	f(`{"usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7},"choices":[{"model":"x"}],"model":"q\u0077en"}`, "qwen", Usage{3, 4, 7}, true)
	f(`{"model":7,"usage":{"prompt_tokens":1}}`, "", Usage{1, 0, 1}, true)
	f(`{"model":"a","model":"b"}`, "b", Usage{}, false)
	f(`["model","usage"]`, "", Usage{}, false)
	f(`{"model":"a"`, "", Usage{}, false)
}
