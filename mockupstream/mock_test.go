package mockupstream

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// startMock serves m on a loopback listener until the test ends and returns
// its base URL.
func startMock(t *testing.T, m *Mock) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot listen: %s", err)
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve(ln) }()
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("Shutdown: %s", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %s", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// do sends one request with fasthttp.Client and returns status, content
// type and body.
func do(t *testing.T, c *fasthttp.Client, method, url, body string) (int, string, []byte) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(url)
	req.Header.Set("Authorization", "Bearer ignored-by-the-mock")
	if body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
	}
	if err := c.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatalf("%s %s: %s", method, url, err)
	}
	return resp.StatusCode(), string(resp.Header.ContentType()), append([]byte(nil), resp.Body()...)
}

// decodeStrict unmarshals body into v, rejecting unknown fields, so that a
// test's struct lists the whole shape.
func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("cannot decode %s: %s", body, err)
	}
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chatCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Logprobs     any    `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

type textCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Text         string `json:"text"`
		Index        int    `json:"index"`
		Logprobs     any    `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func TestChatCompletion(t *testing.T) {
	base := startMock(t, New(Config{Model: "cfg-model"}))
	c := &fasthttp.Client{}

	f := func(body, wantModel string) {
		t.Helper()
		status, ct, resp := do(t, c, "POST", base+"/v1/chat/completions", body)
		if status != 200 || ct != "application/json" {
			t.Fatalf("%s: got %d %q %s", body, status, ct, resp)
		}
		var cc chatCompletion
		decodeStrict(t, resp, &cc)
		if !strings.HasPrefix(cc.ID, "chatcmpl-mock-") || cc.Object != "chat.completion" || cc.Created <= 0 || cc.Model != wantModel {
			t.Fatalf("%s: bad header fields %+v", body, cc)
		}
		if len(cc.Choices) != 1 {
			t.Fatalf("%s: want 1 choice, got %+v", body, cc.Choices)
		}
		ch := cc.Choices[0]
		if ch.Index != 0 || ch.Message.Role != "assistant" || ch.Message.Content != replyText || ch.FinishReason != "stop" {
			t.Fatalf("%s: bad choice %+v", body, ch)
		}
		u := cc.Usage
		if u.PromptTokens < 1 || u.CompletionTokens < 1 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Fatalf("%s: bad usage %+v", body, u)
		}
	}
	f(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "gpt-4o")
	f(`{"messages":[{"role":"user","content":"hi"}],"stream":false}`, "cfg-model")
	f(`{"model":"a \"quoted\"\nmodel\u0001/é","messages":[]}`, "a \"quoted\"\nmodel\u0001/é")
	f(`{}`, "cfg-model")
	f(` {"model":"x","unknown":{"nested":[1,2]},"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`, "x")
}

func TestTextCompletion(t *testing.T) {
	base := startMock(t, New(Config{}))
	c := &fasthttp.Client{}

	f := func(body, wantModel string) {
		t.Helper()
		status, ct, resp := do(t, c, "POST", base+"/v1/completions", body)
		if status != 200 || ct != "application/json" {
			t.Fatalf("%s: got %d %q %s", body, status, ct, resp)
		}
		var tc textCompletion
		decodeStrict(t, resp, &tc)
		if !strings.HasPrefix(tc.ID, "cmpl-mock-") || tc.Object != "text_completion" || tc.Created <= 0 || tc.Model != wantModel {
			t.Fatalf("%s: bad header fields %+v", body, tc)
		}
		if len(tc.Choices) != 1 || tc.Choices[0].Text != replyText || tc.Choices[0].FinishReason != "stop" {
			t.Fatalf("%s: bad choices %+v", body, tc.Choices)
		}
		if u := tc.Usage; u.TotalTokens != u.PromptTokens+u.CompletionTokens || u.PromptTokens < 1 {
			t.Fatalf("%s: bad usage %+v", body, u)
		}
	}
	f(`{"model":"davinci","prompt":"Say hi"}`, "davinci")
	f(`{"prompt":["a","b"]}`, DefaultModel)
	f(`{"prompt":[1,2,3]}`, DefaultModel)
}

