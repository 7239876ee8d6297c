package auth

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMatchModel(t *testing.T) {
	f := func(pattern, model string, want bool) {
		t.Helper()
		if got := MatchModel(pattern, model); got != want {
			t.Errorf("MatchModel(%q, %q) = %v, want %v", pattern, model, got, want)
		}
	}
	f("llama-3*", "llama-3-8b", true)
	f("llama-3*", "llama-3", true)
	f("llama-3*", "llama-2-7b", false)
	f("qwen2.5-7b-instruct", "qwen2.5-7b-instruct", true)
	f("qwen2.5-7b-instruct", "Qwen2.5-7B-Instruct", false) // case-sensitive
	f("qwen2.5-7b-instruct", "qwen2.5-7b-instruct-lora", false)
	f("*", "", true)
	f("*", "meta-llama/Llama-3.1-8B", true)
	f("meta-llama/*", "meta-llama/Llama-3.1-8B", true)
	f("*/Llama-3.1-8B", "meta-llama/Llama-3.1-8B", true)
	f("a?c", "abc", true)
	f("a?c", "ac", false)
	f("*a*b*c*", "xxaxxbxxcxx", true)
	f("*a*b*c*", "xxaxxcxxbxx", false)
	f("", "", true)
	f("", "x", false)
	f("[ab]", "a", false) // no classes: '[' is itself
	f("[ab]", "[ab]", true)
}

// TestMatchModelAgainstRegexp checks MatchModel against the same glob
// written as a regular expression, over a grid of patterns and models.
func TestMatchModelAgainstRegexp(t *testing.T) {
	alphabet := []string{"a", "b", "/", "*", "?"}
	var patterns []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		patterns = append(patterns, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+c, n-1)
		}
	}
	gen("", 4)
	models := []string{"", "a", "b", "ab", "ba", "a/b", "aab", "abab", "/", "bba/"}
	for _, p := range patterns {
		var re strings.Builder
		re.WriteString("^")
		for _, c := range p {
			switch c {
			case '*':
				re.WriteString("(?s:.*)")
			case '?':
				re.WriteString("(?s:.)")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		rx := regexp.MustCompile(re.String())
		for _, m := range models {
			if got, want := MatchModel(p, m), rx.MatchString(m); got != want {
				t.Fatalf("MatchModel(%q, %q) = %v, regexp says %v", p, m, got, want)
			}
		}
	}
}

func TestModelsAndExpiresSettings(t *testing.T) {
	const key = "sk-0123456789abcdef"
	ok := func(line string, want Settings) {
		t.Helper()
		e, _, err := ParseLine([]byte("alice:"+key+" "+line), 1)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if e.Settings != want {
			t.Fatalf("%q: settings %+v, want %+v", line, e.Settings, want)
		}
	}
	bad := func(line, why string) {
		t.Helper()
		_, _, err := ParseLine([]byte("alice:"+key+" "+line), 1)
		if !errors.Is(err, ErrBadSetting) || !strings.Contains(err.Error(), why) {
			t.Fatalf("%q: %v, want ErrBadSetting saying %q", line, err, why)
		}
		if strings.Contains(err.Error(), key) {
			t.Fatalf("%q: the error shows the key: %v", line, err)
		}
	}
	ok("models=llama-3*,qwen2.5-7b-instruct", Settings{Models: "llama-3*,qwen2.5-7b-instruct"})
	ok("rpm=5 models=*", Settings{RPM: 5, Models: "*"})
	ok("expires=2026-12-31", Settings{Expires: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)})
	ok("expires=2026-12-31T10:00:00+02:00", Settings{Expires: time.Date(2026, 12, 31, 8, 0, 0, 0, time.UTC)})
	bad("models=", "one or more")
	bad("models=a,,b", "empty pattern")
	bad("models=a,", "empty pattern")
	bad("models="+strings.Repeat("a,", MaxModelPatterns)+"a", "more than")
	bad("models="+strings.Repeat("x", MaxModelPatternLen+1), "over")
	bad("models=a models=b", "given twice")
	bad("expires=tomorrow", "RFC 3339")
	bad("expires=2026-13-01", "RFC 3339")
	bad("colour=red", "known: rpm, models, expires")

	s := Settings{Expires: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}
	if s.Expired(s.Expires.Add(-time.Nanosecond)) || !s.Expired(s.Expires) || (Settings{}).Expired(time.Now()) {
		t.Fatal("Expired: wrong at the edge, or a key without expires= expired")
	}
	if got := (Settings{Models: "a*,b"}).ModelPatterns(); len(got) != 2 || got[0] != "a*" || got[1] != "b" {
		t.Fatalf("ModelPatterns = %q", got)
	}
}

func BenchmarkMatchModel(b *testing.B) {
	patterns := []string{"llama-3*", "qwen2.5-*-instruct", "mistral-7b"}
	b.ReportAllocs()
	for b.Loop() {
		if !MatchAnyModel(patterns, "qwen2.5-7b-instruct") {
			b.Fatal("no match")
		}
	}
}
