package openai

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	f := func(body string, want Request) {
		t.Helper()
		got, err := ParseRequest([]byte(body))
		if err != nil {
			t.Fatalf("ParseRequest(%s): %v", body, err)
		}
		if string(got.Model) != string(want.Model) || got.HasModel != want.HasModel ||
			got.Stream != want.Stream || got.IncludeUsage != want.IncludeUsage ||
			got.ContinuousUsage != want.ContinuousUsage || got.MaxTokens != want.MaxTokens ||
			got.MaxTokensField != want.MaxTokensField || got.N != want.N {
			t.Fatalf("ParseRequest(%s)\n got %+v\nwant %+v", body, got, want)
		}
		if got.PromptBound != len(body) {
			t.Fatalf("ParseRequest(%s): PromptBound %d, want %d", body, got.PromptBound, len(body))
		}
	}
	m := func(model string) Request { return Request{Model: []byte(model), HasModel: true, N: 1} }

	f(`{}`, Request{N: 1})
	f(` { "model" : "qwen" } `, m("qwen"))
	f(`{"model":""}`, m(""))
	f(`{"model":null}`, Request{N: 1})
	// Only the top-level member counts: not one in messages, in a tool's
	// schema, or inside a string.
	f(`{"messages":[{"role":"user","content":"\"model\":\"evil\"","model":"evil"}],`+
		`"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"model":{"type":"string"}}}}}],`+
		`"model":"qwen"}`, m("qwen"))
	f(`{"model":"qwen","messages":[{"role":"user","content":"hi","model":"evil"}]}`, m("qwen"))
	f(`{"Model":"evil","MODEL":"evil","model ":"evil"}`, Request{N: 1})
	// Escapes, decoded as encoding/json and Python's json decode them.
	f(`{"mo\u0064el":"\u0051wen"}`, m("Qwen"))
	f(`{"\u006d\u006f\u0064\u0065\u006c":"a\/b\n\"\\\t"}`, m("a/b\n\"\\\t"))
	f(`{"model":"\ud83d\ude00 é"}`, m("😀 é"))
	f(`{"mo\u0044el":"evil"}`, Request{N: 1})

	f(`{"stream":true}`, Request{Stream: true, N: 1})
	f(`{"stream":false,"stream_options":null}`, Request{N: 1})
	f(`{"stream":null}`, Request{N: 1})
	f(`{"stream":true,"stream_options":{"include_usage":true}}`, Request{Stream: true, IncludeUsage: true, N: 1})
	f(`{"stream":true,"stream_options":{"continuous_usage_stats":true,"include_usage":false}}`,
		Request{Stream: true, ContinuousUsage: true, N: 1})
	f(`{"stream_options":{"include_usage":null,"other":{"include_usage":true}}}`, Request{N: 1})

	f(`{"max_tokens":100}`, Request{MaxTokens: 100, MaxTokensField: "max_tokens", N: 1})
	f(`{"max_tokens":0}`, Request{MaxTokens: 0, MaxTokensField: "max_tokens", N: 1})
	f(`{"max_tokens":100,"max_completion_tokens":50}`, Request{MaxTokens: 50, MaxTokensField: "max_completion_tokens", N: 1})
	f(`{"max_completion_tokens":null,"max_tokens":100}`, Request{MaxTokens: 100, MaxTokensField: "max_tokens", N: 1})
	f(`{"max_output_tokens":7}`, Request{MaxTokens: 7, MaxTokensField: "max_output_tokens", N: 1})
	f(`{"max_tokens":999999999999999999}`, Request{MaxTokens: 999999999999999999, MaxTokensField: "max_tokens", N: 1})
	f(`{"n":3}`, Request{N: 3})
	f(`{"n":null}`, Request{N: 1})
	// Other members are only checked to be JSON.
	f(`{"temperature":-1.5e-3,"stop":["a",null,true,false,{}],"x":[[]]}`, Request{N: 1})
}

