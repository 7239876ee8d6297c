package upstreamspec

import (
	"net/url"
	"strings"
	"testing"
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
			it, err := ParseItem(raw)
			if err != nil {
				t.Fatalf("accepted %q that ParseItem refuses: %v", raw, err)
			}
			if it.Raw != fields[0] {
				t.Fatalf("accepted %q as upstream %q", raw, it.Raw)
			}
			for _, m := range it.Models {
				if CheckModelID(m) != nil || strings.ContainsAny(m, " \t") {
					t.Fatalf("accepted %q declaring model %q", raw, m)
				}
			}
		}
	})
}
