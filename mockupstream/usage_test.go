package mockupstream

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestMaxTokens: max_tokens (and max_completion_tokens, which wins) cut
// the non-streamed answer to that many words, finish_reason "length", and
// usage counts the words given; a limit above the answer changes nothing.
func TestMaxTokens(t *testing.T) {
	base := startMock(t, New(Config{}))
	c := &fasthttp.Client{}
	f := func(path, extra, wantText, wantFinish string, wantCompletion int) {
		t.Helper()
		status, _, resp := do(t, c, "POST", base+path, `{"model":"m","messages":[],"prompt":"hi"`+extra+`}`)
		if status != 200 {
			t.Fatalf("%s %s: status %d: %s", path, extra, status, resp)
		}
		var r struct {
			Choices []struct {
				Text         string `json:"text"`
				Message      struct{ Content string }
				FinishReason string `json:"finish_reason"`
			}
			Usage struct {
				Completion int `json:"completion_tokens"`
			}
		}
		if err := json.Unmarshal(resp, &r); err != nil {
			t.Fatal(err)
		}
		text := r.Choices[0].Text + r.Choices[0].Message.Content
		if text != wantText || r.Choices[0].FinishReason != wantFinish || r.Usage.Completion != wantCompletion {
			t.Fatalf("%s %s: %q, %s, %d completion tokens; want %q, %s, %d", path, extra, text, r.Choices[0].FinishReason, r.Usage.Completion, wantText, wantFinish, wantCompletion)
		}
	}
	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		f(path, ``, replyText, "stop", 5)
		f(path, `,"max_tokens":2`, "Hello from", "length", 2)
		f(path, `,"max_tokens":9,"max_completion_tokens":1`, "Hello", "length", 1)
		f(path, `,"max_tokens":50`, replyText, "stop", 5)
	}
	status, _, resp := do(t, c, "POST", base+"/v1/chat/completions", `{"messages":[],"max_tokens":0}`)
	if status != 400 || !strings.Contains(string(resp), "max_tokens") {
		t.Fatalf("max_tokens 0: %d %s, want 400 naming max_tokens", status, resp)
	}
}

// TestStreamUsage: a stream's content chunks are capped by max_tokens;
// with continuous_usage_stats and include_usage every chunk carries the
// completion tokens sent so far, and the usage chunk their total, which
// equals the content chunks; with continuous_usage_stats alone no chunk
// has usage (vLLM needs both).
func TestStreamUsage(t *testing.T) {
	base := startMock(t, New(Config{StreamChunks: 6}))
	f := func(options string, wantEvery, wantFinal bool, wantContent int) {
		t.Helper()
		resp := postStream(t, base+"/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":4`+options+`}`)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		content, finals := 0, 0
		for {
			e := readEvent(t, r)
			if e.done {
				break
			}
			choices := e.chunk["choices"].([]any)
			usage, hasUsage := e.chunk["usage"].(map[string]any)
			if len(choices) == 0 {
				finals++
				if !wantFinal || !hasUsage || usage["completion_tokens"] != float64(content) {
					t.Fatalf("%s: usage chunk %s after %d content chunks", options, e.raw, content)
				}
				continue
			}
			delta := choices[0].(map[string]any)["delta"].(map[string]any)
			if s, _ := delta["content"].(string); s != "" {
				content++
			}
			if hasUsage != wantEvery || (hasUsage && usage["completion_tokens"] != float64(content)) {
				t.Fatalf("%s: chunk %s after %d content chunks: usage %v, want in every chunk: %v", options, e.raw, content, usage, wantEvery)
			}
			if fr := choices[0].(map[string]any)["finish_reason"]; fr != nil && fr != "length" {
				t.Fatalf("%s: finish_reason %v, want length", options, fr)
			}
		}
		if content != wantContent || (finals == 1) != wantFinal || finals > 1 {
			t.Fatalf("%s: %d content chunks, %d usage chunks; want %d, final %v", options, content, finals, wantContent, wantFinal)
		}
	}
	f(``, false, false, 4)
	f(`,"stream_options":{"include_usage":true}`, false, true, 4)
	f(`,"stream_options":{"include_usage":true,"continuous_usage_stats":true}`, true, true, 4)
	f(`,"stream_options":{"continuous_usage_stats":true}`, false, false, 4)
}

// TestRejectStreamOptions: with RejectStreamOptions a request carrying
// stream_options answers 400 naming it; one without is served.
func TestRejectStreamOptions(t *testing.T) {
	base := startMock(t, New(Config{RejectStreamOptions: true}))
	c := &fasthttp.Client{}
	status, _, resp := do(t, c, "POST", base+"/v1/chat/completions", `{"stream":true,"stream_options":{"include_usage":true}}`)
	var e struct {
		Error struct{ Param string }
	}
	if err := json.Unmarshal(resp, &e); status != 400 || err != nil || e.Error.Param != "stream_options" {
		t.Fatalf("with stream_options: %d %s, want 400 with param stream_options", status, resp)
	}
	if status, _, resp := do(t, c, "POST", base+"/v1/chat/completions", `{"stream":false}`); status != 200 {
		t.Fatalf("without stream_options: %d %s", status, resp)
	}
}