func TestEmbeddings(t *testing.T) {
	base := startMock(t, New(Config{Model: "emb"}))
	c := &fasthttp.Client{}

	type embeddingList struct {
		Object string `json:"object"`
		Data   []struct {
			Object    string          `json:"object"`
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Model string `json:"model"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	get := func(body string) embeddingList {
		t.Helper()
		status, ct, resp := do(t, c, "POST", base+"/v1/embeddings", body)
		if status != 200 || ct != "application/json" {
			t.Fatalf("%s: got %d %q %s", body, status, ct, resp)
		}
		var l embeddingList
		decodeStrict(t, resp, &l)
		return l
	}
	floats := func(raw json.RawMessage) []float32 {
		t.Helper()
		var v []float32
		if raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatalf("bad base64 embedding %s: %s", raw, err)
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(b) != 4*embeddingDims {
				t.Fatalf("bad base64 embedding %q: %v", s, err)
			}
			for i := 0; i < len(b); i += 4 {
				v = append(v, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
			}
			return v
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("bad float embedding %s: %s", raw, err)
		}
		return v
	}

	f := func(body, wantModel string, wantN int) {
		t.Helper()
		l := get(body)
		if l.Object != "list" || l.Model != wantModel || len(l.Data) != wantN {
			t.Fatalf("%s: got object %q model %q %d embeddings, want %q %d", body, l.Object, l.Model, len(l.Data), wantModel, wantN)
		}
		for i, d := range l.Data {
			if d.Object != "embedding" || d.Index != i {
				t.Fatalf("%s: bad embedding %d: %+v", body, i, d)
			}
			v := floats(d.Embedding)
			if len(v) != embeddingDims {
				t.Fatalf("%s: embedding %d has %d dims", body, i, len(v))
			}
			var norm float64
			for _, x := range v {
				norm += float64(x) * float64(x)
			}
			if math.Abs(norm-1) > 1e-5 {
				t.Fatalf("%s: embedding %d is not unit length: %v", body, i, norm)
			}
		}
		if l.Usage.PromptTokens < wantN || l.Usage.TotalTokens != l.Usage.PromptTokens {
			t.Fatalf("%s: bad usage %+v", body, l.Usage)
		}
	}
	f(`{"model":"text-embedding-3-small","input":"hello"}`, "text-embedding-3-small", 1)
	f(`{"input":["a","b","c"]}`, "emb", 3)
	f(`{"input":[1,2,3]}`, "emb", 1)
	f(`{"input":[[1,2],[3]]}`, "emb", 2)
	f(`{"input":"hello","encoding_format":"float"}`, "emb", 1)
	f(`{"input":["hello","world"],"encoding_format":"base64"}`, "emb", 2)

	// Equal inputs get equal vectors, whatever the encoding.
	a := floats(get(`{"input":"same"}`).Data[0].Embedding)
	b := get(`{"input":["other","same"],"encoding_format":"base64"}`)
	if got := floats(b.Data[1].Embedding); !equalFloats(a, got) {
		t.Fatalf("same input, different vectors: %v %v", a, got)
	}
	if got := floats(b.Data[0].Embedding); equalFloats(a, got) {
		t.Fatalf("different inputs, same vector: %v", got)
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// model is an entry of GET /v1/models, in vLLM's shape.
type model struct {
	ID          string  `json:"id"`
	Object      string  `json:"object"`
	Created     int64   `json:"created"`
	OwnedBy     string  `json:"owned_by"`
	Root        string  `json:"root"`
	Parent      *string `json:"parent"`
	MaxModelLen *int    `json:"max_model_len"`
}

type modelList struct {
	Object string  `json:"object"`
	Data   []model `json:"data"`
}

func TestModels(t *testing.T) {
	base := startMock(t, New(Config{Model: "org/llama-3"}))
	c := &fasthttp.Client{}

	checkModel := func(m model) {
		t.Helper()
		if m.ID != "org/llama-3" || m.Object != "model" || m.Created <= 0 || m.OwnedBy != "authgate-mock" ||
			m.Root != "org/llama-3" || m.Parent != nil || m.MaxModelLen == nil || *m.MaxModelLen != DefaultMaxModelLen {
			t.Fatalf("bad model %+v", m)
		}
	}

	status, ct, body := do(t, c, "GET", base+"/v1/models", "")
	if status != 200 || ct != "application/json" {
		t.Fatalf("GET /v1/models: got %d %q %s", status, ct, body)
	}
	var list modelList
	decodeStrict(t, body, &list)
	if list.Object != "list" || len(list.Data) != 1 {
		t.Fatalf("bad model list %s", body)
	}
	checkModel(list.Data[0])

	status, ct, body = do(t, c, "GET", base+"/v1/models/org/llama-3", "")
	if status != 200 || ct != "application/json" {
		t.Fatalf("GET /v1/models/org/llama-3: got %d %q %s", status, ct, body)
	}
	var one model
	decodeStrict(t, body, &one)
	checkModel(one)
}

func TestErrors(t *testing.T) {
	base := startMock(t, New(Config{}))
	c := &fasthttp.Client{}

	f := func(method, path, body string, wantStatus int, wantCode, wantParam, wantAllow string) {
		t.Helper()
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(method)
		req.SetRequestURI(base + path)
		req.SetBodyString(body)
		if err := c.DoTimeout(req, resp, 10*time.Second); err != nil {
			t.Fatalf("%s %s: %s", method, path, err)
		}
		if resp.StatusCode() != wantStatus || string(resp.Header.ContentType()) != "application/json" {
			t.Fatalf("%s %s: got %d %q, want %d application/json", method, path, resp.StatusCode(), resp.Header.ContentType(), wantStatus)
		}
		if got := string(resp.Header.Peek("Allow")); got != wantAllow {
			t.Fatalf("%s %s: Allow %q, want %q", method, path, got, wantAllow)
		}
		var e apiError
		decodeStrict(t, resp.Body(), &e)
		if e.Error.Message == "" || e.Error.Type != "invalid_request_error" || e.Error.Code != wantCode {
			t.Fatalf("%s %s: bad error %s", method, path, resp.Body())
		}
		if wantParam == "" {
			if e.Error.Param != nil || !bytes.Contains(resp.Body(), []byte(`"param":null`)) {
				t.Fatalf("%s %s: param should be null: %s", method, path, resp.Body())
			}
		} else if e.Error.Param == nil || *e.Error.Param != wantParam {
			t.Fatalf("%s %s: param should be %q: %s", method, path, wantParam, resp.Body())
		}
	}
	f("GET", "/", "", 404, "not_found", "", "")
	f("POST", "/v1/chat/completion", `{}`, 404, "not_found", "", "")
	f("GET", "/v1/engines", "", 404, "not_found", "", "")
	f("GET", "/v1/models/unknown", "", 404, "model_not_found", "model", "")
	f("GET", "/v1/chat/completions", "", 405, "method_not_allowed", "", "POST")
	f("PUT", "/v1/completions", `{}`, 405, "method_not_allowed", "", "POST")
	f("GET", "/v1/embeddings", "", 405, "method_not_allowed", "", "POST")
	f("POST", "/v1/models", `{}`, 405, "method_not_allowed", "", "GET, HEAD")
	f("DELETE", "/v1/models/mock-model", "", 405, "method_not_allowed", "", "GET, HEAD")
	f("POST", "/v1/chat/completions", `{"model":`, 400, "invalid_json", "", "")
	f("POST", "/v1/chat/completions", ``, 400, "invalid_json", "", "")
	f("POST", "/v1/chat/completions", `[1]`, 400, "invalid_json", "", "")
	f("POST", "/v1/chat/completions", `null`, 400, "invalid_json", "", "")
	f("POST", "/v1/chat/completions", `{"stream":"yes"}`, 400, "invalid_json", "", "")
	f("POST", "/v1/chat/completions", `{"model":5}`, 400, "invalid_json", "", "")
	f("POST", "/v1/chat/completions", `{"stream_options":true}`, 400, "invalid_json", "", "")
	f("POST", "/v1/completions", `{"stream":true,"stream_options":{"include_usage":1}}`, 400, "invalid_json", "", "")
	f("POST", "/v1/chat/completions", `{"model":"m"} {}`, 400, "invalid_json", "", "")
	f("POST", "/v1/completions", `not json`, 400, "invalid_json", "", "")
	f("POST", "/v1/embeddings", `{"input":`, 400, "invalid_json", "", "")
	f("POST", "/v1/embeddings", `{}`, 400, "invalid_value", "input", "")
	f("POST", "/v1/embeddings", `{"input":[]}`, 400, "invalid_value", "input", "")
	f("POST", "/v1/embeddings", `{"input":42}`, 400, "invalid_value", "input", "")
	f("POST", "/v1/embeddings", `{"input":["a",[1]]}`, 400, "invalid_value", "input", "")
	f("POST", "/v1/embeddings", `{"input":[1,"a"]}`, 400, "invalid_value", "input", "")
	f("POST", "/v1/embeddings", `{"input":"a","encoding_format":"hex"}`, 400, "invalid_value", "encoding_format", "")
}

// sseEvent is one decoded event of a stream: a chunk, or the [DONE] terminator.
type sseEvent struct {
	done  bool
	chunk map[string]any
	raw   string
}

// readEvent reads the next "data: …" event and the blank line after it.
func readEvent(t *testing.T, r *bufio.Reader) sseEvent {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("cannot read event: %s (got %q)", err, line)
	}
	blank, err := r.ReadString('\n')
	if err != nil || blank != "\n" {
		t.Fatalf("event %q not followed by a blank line: %q, %v", line, blank, err)
	}
	data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: ")
	if !ok {
		t.Fatalf("event without data: %q", line)
	}
	if data == "[DONE]" {
		return sseEvent{done: true, raw: data}
	}
	var chunk map[string]any
	if err := json.Unmarshal([]byte(data), &chunk); err != nil {
		t.Fatalf("bad chunk %q: %s", data, err)
	}
	return sseEvent{chunk: chunk, raw: data}
}

// postStream starts a streamed request with net/http and checks its headers.
func postStream(t *testing.T, url, body string) *http.Response {
	t.Helper()
	// The timeout turns a stream that is never flushed into a failure
	// rather than a hang; it is not a timing assertion.
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %s", url, err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("POST %s: got %d %q", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp
}

func TestStream(t *testing.T) {
	f := func(chunks int, path, body, wantObject, wantModel, wantText string, wantUsage bool) {
		t.Helper()
		base := startMock(t, New(Config{StreamChunks: chunks}))
		resp := postStream(t, base+path, body)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)

		chat := wantObject == "chat.completion.chunk"
		var events []sseEvent
		for {
			e := readEvent(t, r)
			if e.done {
				break
			}
			events = append(events, e)
		}
		if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
			t.Fatalf("data after [DONE]: %q %v", rest, err)
		}
		n := max(chunks, DefaultStreamChunks*btoi(chunks == 0)) + 1 + btoi(chat) + btoi(wantUsage)
		if len(events) != n {
			t.Fatalf("%s: got %d events before [DONE], want %d", body, len(events), n)
		}
		id := events[0].chunk["id"]
		var text strings.Builder
		for i, e := range events {
			c := e.chunk
			if c["id"] != id || c["object"] != wantObject || c["model"] != wantModel || c["created"].(float64) <= 0 {
				t.Fatalf("event %d: bad header fields %s", i, e.raw)
			}
			choices := c["choices"].([]any)
			if wantUsage && i == len(events)-1 {
				u := c["usage"].(map[string]any)
				if len(choices) != 0 || u["total_tokens"] != u["prompt_tokens"].(float64)+u["completion_tokens"].(float64) {
					t.Fatalf("bad usage chunk %s", e.raw)
				}
				continue
			}
			if _, ok := c["usage"]; ok {
				t.Fatalf("event %d: unexpected usage %s", i, e.raw)
			}
			if len(choices) != 1 {
				t.Fatalf("event %d: want one choice: %s", i, e.raw)
			}
			ch := choices[0].(map[string]any)
			last := i == len(events)-1-btoi(wantUsage)
			if last != (ch["finish_reason"] == "stop") || !last && ch["finish_reason"] != nil {
				t.Fatalf("event %d: bad finish_reason: %s", i, e.raw)
			}
			if chat {
				delta := ch["delta"].(map[string]any)
				if (i == 0) != (delta["role"] == "assistant") {
					t.Fatalf("event %d: the role belongs to the first delta only: %s", i, e.raw)
				}
				if s, ok := delta["content"].(string); ok {
					text.WriteString(s)
				}
			} else {
				text.WriteString(ch["text"].(string))
			}
		}
		if text.String() != wantText {
			t.Fatalf("streamed text %q, want %q", text.String(), wantText)
		}
	}
	f(0, "/v1/chat/completions", `{"model":"m1","messages":[],"stream":true}`,
		"chat.completion.chunk", "m1", replyText, false)
	f(7, "/v1/chat/completions", `{"messages":[],"stream":true,"stream_options":{"include_usage":true}}`,
		"chat.completion.chunk", DefaultModel, replyText+" Hello from", true)
	f(1, "/v1/chat/completions", `{"messages":[],"stream":true,"stream_options":{"include_usage":false}}`,
		"chat.completion.chunk", DefaultModel, "Hello", false)
	f(0, "/v1/completions", `{"model":"m2","prompt":"x","stream":true}`,
		"text_completion", "m2", replyText, false)
	f(3, "/v1/completions", `{"prompt":"x","stream":true,"stream_options":{"include_usage":true}}`,
		"text_completion", DefaultModel, "Hello from the", true)
}

// TestStreamEventBytes: EventBytes pads each content event to its size
// with spaces after the word, and leaves the other events and the words as
// they were.
func TestStreamEventBytes(t *testing.T) {
	f := func(path, body string, eventBytes int, chat bool) {
		t.Helper()
		base := startMock(t, New(Config{StreamChunks: 3, EventBytes: eventBytes}))
		resp := postStream(t, base+path, body)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		var words []string
		for i := 0; ; i++ {
			e := readEvent(t, r)
			if e.done {
				break
			}
			size := len("data: ") + len(e.raw) + len("\n\n")
			ch := e.chunk["choices"].([]any)[0].(map[string]any)
			text, _ := ch["text"].(string)
			if chat {
				text, _ = ch["delta"].(map[string]any)["content"].(string)
			}
			content := ch["finish_reason"] == nil && (!chat || i > 0)
			if !content {
				if strings.HasSuffix(text, " ") {
					t.Errorf("event %d, not a content chunk, padded: %s", i, e.raw)
				}
				continue
			}
			// Padded to exactly eventBytes, or not at all if it was as large.
			padded := strings.HasSuffix(text, " ")
			if size < eventBytes || padded && size != eventBytes {
				t.Errorf("content event %d: %d bytes, want %d: %s", i, size, eventBytes, e.raw)
			}
			words = append(words, strings.TrimRight(text, " "))
		}
		if got := strings.Join(words, ""); got != "Hello from the" {
			t.Errorf("words %q, want %q", got, "Hello from the")
		}
	}
	f("/v1/chat/completions", `{"messages":[],"stream":true}`, 300, true)
	f("/v1/chat/completions", `{"messages":[],"stream":true}`, 1000, true)
	f("/v1/completions", `{"prompt":"x","stream":true}`, 400, false)
	f("/v1/chat/completions", `{"messages":[],"stream":true}`, 100, true) // smaller than a chunk: as it was
	f("/v1/chat/completions", `{"messages":[],"stream":true}`, 0, true)
}

// TestReplyBytes: ReplyBytes pads a chat completion's body to its size
// with spaces at the end of the content, keeping it valid JSON with the
// same words and usage.
func TestReplyBytes(t *testing.T) {
	f := func(replyBytes, wantLen int) {
		t.Helper()
		base := startMock(t, New(Config{ReplyBytes: replyBytes}))
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var c struct {
			Choices []struct {
				Message struct{ Content string }
			}
			Usage struct {
				CompletionTokens int `json:"completion_tokens"`
			}
		}
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatalf("ReplyBytes %d: %v: %s", replyBytes, err, body)
		}
		if wantLen > 0 && len(body) != wantLen {
			t.Errorf("ReplyBytes %d: %d bytes, want %d", replyBytes, len(body), wantLen)
		}
		if got := strings.TrimRight(c.Choices[0].Message.Content, " "); got != replyText || c.Usage.CompletionTokens != len(replyWords) {
			t.Errorf("ReplyBytes %d: content %q, %d completion tokens", replyBytes, got, c.Usage.CompletionTokens)
		}
	}
	f(1024, 1024)
	f(4096, 4096)
	f(10, 0) // smaller than the answer: as it was
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestStreamFirstEventBeforeEnd reads the first event of a stream whose
// next event is an hour away, so it must have been flushed on its own; then
// Shutdown cuts the pauses short and the stream completes.
func TestStreamFirstEventBeforeEnd(t *testing.T) {
	m := New(Config{ChunkDelay: time.Hour})
	base := startMock(t, m)
	resp := postStream(t, base+"/v1/chat/completions", `{"messages":[],"stream":true}`)
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	first := readEvent(t, r)
	if first.done || first.chunk["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)["role"] != "assistant" {
		t.Fatalf("first event is not the role delta: %s", first.raw)
	}

	shutdown := make(chan error, 1)
	go func() { shutdown <- m.Shutdown() }()
	events := 1
	for !readEvent(t, r).done {
		events++
	}
	if want := 1 + DefaultStreamChunks + 1; events != want {
		t.Fatalf("got %d events before [DONE], want %d", events, want)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %s", err)
	}
}

// TestStreamStopsWhenClientGone checks that a stream whose client has
// disconnected stops at its next write instead of running to its end.
func TestStreamStopsWhenClientGone(t *testing.T) {
	const chunks = 1_000_000
	ended := make(chan [2]any, 1)
	m := New(Config{StreamChunks: chunks, ChunkDelay: time.Millisecond})
	m.onStreamEnd = func(events int, err error) { ended <- [2]any{events, err} }
	base := startMock(t, m)

	resp := postStream(t, base+"/v1/completions", `{"prompt":"x","stream":true}`)
	readEvent(t, bufio.NewReader(resp.Body))
	resp.Body.Close() // unread body: net/http closes the connection

	select {
	case end := <-ended:
		events, err := end[0].(int), end[1]
		if events >= chunks || err == nil {
			t.Fatalf("stream ran on after the client left: %d events, error %v", events, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not stop after the client left")
	}
}

func TestServeShutdown(t *testing.T) {
	// Shutdown racing a Serve that has just started must not leave it
	// running.
	m := New(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve(ln) }()
	if err := m.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %s", err)
	}
	select {
	case err := <-served:
		if err != nil && !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %s", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running after Shutdown")
	}
	if err := m.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %s", err)
	}

	// Serve after Shutdown refuses and closes the listener.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: got %v, want ErrServerClosed", err)
	}
	if _, err := ln2.Accept(); err == nil {
		t.Fatal("Serve after Shutdown left the listener open")
	}
}

func TestHandlerIgnoresAuthorization(t *testing.T) {
	m := New(Config{})
	f := func(auth string) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.SetRequestURI("/v1/models")
		if auth != "" {
			ctx.Request.Header.Set("Authorization", auth)
		}
		m.Handler(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("Authorization %q: status %d", auth, ctx.Response.StatusCode())
		}
	}
	f("")
	f("Bearer sk-anything")
	f("garbage")
}
