package metering

import (
	"bytes"
	"strings"
	"testing"

	"github.com/authgate/authgate/internal/openai"
)

// TestCounter: a response's usage counts under the model the request
// named, else the response's if listed, else ""; a stream counts its last
// usage when it reported one, nothing otherwise; the injected stream's
// meter drops the usage chunk.
func TestCounter(t *testing.T) {
	c := New(func(m []byte) (string, bool) {
		if string(m) == "listed" {
			return "listed", true
		}
		return "", false
	})
	body := func(model string) []byte {
		return []byte(`{"model":"` + model + `","usage":{"prompt_tokens":3,"completion_tokens":4}}`)
	}
	if u, ok := c.Response("k", "asked", body("other")); !ok || u != (openai.Usage{Prompt: 3, Completion: 4, Total: 7}) {
		t.Fatalf("Response: %+v, %v", u, ok)
	}
	c.Response("k", "", body("listed"))
	c.Response("k", "", body("upstream-only"))
	if _, ok := c.Response("k", "", []byte(`{"model":"listed"}`)); ok {
		t.Fatal("a body without usage was metered")
	}
	s := c.Stream("k", "streamed", true)
	if !s.DropUsageChunk() || c.Stream("k", "", false).DropUsageChunk() {
		t.Fatal("DropUsageChunk does not follow injected")
	}
	s.StreamEnded(openai.Usage{Prompt: 10, Completion: 20}, true, 20)
	c.Stream("k", "unreported", false).StreamEnded(openai.Usage{}, false, 9)
	var bb bytes.Buffer
	c.Write(&bb)
	out := bb.String()
	for _, want := range []string{
		`authgate_tokens_total{key_id="k",model="asked",type="prompt"} 3`,
		`authgate_tokens_total{key_id="k",model="listed",type="completion"} 4`,
		`authgate_tokens_total{key_id="k",model="",type="prompt"} 3`,
		`authgate_tokens_total{key_id="k",model="streamed",type="completion"} 20`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
	if strings.Contains(out, "upstream-only") || strings.Contains(out, "unreported") {
		t.Errorf("an unlisted or unreported model is a label:\n%s", out)
	}
}
