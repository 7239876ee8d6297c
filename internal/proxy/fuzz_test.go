package proxy

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseUpstreams: ParseUpstreams never panics; what it accepts is a
// list of http(s) URLs with a host and no user info, query or fragment,
// each with valid model ids if it declares models; and its errors never
// repeat a password.
func FuzzParseUpstreams(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:8000",
		"http://a:1, https://b/v1",
		"http://[::1]:8000/prefix/",
		"http://u:hunter2-secret@host",
		"http://a,,http://b",
		"ftp://x",
		"http://a:99999",
		"http://a models=m1|m2, http://b models=m3",
		"http://a models=m1|m1",
		"http://a models=",
		"http://a models=x models=y",
		"http://a weight=2",
		"http://a sk-secret-0123456789",
		"http://%zz",
		" ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ups, err := ParseUpstreams(s)
		if err != nil {
			first := strings.Fields(strings.Split(s, ",")[0]) // its URL, then its options
			if i := strings.Index(s, "@"); i > 0 && len(first) > 0 {
				if u, perr := url.Parse(first[0]); perr == nil && u.User != nil {
					// The password may also stand elsewhere in the URL (the
					// fuzzer's "//:000000@000000"): look for it as user info.
					// An empty one ("//:@#:@") cannot be shown.
					if p, ok := u.User.Password(); ok && p != "" && p != "xxxxx" && strings.Contains(err.Error(), ":"+p+"@") {
						t.Fatalf("error %q shows the password", err)
					}
				}
			}
			return
		}
		if len(ups) == 0 {
			t.Fatal("no upstream and no error")
		}
		for _, raw := range ups {
			fields := strings.Fields(raw)
			u, err := url.Parse(fields[0])
			if err != nil {
				t.Fatalf("accepted %q that does not parse: %v", raw, err)
			}
			if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				t.Fatalf("accepted %q", raw)
			}
			up, err := newUpstream(raw, nil, 0)
			if err != nil {
				t.Fatalf("accepted %q that newUpstream refuses: %v", raw, err)
			}
			if up.name != fields[0] {
				t.Fatalf("accepted %q as upstream %q", raw, up.name)
			}
			if set := up.models.Load(); set != nil {
				for _, m := range set.models {
					if checkModelID(m.ID) != nil || strings.ContainsAny(m.ID, " \t") {
						t.Fatalf("accepted %q declaring model %q", raw, m.ID)
					}
				}
			}
		}
	})
}

// FuzzParseModelList: parseModelList never panics; what it accepts is at
// most maxModels entries, each id once, of 1 to maxModelID bytes of
// UTF-8, each entry a JSON object whose "id" is its id.
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
			if m.ID == "" || len(m.ID) > maxModelID || !utf8.ValidString(m.ID) || seen[m.ID] {
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
