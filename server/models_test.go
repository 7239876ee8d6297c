package server_test

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/server"
)

// modelUpstream is an upstream serving a fixed list of models, as vLLM
// describes them on GET /v1/models, that records the model of every
// request reaching it and every request for a model it does not serve.
type modelUpstream struct {
	name   string
	models []string

	mu     sync.Mutex
	got    []string // the model of each request, "" if none
	wrong  []string // requests for a model it does not serve
	bodies []string
}

func (u *modelUpstream) handler(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/v1/models" && ctx.IsGet() {
		var data []string
		for _, m := range u.models {
			data = append(data, fmt.Sprintf(`{"id":%q,"object":"model","created":1,"owned_by":"vllm","root":"/models/%s","parent":null,"max_model_len":4096}`, m, m))
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"object":"list","data":[` + strings.Join(data, ",") + `]}`)
		return
	}
	var body struct {
		Model *string `json:"model"`
	}
	json.Unmarshal(ctx.PostBody(), &body)
	model := ""
	if body.Model != nil {
		model = *body.Model
	}
	u.mu.Lock()
	u.got = append(u.got, model)
	u.bodies = append(u.bodies, string(ctx.PostBody()))
	if model != "" && !slices.Contains(u.models, model) {
		u.wrong = append(u.wrong, model)
	}
	u.mu.Unlock()
	ctx.Response.Header.Set("X-Upstream", u.name)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"ok":true}`)
}

func (u *modelUpstream) snapshot() (got, wrong, bodies []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.got), slices.Clone(u.wrong), slices.Clone(u.bodies)
}

const (
	keyDan = "sk-dave-0123456789abcdefgh"
	keyEve = "sk-eve-0123456789abcdefghi"
)

// startModelGateway starts two pools, A (llama) and B (qwen, bge), an
// alias gpt-4o-mini → qwen2.5-7b-instruct, and keys with and without
// model lists, and waits until the gateway has discovered both pools.
func startModelGateway(t *testing.T) (*gateway, *modelUpstream, *modelUpstream) {
	t.Helper()
	a := &modelUpstream{name: "A", models: []string{"llama-3-8b", "llama-3-8b-sql-lora"}}
	b := &modelUpstream{name: "B", models: []string{"qwen2.5-7b-instruct", "bge-m3"}}
	keys := keysFile(t, "alice:"+keyAlice+"\n"+
		"bob:"+keyBob+" models=llama-3*\n"+
		"carol:"+keyCarol+" models=gpt-4o-mini\n"+
		"dan:"+keyDan+" models=qwen*,bge-m3\n"+
		"eve:"+keyEve+" expires=2020-01-01\n")
	g := startGateway(t, server.Config{
		KeysFile:            keys,
		Upstreams:           []string{startUpstream(t, a.handler), startUpstream(t, b.handler)},
		ModelAliases:        map[string]string{"gpt-4o-mini": "qwen2.5-7b-instruct"},
		HealthCheckInterval: 20 * time.Millisecond,
		AccessLogFormat:     logsink.FormatJSON,
	})
	pollUntil(t, "both pools discovered", func() bool {
		_, body := do(t, "GET", g.url+"/v1/models", "Bearer "+keyAlice, "")
		return strings.Contains(body, "llama-3-8b") && strings.Contains(body, "bge-m3")
	})
	return g, a, b
}

