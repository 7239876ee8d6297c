package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// TestStreamMetering: a routed stream that did not ask for its usage is
// asked for it upstream (asserted inside the upstream), metered from its
// usage chunk, and the client gets the events it would have got without
// the gateway: no usage chunk. A client that asked for usage gets its one
// usage chunk, unchanged. A client that asked for running usage alone is
// not asked for more, so that no chunk gains usage it did not ask for,
// and its stream is metered by estimate.
func TestStreamMetering(t *testing.T) {
	var mu sync.Mutex
	var asked []bool // per upstream request: did its body ask for include_usage
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mock := mockupstream.New(mockupstream.Config{Models: []string{"m1"}, StreamChunks: 4})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			var b struct {
				StreamOptions struct {
					IncludeUsage bool `json:"include_usage"`
				} `json:"stream_options"`
			}
			json.Unmarshal(ctx.PostBody(), &b)
			mu.Lock()
			asked = append(asked, b.StreamOptions.IncludeUsage)
			mu.Unlock()
		}
		mock.Handler(ctx)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	g := startGateway(t, server.Config{
		KeysFile:            keysFile(t, "alice:"+keyAlice+"  models=m1\n"),
		Upstreams:           []string{"http://" + ln.Addr().String()},
		HealthCheckInterval: 20 * time.Millisecond,
	})

	// events returns the stream's data events: "usage" for a usage-only
	// chunk, "content+usage" for a chunk that carries both, else "chunk";
	// and "[DONE]".
	events := func(body string) []string {
		t.Helper()
		req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keyAlice)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", body, resp.StatusCode)
		}
		var out []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if data == "[DONE]" {
				out = append(out, data)
				continue
			}
			var c struct {
				Choices []any `json:"choices"`
				Usage   any   `json:"usage"`
			}
			if err := json.Unmarshal([]byte(data), &c); err != nil {
				t.Fatalf("%s: event %s: %v", body, data, err)
			}
			switch {
			case len(c.Choices) == 0 && c.Usage != nil:
				out = append(out, "usage")
			case c.Usage != nil:
				out = append(out, "content+usage")
			default:
				out = append(out, "chunk")
			}
		}
		return out
	}
	tokens := func() string {
		var m strings.Builder
		g.WriteMetrics(&m)
		var lines []string
		for _, l := range strings.Split(m.String(), "\n") {
			if strings.HasPrefix(l, "authgate_tokens_total{") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	// Role, 4 contents, stop; then [DONE].
	plain := []string{"chunk", "chunk", "chunk", "chunk", "chunk", "chunk", "[DONE]"}
	withUsage := []string{"chunk", "chunk", "chunk", "chunk", "chunk", "chunk", "usage", "[DONE]"}

	if got := events(`{"model":"m1","stream":true}`); strings.Join(got, " ") != strings.Join(plain, " ") {
		t.Fatalf("stream without include_usage: events %v, want %v", got, plain)
	}
	if got := tokens(); !strings.Contains(got, `key_id="alice",model="m1",type="completion"} 4`) {
		t.Fatalf("the stream was not metered: %s", got)
	}
	if got := events(`{"model":"m1","stream":true,"stream_options":{"include_usage":true}}`); strings.Join(got, " ") != strings.Join(withUsage, " ") {
		t.Fatalf("stream with include_usage: events %v, want %v", got, withUsage)
	}
	if got := tokens(); !strings.Contains(got, `key_id="alice",model="m1",type="completion"} 8`) {
		t.Fatalf("the second stream was not metered: %s", got)
	}
	// No usage reported: estimated, a completion token per content event.
	if got := events(`{"model":"m1","stream":true,"stream_options":{"continuous_usage_stats":true}}`); strings.Join(got, " ") != strings.Join(plain, " ") {
		t.Fatalf("stream with continuous_usage_stats alone: events %v, want %v", got, plain)
	}
	if got := tokens(); !strings.Contains(got, `key_id="alice",model="m1",type="completion"} 12`) {
		t.Fatalf("the stream without usage was not estimated: %s", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []bool{true, true, false}; len(asked) != 3 || asked[0] != want[0] || asked[1] != want[1] || asked[2] != want[2] {
		t.Fatalf("upstream asked for usage: %v, want %v", asked, want)
	}
}

// TestStreamMeteringClientGone: a client that leaves a stream with
// running usage is charged what the upstream had reported when the
// gateway cut it, and its log line is written all the same, with those
// tokens.
func TestStreamMeteringClientGone(t *testing.T) {
	_, upURL := startMock(t, mockupstream.Config{Models: []string{"m1"}, StreamChunks: 500, ChunkDelay: 10 * time.Millisecond})
	g := startGateway(t, server.Config{
		KeysFile:            keysFile(t, "alice:"+keyAlice+"  models=m1\n"),
		Upstreams:           []string{upURL},
		HealthCheckInterval: 20 * time.Millisecond,
		AccessLogFormat:     logsink.FormatJSON,
	})
	c, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"m1","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAlice, len(body), body)
	br := bufio.NewReader(c)
	for events := 0; events < 4; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			events++
		}
	}
	c.Close()
	var counted string
	pollUntil(t, "the stream's tokens counted", func() bool {
		var m strings.Builder
		g.WriteMetrics(&m)
		for _, l := range strings.Split(m.String(), "\n") {
			if v, ok := strings.CutPrefix(l, `authgate_tokens_total{key_id="alice",model="m1",type="completion"} `); ok {
				counted = v
				return true
			}
		}
		return false
	})
	n, _ := strconv.Atoi(counted)
	if n < 3 || n >= 500 {
		t.Fatalf("%d completion tokens counted for a stream left after 3 content events of 500", n)
	}
	var logged []string
	for _, l := range g.logLines(t) {
		var e struct {
			Path       string `json:"path"`
			Completion *int64 `json:"completion_tokens"`
		}
		json.Unmarshal([]byte(l), &e)
		if e.Path == "/v1/chat/completions" {
			if e.Completion == nil {
				t.Fatalf("the stream's line has no tokens: %s", l)
			}
			logged = append(logged, strconv.FormatInt(*e.Completion, 10))
		}
	}
	if len(logged) != 1 || logged[0] != counted {
		t.Fatalf("logged completion tokens %v, counted %s", logged, counted)
	}
}

// TestStreamOptionsOff: an upstream that refuses stream_options gets a
// 400 from the mock when the gateway adds it; set stream-options=off, it
// is never added, and the stream is metered by estimate, its log line
// marked usage_estimated.
func TestStreamOptionsOff(t *testing.T) {
	_, upURL := startMock(t, mockupstream.Config{Models: []string{"m1"}, StreamChunks: 4, RejectStreamOptions: true})
	up := upURL
	keys := keysFile(t, "alice:"+keyAlice+"  models=*\n")
	body := `{"model":"m1","stream":true}`

	g := startGateway(t, server.Config{KeysFile: keys, Upstreams: []string{up}})
	if resp, b := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, body); resp.StatusCode != 400 || !strings.Contains(b, "stream_options") {
		t.Fatalf("without the setting: %d %s, want the upstream's 400", resp.StatusCode, b)
	}

	g = startGateway(t, server.Config{KeysFile: keys, Upstreams: []string{up + " stream-options=off"}, AccessLogFormat: logsink.FormatJSON})
	if resp, b := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+keyAlice, body); resp.StatusCode != 200 || strings.Contains(b, "usage") {
		t.Fatalf("stream-options=off: %d %s", resp.StatusCode, b)
	}
	var m strings.Builder
	g.WriteMetrics(&m)
	if !strings.Contains(m.String(), `authgate_tokens_total{key_id="alice",model="m1",type="completion"} 4`) {
		t.Fatalf("the stream was not metered by its 4 content events:\n%s", m.String())
	}
	lines := g.logLines(t)
	var e struct {
		Completion *int64 `json:"completion_tokens"`
		Estimated  *bool  `json:"usage_estimated"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &e); err != nil || e.Completion == nil || *e.Completion != 4 || e.Estimated == nil || !*e.Estimated {
		t.Fatalf("log line %s: want 4 completion tokens, estimated", lines[len(lines)-1])
	}
}
