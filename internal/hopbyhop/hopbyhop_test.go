package hopbyhop

import (
	"strings"
	"testing"
)

func TestForEachToken(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		var got []string
		forEachToken([]byte(in), func(b []byte) { got = append(got, string(b)) })
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("forEachToken(%q) = %q, want %q", in, got, want)
		}
	}
	f("")
	f("close", "close")
	f(" keep-alive , X-Foo,,X-Bar ", "keep-alive", "X-Foo", "X-Bar")
}