func TestParseRequestErrors(t *testing.T) {
	f := func(body string, want error, field string) {
		t.Helper()
		_, err := ParseRequest([]byte(body))
		if !errors.Is(err, want) {
			t.Fatalf("ParseRequest(%q) = %v, want %v", body, err, want)
		}
		var fe *FieldError
		if errors.As(err, &fe) != (field != "") || field != "" && fe.Field != field {
			t.Fatalf("ParseRequest(%q) = %v, want a FieldError for %q", body, err, field)
		}
	}
	for _, body := range []string{
		``, ` `, `{`, `}`, `{"model":"a"`, `{"model":"a",}`, `{"model" "a"}`, `{"model":"a"}}`,
		`{"model":"a"} x`, `{"model":"a"}{}`, `{model:"a"}`, `{'model':'a'}`, `{"a":01}`, `{"a":1.}`,
		`{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":+1}`, `{"a":NaN}`, `{"a":Infinity}`, `{"a":tru}`,
		`{"a":nul}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"\t\"}", "{\"a\":\"\x00\"}",
		`{"a":[1,]}`, `{"a":[1 2]}`, `{"a":{"b"}}`, `{"a":{"b":1,}}`, "\xef\xbb\xbf{}", `{"a":"unterminated}`,
		`{"model":"a","messages":[{"content":"x"]}`,
	} {
		f(body, ErrSyntax, "")
	}
	for _, body := range []string{`[]`, `"model"`, `1`, `null`, ` [{"model":"a"}] `} {
		f(body, ErrNotObject, "")
	}
	// MaxDepth levels, the top-level object's included, and no more.
	if _, err := ParseRequest([]byte(`{"a":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`)); err != nil {
		t.Fatalf("MaxDepth levels: %v", err)
	}
	f(`{"a":`+strings.Repeat("[", MaxDepth)+strings.Repeat("]", MaxDepth)+`}`, ErrTooDeep, "")
	f(`{"a":`+strings.Repeat(`{"a":`, MaxDepth)+`1`+strings.Repeat("}", MaxDepth)+`}`, ErrTooDeep, "")

	f(`{"model":"a","model":"b"}`, ErrDuplicate, "model")
	f(`{"model":"a","mo\u0064el":"b"}`, ErrDuplicate, "model")
	f(`{"model":null,"model":"b"}`, ErrDuplicate, "model")
	f(`{"stream":false,"stream":true}`, ErrDuplicate, "stream")
	f(`{"n":1,"n":2}`, ErrDuplicate, "n")
	f(`{"max_tokens":1,"max_tokens":2}`, ErrDuplicate, "max_tokens")
	f(`{"stream_options":{},"stream_options":{}}`, ErrDuplicate, "stream_options")
	f(`{"stream_options":{"include_usage":false,"include_usage":true}}`, ErrDuplicate, "stream_options.include_usage")
	f(`{"stream_options":{"continuous_usage_stats":false,"continuous_usage_stats":true}}`, ErrDuplicate, "stream_options.continuous_usage_stats")

	f(`{"model":1}`, ErrType, "model")
	f(`{"model":["a"]}`, ErrType, "model")
	f(`{"model":"\ud800"}`, ErrType, "model")
	f(`{"model":"\udc00\ud800"}`, ErrType, "model")
	f("{\"model\":\"\xff\"}", ErrType, "model")
	f(`{"stream":"true"}`, ErrType, "stream")
	f(`{"stream":1}`, ErrType, "stream")
	f(`{"stream_options":[]}`, ErrType, "stream_options")
	f(`{"stream_options":true}`, ErrType, "stream_options")
	f(`{"stream_options":{"include_usage":"yes"}}`, ErrType, "stream_options.include_usage")
	f(`{"stream_options":{"continuous_usage_stats":0}}`, ErrType, "stream_options.continuous_usage_stats")
	f(`{"n":0}`, ErrType, "n")
	f(`{"n":-1}`, ErrType, "n")
	f(`{"n":1.0}`, ErrType, "n")
	f(`{"max_tokens":-1}`, ErrType, "max_tokens")
	f(`{"max_tokens":1e3}`, ErrType, "max_tokens")
	f(`{"max_tokens":"10"}`, ErrType, "max_tokens")
	f(`{"max_completion_tokens":10.5}`, ErrType, "max_completion_tokens")
	f(`{"max_output_tokens":9999999999999999999}`, ErrType, "max_output_tokens")
}

// TestParseRequestErrorsQuoteNothing: error messages name the member and
// the byte offset, never the bytes of the body.
func TestParseRequestErrorsQuoteNothing(t *testing.T) {
	for _, body := range []string{
		`{"model":"sk-secret","model":"sk-secret"}`,
		`{"messages":"sk-secret" sk-secret}`,
		`{"model":"sk-secret\ud800"}`,
		`["sk-secret"]`,
	} {
		_, err := ParseRequest([]byte(body))
		if err == nil || strings.Contains(err.Error(), "sk-secret") {
			t.Fatalf("ParseRequest(%q) = %v", body, err)
		}
	}
}

func TestAppendBody(t *testing.T) {
	f := func(body string, e Edit, want string) {
		t.Helper()
		r, err := ParseRequest([]byte(body))
		if err != nil {
			t.Fatalf("ParseRequest(%s): %v", body, err)
		}
		got := string(r.AppendBody([]byte("prefix:"), []byte(body), e))
		if got != "prefix:"+want {
			t.Fatalf("AppendBody(%s, %+v)\n got %s\nwant prefix:%s", body, e, got, want)
		}
		if !json.Valid([]byte(want)) {
			t.Fatalf("AppendBody(%s, %+v) = %s: not JSON", body, e, got)
		}
		again, err := ParseRequest([]byte(want))
		if err != nil {
			t.Fatalf("ParseRequest(%s) after AppendBody: %v", want, err)
		}
		if e.Model != "" && string(again.Model) != e.Model {
			t.Fatalf("AppendBody(%s, %+v): model %q", body, e, again.Model)
		}
		if e.IncludeUsage && again.Stream && !again.IncludeUsage {
			t.Fatalf("AppendBody(%s, %+v): no include_usage in %s", body, e, want)
		}
	}
	model := Edit{Model: "Qwen/Qwen3-8B"}
	usage := Edit{IncludeUsage: true}
	both := Edit{Model: "m", IncludeUsage: true}

	f(`{"model":"alias","messages":[]}`, Edit{}, `{"model":"alias","messages":[]}`)
	f(`{"messages":[{"model":"x"}], "model" : "alias" }`, model, `{"messages":[{"model":"x"}], "model" : "Qwen/Qwen3-8B" }`)
	f(`{"model":null,"n":2}`, model, `{"model":"Qwen/Qwen3-8B","n":2}`)
	f(`{"mo\u0064el":"\u0051"}`, model, `{"mo\u0064el":"Qwen/Qwen3-8B"}`)
	f(`{"messages":[]}`, model, `{"model":"Qwen/Qwen3-8B","messages":[]}`)
	f(` { } `, model, ` {"model":"Qwen/Qwen3-8B" } `)
	f(`{"model":"a"}`, Edit{Model: "quote\" back\\ nl\n nul\x00 é"}, `{"model":"quote\" back\\ nl\n nul\u0000 é"}`)

	f(`{"stream":true}`, usage, `{"stream_options":{"include_usage":true},"stream":true}`)
	f(`{"stream":true,"stream_options":null}`, usage, `{"stream":true,"stream_options":{"include_usage":true}}`)
	f(`{"stream":true,"stream_options":{}}`, usage, `{"stream":true,"stream_options":{"include_usage":true}}`)
	f(`{"stream":true,"stream_options":{ }}`, usage, `{"stream":true,"stream_options":{"include_usage":true }}`)
	f(`{"stream":true,"stream_options":{"continuous_usage_stats":true}}`, usage,
		`{"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`)
	f(`{"stream":true,"stream_options":{"continuous_usage_stats":true,"include_usage":false}}`, usage,
		`{"stream":true,"stream_options":{"continuous_usage_stats":true,"include_usage":true}}`)
	f(`{"stream":true,"stream_options":{"include_usage":null}}`, usage, `{"stream":true,"stream_options":{"include_usage":true}}`)
	f(`{"stream":true,"stream_options":{"include_usage":true}}`, usage, `{"stream":true,"stream_options":{"include_usage":true}}`)
	// Not streamed: vLLM refuses stream_options without stream.
	f(`{"stream":false}`, usage, `{"stream":false}`)
	f(`{}`, usage, `{}`)

	f(`{"stream":true}`, both, `{"model":"m","stream_options":{"include_usage":true},"stream":true}`)
	f(`{}`, both, `{"model":"m"}`)
	f(`{"model":"a","stream":true,"stream_options":{"include_usage":false}}`, both,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true}}`)
	f(`{"stream_options":{"x":1},"stream":true,"model":"a"}`, both,
		`{"stream_options":{"include_usage":true,"x":1},"stream":true,"model":"m"}`)
	f(`{"stream":true,"stream_options":null,"model":null}`, both,
		`{"stream":true,"stream_options":{"include_usage":true},"model":"m"}`)
	f(`{"model":"a","stream":true}`, both, `{"stream_options":{"include_usage":true},"model":"m","stream":true}`)
}

func TestRewriteModelAndInjectIncludeUsage(t *testing.T) {
	got, err := RewriteModel(nil, []byte(`{"model":"a","stream":true}`), "b")
	if err != nil || string(got) != `{"model":"b","stream":true}` {
		t.Fatalf("RewriteModel = %s, %v", got, err)
	}
	got, err = InjectIncludeUsage(got[:0], []byte(`{"model":"a","stream":true}`))
	if err != nil || string(got) != `{"stream_options":{"include_usage":true},"model":"a","stream":true}` {
		t.Fatalf("InjectIncludeUsage = %s, %v", got, err)
	}
	for _, body := range []string{`{"model":"a","model":"b"}`, `{"model":1}`, `[]`, `{`} {
		if got, err := RewriteModel([]byte("dst"), []byte(body), "b"); err == nil || string(got) != "dst" {
			t.Fatalf("RewriteModel(%s) = %s, %v; want dst unchanged and an error", body, got, err)
		}
		if got, err := InjectIncludeUsage([]byte("dst"), []byte(body)); err == nil || string(got) != "dst" {
			t.Fatalf("InjectIncludeUsage(%s) = %s, %v; want dst unchanged and an error", body, got, err)
		}
	}
}
