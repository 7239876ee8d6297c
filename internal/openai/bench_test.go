package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/authgate/authgate/internal/jsonenc"
	"github.com/authgate/authgate/internal/netconn"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"github.com/valyala/fastjson"
)

// The library benchmarks compare the ways considered to read and rewrite
// the top-level "model" of a request body (see the package comment for the
// choice): this package's scanner; tidwall/gjson and sjson, unchecked as
// they are usually called and checked (gjson.ValidBytes, then every
// top-level member for duplicates); valyala/fastjson, unchecked and
// checked (ValidateBytes first: its parser does not check strings); and
// encoding/json as the baseline. Run them with
//
//	go test -run '^$' -bench 'TopLevelModel|RewriteModel' -benchmem ./internal/openai/

// benchSizes are the body sizes of the benchmarks.
var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}, {"4MiB", 4 << 20}}

// chatBody returns a chat completions body of about size bytes: tools whose
// schema has a "model" property, messages of text with escapes and
// non-ASCII letters, one of which quotes a "model" member, and the
// top-level "model" first or last.
func chatBody(size int, modelFirst bool) []byte {
	b := []byte(`{`)
	if modelFirst {
		b = append(b, `"model":"Qwen/Qwen3-8B",`...)
	}
	b = append(b, `"stream":true,"max_tokens":512,"tools":[{"type":"function","function":{"name":"pick","description":"Pick a model.",`+
		`"parameters":{"type":"object","properties":{"model":{"type":"string","enum":["a","b"]},"n":{"type":"integer"}},"required":["model"]}}}],`+
		`"messages":[{"role":"system","content":"You are terse. Answer with {\"model\": \"name\"} only."}`...)
	for i := 0; len(b) < size-200; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		b = append(b, `,{"role":"`+role+`","content":"Message `...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `: the café's menu lists crème brûlée, \"naïve\" tarts and 日本語のメニュー.\n`+
			`Code: func f(x int) int { return x * 2 } // \\ backslash\tand a tab. `+
			`Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore."}`...)
	}
	b = append(b, ']')
	if !modelFirst {
		b = append(b, `,"model":"Qwen/Qwen3-8B"`...)
	}
	return append(b, '}')
}

// errDuplicateModel is the library readers' refusal of a duplicated model.
var errDuplicateModel = errors.New("duplicate model")

// modelReaders read the top-level model with each library, each as
// strictly as it can be made to: last one wins, or duplicates refused.
func modelReaders() []struct {
	name string
	read func(body []byte) ([]byte, error)
} {
	var parser fastjson.Parser
	fastjsonRead := func(body []byte) ([]byte, error) {
		v, err := parser.ParseBytes(body)
		if err != nil {
			return nil, err
		}
		o, err := v.Object()
		if err != nil {
			return nil, err
		}
		var model []byte
		n := 0
		o.Visit(func(key []byte, v *fastjson.Value) {
			if string(key) == "model" {
				n++
				model, err = v.StringBytes()
			}
		})
		if n > 1 {
			return nil, errDuplicateModel
		}
		return model, err
	}
	return []struct {
		name string
		read func(body []byte) ([]byte, error)
	}{
		{"scanner", func(body []byte) ([]byte, error) {
			r, err := ParseRequest(body)
			return r.Model, err
		}},
		{"gjson-unchecked", func(body []byte) ([]byte, error) {
			// The first "model" wins; invalid JSON goes unnoticed.
			return netconn.S2B(gjson.Get(netconn.B2S(body), "model").Str), nil
		}},
		{"gjson-checked", func(body []byte) ([]byte, error) {
			if !gjson.ValidBytes(body) {
				return nil, ErrSyntax
			}
			var model string
			n := 0
			gjson.Parse(netconn.B2S(body)).ForEach(func(key, value gjson.Result) bool {
				if key.Str == "model" {
					n++
					model = value.Str
				}
				return true
			})
			if n > 1 {
				return nil, errDuplicateModel
			}
			return netconn.S2B(model), nil
		}},
		{"fastjson-unchecked", fastjsonRead},
		{"fastjson-checked", func(body []byte) ([]byte, error) {
			if err := fastjson.ValidateBytes(body); err != nil {
				return nil, err
			}
			return fastjsonRead(body)
		}},
		{"encoding-json", func(body []byte) ([]byte, error) {
			var r struct {
				Model string `json:"model"`
			}
			err := json.Unmarshal(body, &r)
			return []byte(r.Model), err
		}},
	}
}