// pollUntil polls cond until it holds, failing the test after 10 s.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Long, for a loaded CI machine running every package with -race: a
	// condition that holds ends the wait at once.
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestModelAccessMatrix sends every route that names a model, for every
// model and key, and checks each against the one rule: a request reaches
// the pool serving its model if the model is known and the key's list
// matches the name sent; otherwise 404 model_not_found, and nothing
// reaches any upstream.
func TestModelAccessMatrix(t *testing.T) {
	g, a, b := startModelGateway(t)
	keys := map[string]struct {
		key      string
		patterns []string
	}{
		"alice": {keyAlice, nil},
		"bob":   {keyBob, []string{"llama-3*"}},
		"carol": {keyCarol, []string{"gpt-4o-mini"}},
		"dan":   {keyDan, []string{"qwen*", "bge-m3"}},
	}
	pool := map[string]string{
		"llama-3-8b": "A", "llama-3-8b-sql-lora": "A",
		"qwen2.5-7b-instruct": "B", "bge-m3": "B", "gpt-4o-mini": "B",
	}
	models := []string{"llama-3-8b", "llama-3-8b-sql-lora", "qwen2.5-7b-instruct", "bge-m3", "gpt-4o-mini", "gpt-5", "llama-3*"}
	routes := []struct {
		path string
		body func(model string) string
	}{
		{"/v1/chat/completions", func(m string) string {
			// A "model" inside messages and a tool schema must not count.
			return `{"messages":[{"role":"user","content":"{\"model\":\"llama-3-8b\"}","model":"llama-3-8b"}],` +
				`"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"model":{"type":"string","default":"llama-3-8b"}}}}}],` +
				`"model":` + quote(m) + `}`
		}},
		{"/v1/completions", func(m string) string { return `{"model":` + quote(m) + `,"prompt":"model: llama-3-8b"}` }},
		{"/v1/embeddings", func(m string) string { return `{"input":["x"],"model":` + quote(m) + `}` }},
		{"/v1/responses", func(m string) string {
			return `{"model":` + quote(m) + `,"input":"hi","metadata":{"model":"llama-3-8b"}}`
		}},
		{"/v1/rerank", func(m string) string { return `{"model":` + quote(m) + `,"query":"q","documents":["d"]}` }},
	}
	for name, k := range keys {
		for _, r := range routes {
			for _, m := range models {
				aBefore, _, _ := a.snapshot()
				bBefore, _, _ := b.snapshot()
				resp, body := do(t, "POST", g.url+r.path, "Bearer "+k.key, r.body(m))
				_, known := pool[m]
				allowed := known && auth.MatchAnyModel(k.patterns, m)
				what := fmt.Sprintf("%s POST %s model %q", name, r.path, m)
				if !allowed {
					if resp.StatusCode != 404 || !strings.Contains(body, `"code":"model_not_found"`) ||
						!strings.Contains(body, "The model `"+m+"` does not exist or you do not have access to it.") {
						t.Fatalf("%s: %d %s, want 404 model_not_found", what, resp.StatusCode, body)
					}
					aAfter, _, _ := a.snapshot()
					bAfter, _, _ := b.snapshot()
					if len(aAfter) != len(aBefore) || len(bAfter) != len(bBefore) {
						t.Fatalf("%s: refused, yet a request reached an upstream", what)
					}
					continue
				}
				if resp.StatusCode != 200 || resp.Header.Get("X-Upstream") != pool[m] {
					t.Fatalf("%s: %d from upstream %q, want 200 from %s (%s)", what, resp.StatusCode, resp.Header.Get("X-Upstream"), pool[m], body)
				}
			}
		}
		// GET /v1/models/{id}: the same rule.
		for _, m := range models {
			resp, body := do(t, "GET", g.url+"/v1/models/"+m, "Bearer "+k.key, "")
			_, known := pool[m]
			if known && auth.MatchAnyModel(k.patterns, m) {
				if resp.StatusCode != 200 || !strings.Contains(body, `"id":`+quote(m)) {
					t.Fatalf("%s GET /v1/models/%s: %d %s", name, m, resp.StatusCode, body)
				}
			} else if resp.StatusCode != 404 || !strings.Contains(body, "model_not_found") {
				t.Fatalf("%s GET /v1/models/%s: %d %s, want 404", name, m, resp.StatusCode, body)
			}
		}
	}
	for _, u := range []*modelUpstream{a, b} {
		if _, wrong, _ := u.snapshot(); len(wrong) > 0 {
			t.Fatalf("upstream %s got requests for models it does not serve: %q", u.name, wrong)
		}
	}
	// The alias reached B as its target; nothing reached B as the alias.
	got, _, _ := b.snapshot()
	if slices.Contains(got, "gpt-4o-mini") || !slices.Contains(got, "qwen2.5-7b-instruct") {
		t.Fatalf("B got models %q: the alias was not rewritten", got)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestModelsList: GET /v1/models is the union of the pools' models plus
// aliases, each entry as its upstream described it, filtered by the key's
// list.
func TestModelsList(t *testing.T) {
	g, _, _ := startModelGateway(t)
	ids := func(key string) []string {
		resp, body := do(t, "GET", g.url+"/v1/models", "Bearer "+key, "")
		if resp.StatusCode != 200 {
			t.Fatalf("GET /v1/models: %d %s", resp.StatusCode, body)
		}
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID          string `json:"id"`
				MaxModelLen int    `json:"max_model_len"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil || list.Object != "list" {
			t.Fatalf("GET /v1/models: %q (%v)", body, err)
		}
		var out []string
		for _, d := range list.Data {
			if d.ID != "gpt-4o-mini" && d.MaxModelLen != 4096 {
				t.Fatalf("entry %q lost the upstream's max_model_len: %s", d.ID, body)
			}
			out = append(out, d.ID)
		}
		return out
	}
	f := func(key string, want ...string) {
		t.Helper()
		if got := ids(key); !slices.Equal(got, want) {
			t.Fatalf("models listed: %q, want %q", got, want)
		}
	}
	f(keyAlice, "bge-m3", "gpt-4o-mini", "llama-3-8b", "llama-3-8b-sql-lora", "qwen2.5-7b-instruct")
	f(keyBob, "llama-3-8b", "llama-3-8b-sql-lora")
	f(keyCarol, "gpt-4o-mini")
	f(keyDan, "bge-m3", "qwen2.5-7b-instruct")
	if resp, _ := do(t, "GET", g.url+"/v1/models", "", ""); resp.StatusCode != 401 {
		t.Fatalf("GET /v1/models without a key: %d", resp.StatusCode)
	}
}

// TestModelMissing: with two pools, a body without a model (or with one
// only nested) answers 400; a key with a model list may never leave the
// model to the upstream.
func TestModelMissing(t *testing.T) {
	g, a, b := startModelGateway(t)
	for _, body := range []string{`{"prompt":"x"}`, `{"messages":[{"model":"llama-3-8b"}]}`, `{"model":{"name":"llama-3-8b"}}`} {
		resp, out := do(t, "POST", g.url+"/v1/completions", "Bearer "+keyAlice, body)
		if body == `{"model":{"name":"llama-3-8b"}}` {
			if resp.StatusCode != 400 {
				t.Fatalf("model not a string: %d %s", resp.StatusCode, out)
			}
			continue
		}
		if resp.StatusCode != 400 || !strings.Contains(out, "you must provide a model parameter") {
			t.Fatalf("body %s: %d %s, want 400 missing model", body, resp.StatusCode, out)
		}
	}
	resp, out := do(t, "POST", g.url+"/v1/completions", "Bearer "+keyAlice, `{"model":"llama-3-8b",`)
	if resp.StatusCode != 400 || !strings.Contains(out, "invalid_json") {
		t.Fatalf("broken JSON: %d %s", resp.StatusCode, out)
	}
	ga, _, _ := a.snapshot()
	gb, _, _ := b.snapshot()
	if len(ga)+len(gb) != 0 {
		t.Fatalf("refused requests reached the upstreams: %q %q", ga, gb)
	}
}

// TestKeyExpires: a key past its expires= answers 401 expired_api_key,
// logged under its key_id and counted; its expiry is in the metrics.
func TestKeyExpires(t *testing.T) {
	g, _, _ := startModelGateway(t)
	resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyEve, `{"model":"llama-3-8b"}`)
	if resp.StatusCode != 401 || body != `{"error":{"message":"The API key of key_id eve expired at 2020-01-01T00:00:00Z.","type":"invalid_request_error","param":"authorization","code":"expired_api_key"}}` {
		t.Fatalf("expired key: %d %s", resp.StatusCode, body)
	}
	var m strings.Builder
	g.WriteMetrics(&m)
	for _, want := range []string{
		`authgate_unauthorized_total{reason="expired"} 1`,
		`authgate_key_expiry_timestamp_seconds{key_id="eve"} 1577836800`,
	} {
		if !strings.Contains(m.String(), want) {
			t.Fatalf("metrics lack %s:\n%s", want, m.String())
		}
	}
	lines := g.logLines(t)
	if !strings.Contains(lines[len(lines)-1], `"key_id":"eve"`) || !strings.Contains(lines[len(lines)-1], `"status":401`) {
		t.Fatalf("log line %s", lines[len(lines)-1])
	}
}

// TestModelInLogAndMetrics: the JSON log's model is the name sent; the
// per-model counters count routed requests by status and never an
// unknown name.
func TestModelInLogAndMetrics(t *testing.T) {
	g, _, _ := startModelGateway(t)
	do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, `{"model":"gpt-4o-mini"}`)
	do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, `{"model":"no-such-model"}`)
	var m strings.Builder
	g.WriteMetrics(&m)
	if !strings.Contains(m.String(), `authgate_model_requests_total{model="gpt-4o-mini",code="200"} 1`) || strings.Contains(m.String(), "no-such-model") {
		t.Fatalf("model metrics:\n%s", m.String())
	}
	var modelsLogged []string
	for _, l := range g.logLines(t) {
		var e struct {
			Path  string `json:"path"`
			Model string `json:"model"`
		}
		json.Unmarshal([]byte(l), &e)
		if e.Path == "/v1/chat/completions" {
			modelsLogged = append(modelsLogged, e.Model)
		}
	}
	if !slices.Equal(modelsLogged, []string{"gpt-4o-mini", "no-such-model"}) {
		t.Fatalf("models logged: %q", modelsLogged)
	}
}

// TestInspectBounds: a body over INSPECT_MAX_BODY answers 413, and bodies
// that would pass INSPECT_MEMORY answer 503 with Retry-After; the gateway
// keeps serving.
func TestInspectBounds(t *testing.T) {
	a := &modelUpstream{name: "A", models: []string{"m1"}}
	b := &modelUpstream{name: "B", models: []string{"m2"}}
	g := startGateway(t, server.Config{
		KeysFile:            keysFile(t, "alice:"+keyAlice+"\n"),
		Upstreams:           []string{startUpstream(t, a.handler), startUpstream(t, b.handler)},
		HealthCheckInterval: 20 * time.Millisecond,
		InspectMaxBody:      64 << 10,
		InspectMemory:       64 << 10,
		AccessLog:           filepath.Join(t.TempDir(), "log"),
	})
	// Until the gateway knows any model, GET /v1/models is proxied to one
	// upstream, which lists its own model only: both mean the gateway's
	// union, and that it routes (and so inspects).
	pollUntil(t, "discovery", func() bool {
		_, body := do(t, "GET", g.url+"/v1/models", "Bearer "+keyAlice, "")
		return strings.Contains(body, `"m1"`) && strings.Contains(body, `"m2"`)
	})
	big := `{"model":"m1","prompt":"` + strings.Repeat("x", 70<<10) + `"}`
	resp, body := do(t, "POST", g.url+"/v1/completions", "Bearer "+keyAlice, big)
	if resp.StatusCode != 413 || !strings.Contains(body, "too large for the gateway to find its model") {
		t.Fatalf("body over the inspection bound: %d %s", resp.StatusCode, body)
	}
	// Hold 40 KiB of the budget with a body whose end never comes, then
	// send another 40 KiB one: it does not fit.
	_, done := stalledBody(t, g.url, 40<<10)
	defer done()
	pollUntil(t, "the stalled body to hold its reservation", func() bool {
		return metricsOf(g)["authgate_inspect_bytes_reserved"] >= 40<<10
	})
	resp, body = do(t, "POST", g.url+"/v1/completions", "Bearer "+keyAlice, `{"model":"m2","prompt":"`+strings.Repeat("y", 40<<10)+`"}`)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "server_busy") {
		t.Fatalf("a body past INSPECT_MEMORY: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, _ := do(t, "POST", g.url+"/v1/completions", "Bearer "+keyAlice, `{"model":"m2"}`); resp.StatusCode != 200 {
		t.Fatalf("a small body after the 503: %d", resp.StatusCode)
	}
}

// stalledBody sends the head of a request declaring a body of size bytes
// and all but its last byte, and keeps the connection open until done.
func stalledBody(t *testing.T, base string, size int) (net.Conn, func()) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAlice, size, strings.Repeat("z", size-1))
	return c, func() { c.Close() }
}
