package proxy

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/authgate/authgate/internal/upstreamspec"
)

// FuzzParseModelList: parseModelList never panics; what it accepts is at
// most maxModels entries, each id once, of 1 to upstreamspec.MaxModelID
// bytes of UTF-8, each entry a JSON object whose "id" is its id.
func FuzzParseModelList(f *testing.F) {
	for _, s := range []string{
		`{"object":"list","data":[{"id":"m","object":"model","created":1,"owned_by":"vllm","root":"/m","parent":null,"max_model_len":4096}]}`,
		`{"data":[{"id":"a"},{"id":"a","x":1},{"id":"b\u00e9\n"}]}`,
		`{"data":[]}`,
		`{"data":{}}`,
		`{"data":[1]}`,
		`{"data":[{"id":""}]}`,
		`{"data":[{"id":"\ud800"}]}`,
		`[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		models, err := parseModelList(body)
		if err != nil {
			return
		}
		if len(models) > maxModels {
			t.Fatalf("accepted %d models", len(models))
		}
		seen := map[string]bool{}
		for _, m := range models {
			if m.ID == "" || len(m.ID) > upstreamspec.MaxModelID || !utf8.ValidString(m.ID) || seen[m.ID] {
				t.Fatalf("accepted id %q", m.ID)
			}
			seen[m.ID] = true
			var e map[string]any
			if err := json.Unmarshal(m.JSON, &e); err != nil || e["id"] != m.ID {
				t.Fatalf("entry %s of id %q: %v", m.JSON, m.ID, err)
			}
		}
	})
}