func BenchmarkTopLevelModel(b *testing.B) {
	for _, lib := range modelReaders() {
		for _, size := range benchSizes {
			for _, first := range []bool{false, true} {
				body := chatBody(size.size, first)
				name := lib.name + "/" + size.name + "/model-last"
				if first {
					name = lib.name + "/" + size.name + "/model-first"
				}
				b.Run(name, func(b *testing.B) {
					if m, err := lib.read(body); err != nil || string(m) != "Qwen/Qwen3-8B" {
						b.Fatalf("model %q, %v", m, err)
					}
					b.SetBytes(int64(len(body)))
					b.ReportAllocs()
					for b.Loop() {
						lib.read(body)
					}
				})
			}
		}
	}
}

// TestModelReadersDisagree shows what the unchecked library calls get
// wrong: gjson takes the first of two "model" members, where vLLM takes the
// last, and reads a model from a body that is not JSON; fastjson's parser
// accepts a string with a raw control character or an invalid escape.
func TestModelReadersDisagree(t *testing.T) {
	readers := map[string]func([]byte) ([]byte, error){}
	for _, r := range modelReaders() {
		readers[r.name] = r.read
	}
	f := func(lib, body string, wantModel string, wantErr bool) {
		t.Helper()
		m, err := readers[lib]([]byte(body))
		if (err != nil) != wantErr || err == nil && string(m) != wantModel {
			t.Fatalf("%s(%q) = %q, %v; want %q, error %v", lib, body, m, err, wantModel, wantErr)
		}
	}
	f("gjson-unchecked", `{"model":"cheap","model":"expensive"}`, "cheap", false)
	f("gjson-unchecked", `{"model":"cheap"`, "cheap", false)
	f("fastjson-unchecked", "{\"model\":\"a\tb\"}", "a\tb", false)
	f("fastjson-unchecked", `{"model":"a\qb"}`, `a\qb`, false)
	for _, lib := range []string{"scanner", "gjson-checked", "fastjson-checked"} {
		f(lib, `{"model":"cheap","model":"expensive"}`, "", true)
		f(lib, `{"model":"cheap"`, "", true)
		f(lib, "{\"model\":\"a\tb\"}", "", true)
		f(lib, `{"model":"a\qb"}`, "", true)
	}
}

func BenchmarkRewriteModel(b *testing.B) {
	var parser fastjson.Parser
	var arena fastjson.Arena
	const model = "Qwen/Qwen3-8B-AWQ"
	libs := []struct {
		name    string
		rewrite func(dst, body []byte) ([]byte, error)
	}{
		{"scanner", func(dst, body []byte) ([]byte, error) {
			return RewriteModel(dst, body, model)
		}},
		{"gjson-unchecked-splice", func(dst, body []byte) ([]byte, error) {
			r := gjson.Get(netconn.B2S(body), "model")
			dst = append(dst, body[:r.Index]...)
			dst = jsonenc.AppendString(dst, model)
			return append(dst, body[r.Index+len(r.Raw):]...), nil
		}},
		{"sjson-unchecked", func(dst, body []byte) ([]byte, error) {
			return sjson.SetBytes(body, "model", model)
		}},
		{"fastjson-unchecked", func(dst, body []byte) ([]byte, error) {
			v, err := parser.ParseBytes(body)
			if err != nil {
				return dst, err
			}
			arena.Reset()
			v.Set("model", arena.NewString(model))
			return v.MarshalTo(dst), nil
		}},
		{"encoding-json", func(dst, body []byte) ([]byte, error) {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				return dst, err
			}
			m["model"], _ = json.Marshal(model)
			out, err := json.Marshal(m) // members reordered, HTML escaped
			return append(dst, out...), err
		}},
	}
	for _, lib := range libs {
		for _, size := range benchSizes {
			body := chatBody(size.size, false)
			b.Run(lib.name+"/"+size.name, func(b *testing.B) {
				dst, err := lib.rewrite(nil, body)
				if err != nil || gjson.GetBytes(dst, "model").Str != model || !json.Valid(dst) {
					b.Fatalf("rewrite: %v", err)
				}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					dst, _ = lib.rewrite(dst[:0], body)
				}
			})
		}
	}
}

