package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Model access and expiry settings (docs/keys-file.md#settings).
const (
	// MaxModelPatterns is the most patterns a models= setting may hold.
	MaxModelPatterns = 64
	// MaxModelPatternLen is the longest pattern, in bytes.
	MaxModelPatternLen = 256
)

// validModels checks a models= value: 1 to MaxModelPatterns
// comma-separated patterns, each 1 to MaxModelPatternLen printable ASCII
// bytes other than whitespace and ','. The errors never show the value:
// a line's settings sit next to its key.
func validModels(v string) error {
	if v == "" {
		return errors.New("want one or more model patterns separated by ','")
	}
	n := 0
	for p := range strings.SplitSeq(v, ",") {
		n++
		switch {
		case n > MaxModelPatterns:
			return fmt.Errorf("more than %d patterns", MaxModelPatterns)
		case p == "":
			return errors.New("an empty pattern (two ',' in a row, or one at an end)")
		case len(p) > MaxModelPatternLen:
			return fmt.Errorf("a pattern over %d bytes", MaxModelPatternLen)
		}
		for i := 0; i < len(p); i++ {
			if c := p[i]; c <= ' ' || c >= 0x7f {
				return errors.New("a pattern with a byte other than printable ASCII")
			}
		}
	}
	return nil
}

// MatchModel reports whether model matches pattern, a shell-style glob
// in which '*' matches any run of bytes ('/' included: model ids such as
// "meta-llama/Llama-3.1-8B" contain them), '?' any one byte, and every
// other byte itself; the match is case-sensitive, as model ids are. It
// does not allocate.
func MatchModel(pattern, model string) bool {
	// The classic linear glob: on a mismatch, go back to the last '*' and
	// let it swallow one byte more.
	p, m := 0, 0
	star, mark := -1, 0
	for m < len(model) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == model[m]):
			p++
			m++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, m
			p++
		case star >= 0:
			p = star + 1
			mark++
			m = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// MatchAnyModel reports whether model matches one of patterns; no patterns
// means every model.
func MatchAnyModel(patterns []string, model string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if MatchModel(p, model) {
			return true
		}
	}
	return false
}

// parseExpires parses an expires= value: an RFC 3339 instant, or a date
// YYYY-MM-DD meaning that day's UTC midnight. The result is in UTC, in
// whole seconds.
func parseExpires(v string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, errors.New("want an RFC 3339 instant (2026-12-31T23:59:59Z) or a date (2026-12-31)")
	}
	return t.UTC().Truncate(time.Second), nil
}
