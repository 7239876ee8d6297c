package server_test

import (
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// TestTokenMetering: the usage of a response held whole is read and
// written to the JSON log (prompt_tokens, completion_tokens,
// usage_estimated) and counted in authgate_tokens_total by key_id and
// model: the model the request named when routed, else the response's if
// an upstream lists it. A refused request logs null.
func TestTokenMetering(t *testing.T) {
	start := func(models ...string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		mock := mockupstream.New(mockupstream.Config{Models: models})
		srv := &fasthttp.Server{Handler: mock.Handler}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Shutdown() })
		return "http://" + ln.Addr().String()
	}
	g := startGateway(t, server.Config{
		KeysFile:            keysFile(t, "alice:"+keyAlice+"\nbob:"+keyBob+"\ncarol:"+keyCarol+"\n"),
		Upstreams:           []string{start("m1"), start("m2")},
		ModelAliases:        map[string]string{"mini": "m1"},
		HealthCheckInterval: 20 * time.Millisecond,
		AccessLogFormat:     logsink.FormatJSON,
	})
	pollUntil(t, "discovery", func() bool {
		_, body := do(t, "GET", g.url+"/v1/models", "Bearer "+keyAlice, "")
		return strings.Contains(body, `"m1"`) && strings.Contains(body, `"m2"`)
	})
	// The mock's prompt_tokens: a token per four bytes of the body.
	prompt := func(body string) int64 { return max(1, (int64(len(body))+3)/4) }
	type want struct {
		metered            bool
		prompt, completion int64
	}
	var wants []want
	post := func(key, path, body string, status int, w want) {
		t.Helper()
		resp, got := do(t, "POST", g.url+path, "Bearer "+key, body)
		if resp.StatusCode != status {
			t.Fatalf("%s %s: %d %s", path, body, resp.StatusCode, got)
		}
		wants = append(wants, w)
	}
	chat := `{"model":"m1","messages":[{"role":"user","content":"hi"}]}`
	post(keyAlice, "/v1/chat/completions", chat, 200, want{true, prompt(chat), 5})
	cut := `{"model":"mini","max_tokens":2,"messages":[]}` // an alias: counted as its name
	post(keyAlice, "/v1/chat/completions", cut, 200, want{true, prompt(`{"model":"m1","max_tokens":2,"messages":[]}`), 2})
	emb := `{"model":"m2","input":"hello"}`
	post(keyBob, "/v1/embeddings", emb, 200, want{true, 2, 0}) // the mock: a token per four bytes of the input
	// A stream, asked for its usage (TestStreamMetering): its line, written
	// as it ends, has its tokens; the prompt's, of the body as sent up.
	post(keyCarol, "/v1/chat/completions", `{"model":"m2","stream":true}`, 200, want{true, -1, 5})
	post(keyBob, "/v1/chat/completions", `{"model":"nope"}`, 404, want{})

	var m strings.Builder
	g.WriteMetrics(&m)
	for _, line := range []string{
		`authgate_tokens_total{key_id="alice",model="m1",type="prompt"} ` + itoa(prompt(chat)),
		`authgate_tokens_total{key_id="alice",model="m1",type="completion"} 5`,
		`authgate_tokens_total{key_id="alice",model="mini",type="completion"} 2`,
		`authgate_tokens_total{key_id="bob",model="m2",type="prompt"} 2`,
		`authgate_tokens_total{key_id="bob",model="m2",type="completion"} 0`,
	} {
		if !strings.Contains(m.String(), line+"\n") {
			t.Errorf("metrics lack %s:\n%s", line, m.String())
		}
	}
	if strings.Contains(m.String(), `model="nope"`) {
		t.Errorf("metrics count an unknown model:\n%s", m.String())
	}

	var got []want
	for _, l := range g.logLines(t) {
		var e struct {
			Method     string `json:"method"`
			Prompt     *int64 `json:"prompt_tokens"`
			Completion *int64 `json:"completion_tokens"`
			Estimated  *bool  `json:"usage_estimated"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("log line %s: %v", l, err)
		}
		if e.Method != "POST" {
			continue
		}
		if (e.Prompt == nil) != (e.Completion == nil) || (e.Prompt == nil) != (e.Estimated == nil) || (e.Estimated != nil && *e.Estimated) {
			t.Fatalf("log line %s: token fields all null or all set, never estimated here", l)
		}
		w := want{metered: e.Prompt != nil}
		if w.metered {
			w.prompt, w.completion = *e.Prompt, *e.Completion
		}
		got = append(got, w)
	}
	if len(got) != len(wants) {
		t.Fatalf("%d POSTs logged, want %d", len(got), len(wants))
	}
	for i := range wants {
		if wants[i].prompt == -1 && got[i].prompt > 0 {
			got[i].prompt = -1 // any positive count
		}
		if got[i] != wants[i] {
			t.Errorf("POST %d logged %+v, want %+v", i+1, got[i], wants[i])
		}
	}
}

// TestTokenMeteringOnePool: with one pool nothing is inspected, and the
// tokens are counted under the response's model once discovery lists it
// (until then, under "").
func TestTokenMeteringOnePool(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mock := mockupstream.New(mockupstream.Config{Models: []string{"m3"}})
	srv := &fasthttp.Server{Handler: mock.Handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	g := startGateway(t, server.Config{
		KeysFile:            keysFile(t, "alice:"+keyAlice+"\n"),
		Upstreams:           []string{"http://" + ln.Addr().String()},
		HealthCheckInterval: 20 * time.Millisecond,
	})
	pollUntil(t, "tokens counted under the listed model", func() bool {
		do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, `{"model":"m3"}`)
		var m strings.Builder
		g.WriteMetrics(&m)
		return strings.Contains(m.String(), `authgate_tokens_total{key_id="alice",model="m3",type="completion"} `)
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestNoMetering: with metering off, a key_id without a token limit has
// its answers and streams passed on unread (its stream not asked for
// usage, asserted inside the upstream), nothing counted and null tokens
// logged; a token-limited key_id is metered all the same.
func TestNoMetering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32 // requests that reached the upstream asking for usage
	mock := mockupstream.New(mockupstream.Config{Models: []string{"m1"}})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if strings.Contains(string(ctx.PostBody()), "include_usage") {
			asked.Add(1)
		}
		mock.Handler(ctx)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	g := startGateway(t, server.Config{
		KeysFile:        keysFile(t, "alice:"+keyAlice+"  models=*\nbob:"+keyBob+"  tpm=100000\n"),
		Upstreams:       []string{"http://" + ln.Addr().String()},
		AccessLogFormat: logsink.FormatJSON,
		NoMetering:      true,
	})
	for _, key := range []string{keyAlice, keyBob} {
		for _, body := range []string{`{"model":"m1"}`, `{"model":"m1","stream":true}`} {
			if resp, b := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+key, body); resp.StatusCode != 200 || strings.Contains(b, `"choices":[]`) {
				t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
			}
		}
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("%d requests asked the upstream for usage, want 1 (bob's stream)", n)
	}
	var m strings.Builder
	g.WriteMetrics(&m)
	if strings.Contains(m.String(), `key_id="alice",model`) || !strings.Contains(m.String(), `authgate_tokens_total{key_id="bob",model="m1",type="completion"} 10`) {
		t.Fatalf("metrics:\n%s", m.String())
	}
	for _, l := range g.logLines(t) {
		if strings.Contains(l, `"key_id":"alice"`) && !strings.Contains(l, `"prompt_tokens":null`) {
			t.Fatalf("alice's line has tokens: %s", l)
		}
		if strings.Contains(l, `"key_id":"bob"`) && strings.Contains(l, `"prompt_tokens":null`) {
			t.Fatalf("bob's line has none: %s", l)
		}
	}
}
