package main

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authgate/authgate/mockupstream"
)

// startSlowStreamer serves a mock upstream whose streams pause gap between
// events, and returns its base URL.
func startSlowStreamer(t *testing.T, chunks int, gap time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mock := mockupstream.New(mockupstream.Config{StreamChunks: chunks, ChunkDelay: gap})
	go mock.Serve(ln)
	t.Cleanup(func() { mock.Shutdown() })
	return "http://" + ln.Addr().String()
}

// TestServeBinaryStopFinishesStreams: SIGTERM during a streamed response
// lets the stream finish, then exits 0 with its log line on disk.
func TestServeBinaryStopFinishesStreams(t *testing.T) {
	key := testKey(t)
	keys := "streamer:" + key + "\n"
	environ, dataDir := gatewayEnv(t, &upstream{url: startSlowStreamer(t, 10, 50*time.Millisecond)}, &keys,
		map[string]string{"SHUTDOWN_DRAIN": "0s"})
	p := startServe(t, environ)

	req, err := http.NewRequest("POST", p.base+"/v1/chat/completions",
		strings.NewReader(`{"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := p.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first event: %q, %v", line, err)
	}

	p.signal(syscall.SIGTERM) // mid-stream
	events := 1
	done := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream was cut after %d events by the stop: %v", events, err)
		}
		if strings.HasPrefix(line, "data: ") {
			events++
		}
		if line == "data: [DONE]\n" {
			done = true
			break
		}
	}
	if !done || events < 10 {
		t.Fatalf("%d events, done %v", events, done)
	}
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := readLog(t, filepath.Join(dataDir, "logs", "api_access.log"), key)
	if len(lines) != 1 || lines[0] != "streamer | POST /v1/chat/completions | 200" {
		t.Fatalf("log %q", lines)
	}
}

// TestServeBinaryReopensLogOnSIGUSR1 is logrotate's rename-then-signal:
// lines before the signal stay in the renamed file, later ones go to a new
// file at the configured path, none is lost.
func TestServeBinaryReopensLogOnSIGUSR1(t *testing.T) {
	up := startUpstream(t)
	key := testKey(t)
	keys := "rot:" + key + "\n"
	environ, dataDir := gatewayEnv(t, up, &keys, map[string]string{"SHUTDOWN_DRAIN": "0s"})
	p := startServe(t, environ)
	logPath := filepath.Join(dataDir, "logs", "api_access.log")

	for i := 0; i < 5; i++ {
		p.do("GET", "/v1/models", "Bearer "+key, "")
	}
	// Wait until the five lines are in the file, then rotate.
	eventually(t, "five lines in the access log", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "\n") == 5
	})
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	p.do("GET", "/v1/models", "Bearer "+key, "") // written to the renamed file
	p.signal(syscall.SIGUSR1)
	if !p.stderr.waitFor("access log reopened", 1, waitLimit) {
		t.Fatalf("no reopen logged:\n%s", p.stderr)
	}
	for i := 0; i < 3; i++ {
		p.do("GET", "/v1/models", "Bearer "+key, "")
	}
	p.stop(syscall.SIGTERM, 5*time.Second)

	old := readLog(t, logPath+".1", key)
	cur := readLog(t, logPath, key)
	if len(old) != 6 || len(cur) != 3 {
		t.Fatalf("rotated file has %d lines (want 6), new file %d (want 3)", len(old), len(cur))
	}
}

// TestServeBinaryJSONAccessLog: ACCESS_LOG_FORMAT=json writes one object a
// line with the text format's fields and more.
func TestServeBinaryJSONAccessLog(t *testing.T) {
	up := startUpstream(t)
	key := testKey(t)
	keys := "js:" + key + "\n"
	environ, dataDir := gatewayEnv(t, up, &keys, map[string]string{"ACCESS_LOG_FORMAT": "json", "SHUTDOWN_DRAIN": "0s"})
	p := startServe(t, environ)
	p.do("POST", "/v1/chat/completions?x=1", "Bearer "+key, chatBody)
	p.do("GET", "/v1/models", "Bearer sk-wrong-0123456789abcdef", "")
	p.stop(syscall.SIGTERM, 5*time.Second)

	b, err := os.ReadFile(filepath.Join(dataDir, "logs", "api_access.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), key) {
		t.Fatal("the log shows a key")
	}
	type line struct {
		Time      string   `json:"time"`
		KeyID     string   `json:"key_id"`
		Method    string   `json:"method"`
		Path      string   `json:"path"`
		Status    int      `json:"status"`
		LatencyMs *float64 `json:"latency_ms"`
		BytesIn   *int64   `json:"bytes_in"`
		BytesOut  *int64   `json:"bytes_out"`
		Upstream  *string  `json:"upstream"`
		RequestID string   `json:"request_id"`
		Client    string   `json:"client"`
		Model     *string  `json:"model"`
		// Null when not metered: the 401.
		PromptTokens     *int64 `json:"prompt_tokens"`
		CompletionTokens *int64 `json:"completion_tokens"`
		UsageEstimated   *bool  `json:"usage_estimated"`
	}
	var got []line
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var v line
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, v.Time); err != nil || !strings.HasSuffix(v.Time, "Z") {
			t.Errorf("time %q", v.Time)
		}
		if v.LatencyMs == nil || v.BytesIn == nil || v.BytesOut == nil || v.Upstream == nil || v.RequestID == "" || v.Client != "127.0.0.1" || v.Model == nil {
			t.Errorf("line %q lacks a field", l)
		}
		got = append(got, v)
	}
	if len(got) != 2 {
		t.Fatalf("%d lines", len(got))
	}
	if g := got[0]; g.KeyID != "js" || g.Method != "POST" || g.Path != "/v1/chat/completions" || g.Status != 200 ||
		*g.Upstream != up.url || *g.BytesIn != int64(len(chatBody)) || *g.BytesOut == 0 ||
		g.PromptTokens == nil || *g.PromptTokens < 1 || g.CompletionTokens == nil || *g.CompletionTokens != 5 || g.UsageEstimated == nil || *g.UsageEstimated {
		t.Errorf("proxied line %+v", g)
	}
	if g := got[1]; g.KeyID != "-" || g.Status != 401 || *g.Upstream != "" || g.PromptTokens != nil || g.UsageEstimated != nil {
		t.Errorf("rejected line %+v", g)
	}
}
