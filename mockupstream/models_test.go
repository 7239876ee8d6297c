package mockupstream

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// listed returns the ids GET /v1/models lists, checking each entry's
// shape: a base model has no parent and a max_model_len, an adapter the
// first model as parent and none.
func listed(t *testing.T, c *fasthttp.Client, base, first string) []string {
	t.Helper()
	status, _, body := do(t, c, "GET", base+"/v1/models", "")
	if status != 200 {
		t.Fatalf("GET /v1/models: %d %s", status, body)
	}
	var list modelList
	decodeStrict(t, body, &list)
	var ids []string
	for _, m := range list.Data {
		adapter := m.Parent != nil
		if m.Object != "model" || m.Root == "" || adapter == (m.MaxModelLen != nil) || (adapter && *m.Parent != first) {
			t.Fatalf("bad entry %+v in %s", m, body)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// TestModelsServed: a mock configured with Models lists them all, answers
// a request naming none as the first, and refuses one naming another
// model 404, as vLLM does; one configured with Model only answers any.
func TestModelsServed(t *testing.T) {
	c := &fasthttp.Client{}
	base := startMock(t, New(Config{Models: []string{"chat-a", "chat-b", "chat-a"}}))
	if got := strings.Join(listed(t, c, base, "chat-a"), " "); got != "chat-a chat-b" {
		t.Fatalf("listed %q, want chat-a chat-b", got)
	}
	f := func(path, body string, wantStatus int, wantModel string) {
		t.Helper()
		status, _, got := do(t, c, "POST", base+path, body)
		if status != wantStatus {
			t.Fatalf("POST %s %s: %d %s, want %d", path, body, status, got, wantStatus)
		}
		if status == 404 {
			var e apiError
			decodeStrict(t, got, &e)
			if e.Error.Code != "model_not_found" || e.Error.Param == nil || *e.Error.Param != "model" || !strings.Contains(e.Error.Message, "`"+wantModel+"`") {
				t.Fatalf("POST %s: bad error %s", path, got)
			}
			return
		}
		var r struct{ Model string }
		if err := json.Unmarshal(got, &r); err != nil || r.Model != wantModel {
			t.Fatalf("POST %s %s: model %q (%v), want %q", path, body, r.Model, err, wantModel)
		}
	}
	f("/v1/chat/completions", `{"model":"chat-b","messages":[]}`, 200, "chat-b")
	f("/v1/chat/completions", `{"messages":[]}`, 200, "chat-a")
	f("/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`, 404, "gpt-4o")
	f("/v1/completions", `{"model":"chat-c","prompt":"x"}`, 404, "chat-c")
	f("/v1/completions", `{"model":"chat-a","prompt":"x"}`, 200, "chat-a")
	f("/v1/embeddings", `{"model":"embed","input":"x"}`, 404, "embed")
	f("/v1/embeddings", `{"model":"chat-b","input":"x"}`, 200, "chat-b")
	// A streamed request is refused before its stream starts.
	f("/v1/chat/completions", `{"model":"other","stream":true}`, 404, "other")

	lenient := startMock(t, New(Config{Model: "one"}))
	status, _, body := do(t, c, "POST", lenient+"/v1/chat/completions", `{"model":"anything","messages":[]}`)
	if status != 200 || !strings.Contains(string(body), `"model":"anything"`) {
		t.Fatalf("lenient mock: %d %s", status, body)
	}
}

// TestLoadUnloadAdapter: POST /v1/load_lora_adapter and
// /v1/unload_lora_adapter add and remove a model as vLLM does, with
// vLLM's statuses; AddModel and RemoveModel do the same from Go.
func TestLoadUnloadAdapter(t *testing.T) {
	c := &fasthttp.Client{}
	m := New(Config{Models: []string{"base"}})
	base := startMock(t, m)
	f := func(path, body string, wantStatus int) {
		t.Helper()
		status, ct, got := do(t, c, "POST", base+path, body)
		if status != wantStatus {
			t.Fatalf("POST %s %s: %d %s, want %d", path, body, status, got, wantStatus)
		}
		if status == 200 && (ct != "text/plain; charset=utf-8" || !strings.HasPrefix(string(got), "Success: LoRA adapter ")) {
			t.Fatalf("POST %s: %q %s", path, ct, got)
		}
	}
	chat := func(model string, want int) {
		t.Helper()
		if status, _, body := do(t, c, "POST", base+"/v1/chat/completions", `{"model":"`+model+`","messages":[]}`); status != want {
			t.Fatalf("chat with %s: %d %s, want %d", model, status, body, want)
		}
	}
	chat("sql", 404)
	f("/v1/load_lora_adapter", `{"lora_name":"sql","lora_path":"/adapters/sql"}`, 200)
	chat("sql", 200)
	f("/v1/load_lora_adapter", `{"lora_name":"sql","lora_path":"/adapters/sql"}`, 400) // already loaded
	f("/v1/load_lora_adapter", `{"lora_name":"x"}`, 400)
	f("/v1/load_lora_adapter", `{"lora_path":"/x"}`, 400)
	f("/v1/load_lora_adapter", `not json`, 400)
	if got := strings.Join(listed(t, c, base, "base"), " "); got != "base sql" {
		t.Fatalf("listed %q", got)
	}
	status, _, body := do(t, c, "GET", base+"/v1/models/sql", "")
	var one model
	decodeStrict(t, body, &one)
	if status != 200 || one.Root != "/adapters/sql" || one.Parent == nil || *one.Parent != "base" {
		t.Fatalf("GET /v1/models/sql: %d %s", status, body)
	}

	f("/v1/unload_lora_adapter", `{"lora_name":"sql"}`, 200)
	chat("sql", 404)
	f("/v1/unload_lora_adapter", `{"lora_name":"sql"}`, 404)
	f("/v1/unload_lora_adapter", `{"lora_name":"base"}`, 404) // a base model is not an adapter
	f("/v1/unload_lora_adapter", `{}`, 400)
	if status, _, _ := do(t, c, "GET", base+"/v1/load_lora_adapter", ""); status != 405 {
		t.Fatalf("GET /v1/load_lora_adapter: %d, want 405", status)
	}

	if !m.AddModel("go-added") || m.AddModel("go-added") {
		t.Fatal("AddModel: want true, then false")
	}
	chat("go-added", 200)
	if got := strings.Join(listed(t, c, base, "base"), " "); got != "base go-added" {
		t.Fatalf("listed %q", got)
	}
	if !m.RemoveModel("base") || m.RemoveModel("base") {
		t.Fatal("RemoveModel: want true, then false")
	}
	chat("base", 404)
	if got := strings.Join(m.Models(), " "); got != "go-added" {
		t.Fatalf("Models() = %q", got)
	}
}
