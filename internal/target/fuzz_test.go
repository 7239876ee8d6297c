package target

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzCheckTarget: Check never panics; a target it lets through is
// in origin form, and its path, with every encoded dot and separator
// decoded and "\" read as "/", has no "." or ".." segment, which a simple
// reference decides; and it refuses only such paths, or targets that are
// not paths.
func FuzzCheckTarget(f *testing.F) {
	for _, s := range []string{
		"/v1/models", "/v1/models/Qwen2.5-7B?x=/../y", "http://x/v1/models", "HTTPS://x", "http://x?a",
		"*", "x:443", "/base/../admin", "/v1/%2e%2E/x", "/v1/..%2fx", `/a/..\b`, "/a/.%2E", "/...", "/%2", "/.%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		var req fasthttp.Request
		req.Header.SetRequestURI(target)
		got := req.Header.RequestURI() // fasthttp may not keep it byte for byte
		in := string(got)
		refused := Check(&req) != nil
		out := string(req.Header.RequestURI())
		origin := strings.HasPrefix(in, "/")
		if !origin {
			lower := strings.ToLower(in)
			if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
				if !refused {
					t.Fatalf("%q: not a path, let through as %q", in, out)
				}
				return
			}
		}
		if !strings.HasPrefix(out, "/") {
			t.Fatalf("%q: let through as %q, not in origin form", in, out)
		}
		if refused != referenceDotSegment(out) {
			t.Fatalf("%q (as %q): refused %v, reference says a dot segment %v", in, out, refused, !refused)
		}
	})
}

// referenceDotSegment is hasDotSegment written plainly.
func referenceDotSegment(target string) bool {
	path, _, _ := strings.Cut(target, "?")
	path, _, _ = strings.Cut(path, "#")
	r := strings.NewReplacer("%2e", ".", "%2E", ".", "%2f", "/", "%2F", "/", "%5c", "/", "%5C", "/", `\`, "/")
	for _, seg := range strings.Split(r.Replace(path), "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
