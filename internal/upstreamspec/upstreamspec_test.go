package upstreamspec

import (
	"slices"
	"strings"
	"testing"
)

func TestParseUpstreams(t *testing.T) {
	ok := func(in string, want ...string) {
		t.Helper()
		got, err := ParseUpstreams(in)
		if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("ParseUpstreams(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := func(in string) {
		t.Helper()
		if got, err := ParseUpstreams(in); err == nil {
			t.Errorf("ParseUpstreams(%q) = %q, want an error", in, got)
		}
	}
	ok("http://127.0.0.1:8000", "http://127.0.0.1:8000")
	ok(" http://a:1 , https://b/v1 ", "http://a:1", "https://b/v1")
	ok("http://[::1]:8000", "http://[::1]:8000")
	bad("")
	bad("  ")
	bad("http://a,,http://b")
	bad("http://a,")
	bad("127.0.0.1:8000")
	bad("ftp://a")
	bad("http://")
	bad("http://:80")
	bad("http://u:p@a")
	bad("http://a/?q=1")
	bad("http://a/#f")
	bad("http://a:99999999")

	// Options, after the URL.
	ok("http://a:1 models=m1|org/m-2:q4 ,https://b", "http://a:1 models=m1|org/m-2:q4", "https://b")
	ok("http://a\tmodels=m", "http://a\tmodels=m")
	badErr := func(in, want string) {
		t.Helper()
		_, err := ParseUpstreams(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseUpstreams(%q) = %v, want an error with %q", in, err, want)
		}
	}
	badErr("http://a models=", "empty model id")
	badErr("http://a models=x||y", "empty model id")
	badErr("http://a models=x|", "empty model id")
	badErr("http://a models=x|y|x", `model "x" listed twice`)
	badErr("http://a models=x models=y", "models given twice")
	badErr("http://a weight=2", `unknown option "weight"`)
	ok("http://a stream-options=off models=m", "http://a stream-options=off models=m")
	ok("http://a stream-options=on", "http://a stream-options=on")
	badErr("http://a stream-options=no", "want off or on")
	badErr("http://a stream-options=off stream-options=on", "stream-options given twice")
	if it, err := ParseItem("http://a stream-options=off"); err != nil || !it.NoStreamOptions {
		t.Errorf("stream-options=off: %+v, %v", it, err)
	}
	badErr("http://a models", "not name=value")
	badErr("http://a, http://b sk-secret-0123456789", "upstream 2 of 2")
	badErr("http://a models=x\x01y", "control character")
	badErr("http://a models="+strings.Repeat("m", MaxModelID+1), "over 256 bytes")
	for _, in := range []string{"http://a sk-secret-0123456789", "http://a Sk-Secret=0123456789", "http://a models"} {
		if _, err := ParseUpstreams(in); err == nil || strings.Contains(err.Error(), "ecret") {
			t.Errorf("ParseUpstreams(%q): %v, want an error not showing the option", in, err)
		}
	}
}

func TestParseAliases(t *testing.T) {
	ok := func(in string, want ...string) {
		t.Helper()
		m, err := ParseAliases(in)
		var got []string
		for k, v := range m {
			got = append(got, k+"="+v)
		}
		slices.Sort(got)
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("ParseAliases(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := func(in, want string) {
		t.Helper()
		m, err := ParseAliases(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAliases(%q) = %v, %v; want an error with %q", in, m, err, want)
		}
	}
	ok("")
	ok("  ")
	ok("gpt-4o-mini=Qwen2.5-7B-Instruct, gpt-4o = llama-3-70b", "gpt-4o-mini=Qwen2.5-7B-Instruct", "gpt-4o=llama-3-70b")
	ok("a=org/m:latest", "a=org/m:latest")
	bad("a=b,,c=d", "alias 2 of 3: want alias=model")
	bad("a", "want alias=model")
	bad("=b", "empty model id")
	bad("a=", "empty model id")
	bad("a=b,a=c", `"a" given twice`)
	bad("a=a", "names itself")
	bad("a=b,b=c", "itself an alias")
	bad("a b=c", "space")
	bad("a=b|c", "holds one of")
}
