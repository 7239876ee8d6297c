//go:build !race

package openai

import "testing"

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
