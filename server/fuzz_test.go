package server

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseUpstreams: ParseUpstreams never panics; what it accepts is a
// list of http(s) URLs with a host and no user info, query or fragment;
// and its errors never repeat a password.
func FuzzParseUpstreams(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:8000",
		"http://a:1, https://b/v1",
		"http://[::1]:8000/prefix/",
		"http://u:hunter2-secret@host",
		"http://a,,http://b",
		"ftp://x",
		"http://a:99999",
		"http://%zz",
		" ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ups, err := ParseUpstreams(s)
		if err != nil {
			if i := strings.Index(s, "@"); i > 0 {
				if u, perr := url.Parse(strings.TrimSpace(strings.Split(s, ",")[0])); perr == nil && u.User != nil {
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
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("accepted %q that does not parse: %v", raw, err)
			}
			if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				t.Fatalf("accepted %q", raw)
			}
			if _, err := newUpstream(raw, &Config{}); err != nil {
				t.Fatalf("accepted %q that newUpstream refuses: %v", raw, err)
			}
		}
	})
}