// TestChatBody checks the benchmarks' bodies: JSON of about the size asked
// for, with the top-level model where asked for.
func TestChatBody(t *testing.T) {
	for _, size := range benchSizes {
		for _, first := range []bool{false, true} {
			body := chatBody(size.size, first)
			var r struct{ Model string }
			if err := json.Unmarshal(body, &r); err != nil || r.Model != "Qwen/Qwen3-8B" {
				t.Fatalf("chatBody(%d): %q, %v", size.size, r.Model, err)
			}
			if len(body) < size.size*9/10 || len(body) > size.size*11/10 {
				t.Fatalf("chatBody(%d): %d bytes", size.size, len(body))
			}
			if i := bytes.Index(body, []byte(`"model":"Qwen`)); (i == 1) != first {
				t.Fatalf("chatBody(%d, %v): model at %d", size.size, first, i)
			}
		}
	}
}

// BenchmarkSSEScanner measures the scanner per event of a chat stream with
// continuous usage (a usage object in every chunk), the events read from
// 4 KiB chunks, whose cuts fall inside events.
func BenchmarkSSEScanner(b *testing.B) {
	var stream []byte
	events := 0
	for i := range 1000 {
		stream = fmt.Appendf(stream, `data: {"id":"chatcmpl-8d1e","object":"chat.completion.chunk","created":1700000000,"model":"Qwen/Qwen3-8B",`+
			`"choices":[{"index":0,"delta":{"content":" token%d"},"logprobs":null,"finish_reason":null}],`+
			`"usage":{"prompt_tokens":120,"total_tokens":%d,"completion_tokens":%d}}`+"\n\n", i, 121+i, 1+i)
		events++
	}
	stream = append(stream, "data: [DONE]\n\n"...)
	events++
	var s SSEScanner
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for i := 0; i < len(stream); i += 4096 {
			s.Feed(stream[i:min(i+4096, len(stream))])
			for _, ok := s.Next(); ok; _, ok = s.Next() {
				n++
			}
		}
		s.Flush()
		if n != events {
			b.Fatalf("%d events, want %d", n, events)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}

// BenchmarkParseResponse: the model and usage of a non-streamed chat
// completion as vLLM answers it, the gateway's cost of metering one.
func BenchmarkParseResponse(b *testing.B) {
	body := []byte(`{"id":"chatcmpl-b2c4","object":"chat.completion","created":1764990000,"model":"Qwen/Qwen2.5-7B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":24,"total_tokens":33,"completion_tokens":9,"prompt_tokens_details":null},"prompt_logprobs":null}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if r := ParseResponse(body); !r.HasUsage {
			b.Fatal("no usage")
		}
	}
}

// BenchmarkStreamReader: a chat stream of 50 content events of about 100
// bytes, read from the upstream in 4 KiB pieces and passed on through a
// 4 KiB buffer, per event: the cost a metered stream adds to each.
func BenchmarkStreamReader(b *testing.B) {
	var sb strings.Builder
	for range 50 {
		sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764990000,"model":"m","choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}` + "\n\n")
	}
	sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764990000,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":50,"total_tokens":59}}` + "\n\ndata: [DONE]\n\n")
	stream := sb.String()
	var r StreamReader
	src := strings.NewReader(stream)
	out := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		src.Reset(stream)
		r.Reset(src, true)
		for {
			if _, err := r.Read(out); err != nil {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*52), "ns/event")
}
