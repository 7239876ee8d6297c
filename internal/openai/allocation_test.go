//go:build !race

package openai

import (
	"bytes"
	"testing"
)

// The hot paths allocate nothing (the race detector's build allocates, so
// these run without it).

func TestParseRequestAllocs(t *testing.T) {
	for _, body := range [][]byte{
		chatBody(64<<10, false),
		[]byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":false},"max_tokens":5,"n":2}`),
	} {
		if n := testing.AllocsPerRun(100, func() {
			if r, err := ParseRequest(body); err != nil || !r.HasModel {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Fatalf("ParseRequest: %v allocations", n)
		}
	}
}

func TestAppendBodyAllocs(t *testing.T) {
	body := chatBody(64<<10, false)
	r, err := ParseRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, len(body)+100)
	if n := testing.AllocsPerRun(100, func() {
		dst = r.AppendBody(dst[:0], body, Edit{Model: "Qwen/Qwen3-8B-AWQ", IncludeUsage: true})
	}); n != 0 {
		t.Fatalf("AppendBody: %v allocations", n)
	}
}

func TestParseUsageAllocs(t *testing.T) {
	body := []byte(`{"id":"c","model":"qwen","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`)
	if n := testing.AllocsPerRun(100, func() {
		if r := ParseResponse(body); !r.HasUsage || string(r.Model) != "qwen" {
			t.Fatal("no usage or model")
		}
	}); n != 0 {
		t.Fatalf("ParseResponse: %v allocations", n)
	}
}

// TestSSEScannerAllocs: once its buffers have grown, the scanner
// allocates nothing per event, whether events come whole or cut across
// chunks.
func TestSSEScannerAllocs(t *testing.T) {
	stream := []byte(chatStream + continuousStream + completionStream + responsesStream)
	var s SSEScanner
	run := func() {
		for i := 0; i < len(stream); i += 100 {
			s.Feed(stream[i:min(i+100, len(stream))])
			for _, ok := s.Next(); ok; _, ok = s.Next() {
			}
		}
		s.Flush()
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("SSEScanner: %v allocations per stream", n)
	}
	if !bytes.Contains(stream, []byte("[DONE]")) {
		t.Fatal("no stream")
	}
}
