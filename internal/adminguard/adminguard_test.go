package adminguard

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestHostAllowed checks the admin listener's Host check on its own,
// including Hosts that fasthttp's server refuses before any handler.
func TestHostAllowed(t *testing.T) {
	f := func(host string, want bool) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetHost(host)
		if got := HostAllowed(&ctx); got != want {
			t.Errorf("HostAllowed(Host %q) = %v, want %v", host, got, want)
		}
	}
	for _, h := range []string{"localhost", "LOCALHOST:1", "localhost:", "127.0.0.1", "127.0.0.1:9090",
		"192.0.2.1:80", "[::1]", "[::1]:9090", "[2001:db8::1]:1", "[::ffff:127.0.0.1]:9090", "0.0.0.0:9090"} {
		f(h, true)
	}
	for _, h := range []string{"evil.example", "evil.example:9090", "localhost.", "localhost.:9090", "a.localhost",
		"localhost:x", "localhost:9090:1", "127.0.0.1:-1", "127.0.0.1:9090 ", " 127.0.0.1", "127.1", "0x7f000001",
		"::1", "[::1", "[::1]x", "[::1]:9x", "[127.0.0.1]", "[evil.example]:1", "[]", ":9090", "evil.example@127.0.0.1",
		"127.0.0.1%2f", "1.2.3.4.5"} {
		f(h, false)
	}
	// No Host: allowed only on a loopback connection, which a bare ctx is not.
	f("", false)
}

func TestBearerToken(t *testing.T) {
	f := func(h, want string, wantOK bool) {
		t.Helper()
		tok, ok := bearerToken([]byte(h))
		if string(tok) != want || ok != wantOK {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", h, tok, ok, want, wantOK)
		}
	}
	f("Bearer abc", "abc", true)
	f("bearer\tabc ", "abc", true)
	f("  BEARER   abc", "abc", true)
	f("Bearer a b", "a b", true) // compared whole against the token, so refused
	f("", "", false)
	f("Bearer", "", false)
	f("Bearer   ", "", false)
	f("Bearerabc", "", false)
	f("abc", "", false)
	f("Basic abc", "", false)
}
