package mockupstream

import (
	"encoding/json"
	"testing"
)

func TestAppendJSONString(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got := string(appendJSONString([]byte("x"), in))
		if got != "x"+want {
			t.Fatalf("appendJSONString(%q) = %s, want %s", in, got[1:], want)
		}
	}
	f("", `""`)
	f("mock-model", `"mock-model"`)
	f(`a"b\c`, `"a\"b\\c"`)
	f("l1\nl2\r\t", `"l1\nl2\r\t"`)
	f("\x00\x1f\x7f", `"\u0000\u001f`+"\x7f"+`"`)
	f("héllo 世界 🎉", `"héllo 世界 🎉"`)
	f("bad\xffutf8\xc3", `"bad\ufffdutf8\ufffd"`)
	f("</script>&", `"</script>&"`)
}

// FuzzAppendJSONString checks that appendJSONString always produces valid
// JSON that decodes to what encoding/json makes of the same string.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\", "\x00\n\x1f", "é\xff\xfe", "\u2028\u2029", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		var fromOurs string
		if err := json.Unmarshal(got, &fromOurs); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: invalid JSON: %s", s, got, err)
		}
		std, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var fromStd string
		if err := json.Unmarshal(std, &fromStd); err != nil {
			t.Fatal(err)
		}
		if fromOurs != fromStd {
			t.Fatalf("appendJSONString(%q) decodes to %q, encoding/json's to %q", s, fromOurs, fromStd)
		}
	})
}
