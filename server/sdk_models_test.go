package server_test

import (
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

const keySDKChat = "sk-sdk-chat-0123456789abcdef"

// TestOpenAISDKModels puts the official OpenAI Node SDK in front of two
// pools, one serving a chat model, the other an embedding model, each
// answering only for its own model: models.list shows each key_id exactly
// its models, each call reaches the pool of its model (counted inside the
// upstreams), and a denied or unknown model raises NotFoundError without
// reaching any upstream. The assertions on the SDK's side are in
// testdata/openai-sdk/models.test.mjs.
func TestOpenAISDKModels(t *testing.T) {
	node, dir := sdkSetup(t)
	const chatModel, embedModel = "chat-model", "embed-model"

	// posts counts the POSTs each upstream received, by path and model
	// the upstream was asked for.
	var mu sync.Mutex
	posts := map[string]int{}
	start := func(name, model string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		mock := mockupstream.New(mockupstream.Config{Models: []string{model}})
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			if ctx.IsPost() {
				mu.Lock()
				posts[name+" "+string(ctx.Path())]++
				mu.Unlock()
			}
			mock.Handler(ctx)
		}}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Shutdown() })
		return "http://" + ln.Addr().String()
	}
	chatURL := start("chat", chatModel)
	embedURL := start("embed", embedModel)

	g := startGateway(t, server.Config{
		KeysFile: keysFile(t, "sdk:"+keySDK+"\n"+
			"sdk-chat:"+keySDKChat+"  models="+chatModel+"\n"),
		Upstreams:           []string{chatURL, embedURL},
		HealthCheckInterval: 20 * time.Millisecond,
	})
	pollUntil(t, "both pools discovered", func() bool {
		_, body := do(t, "GET", g.url+"/v1/models", "Bearer "+keySDK, "")
		return strings.Contains(body, chatModel) && strings.Contains(body, embedModel)
	})

	runSDK(t, node, dir, "models.test.mjs",
		"OPENAI_BASE_URL="+g.url+"/v1",
		"AUTHGATE_KEY="+keySDK,
		"AUTHGATE_CHAT_KEY="+keySDKChat,
		"CHAT_MODEL="+chatModel,
		"EMBED_MODEL="+embedModel,
	)

	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{
		"chat /v1/chat/completions": 1,
		"embed /v1/embeddings":      1,
	}
	if !maps.Equal(posts, want) {
		t.Errorf("the upstreams received %v, want %v", posts, want)
	}
	var n404 int
	lines := g.logLines(t)
	for _, line := range lines {
		if strings.HasSuffix(line, " | 404") {
			n404++
		}
	}
	if n404 != 4 { // three chat calls and one models.retrieve
		t.Errorf("%d requests logged 404, want 4:\n%s", n404, strings.Join(lines, "\n"))
	}
}
