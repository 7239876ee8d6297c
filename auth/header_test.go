package auth

import (
	"strings"
	"testing"
)

func TestParseAuthorization(t *testing.T) {
	const key = "sk-test-0123456789abcdef"
	f := func(h string, wantKey string, wantReason Reason) {
		t.Helper()
		key, r := ParseAuthorization([]byte(h))
		if r != wantReason || string(key) != wantKey {
			t.Fatalf("ParseAuthorization(%q) = %q, %v; want %q, %v", h, key, r, wantKey, wantReason)
		}
		if r != ReasonOK && key != nil {
			t.Fatalf("ParseAuthorization(%q): non-nil key with reason %v", h, r)
		}
	}
	// Missing.
	f("", "", ReasonMissing)
	f(" ", "", ReasonMissing)
	f(" \t ", "", ReasonMissing)

	// Empty: Bearer and only whitespace after it, in any case.
	f("Bearer", "", ReasonEmpty)
	f("Bearer ", "", ReasonEmpty)
	f("Bearer   ", "", ReasonEmpty)
	f("bEaReR \t", "", ReasonEmpty)
	f("  BEARER\t", "", ReasonEmpty)
	f("bearer", "", ReasonEmpty)

	// OK.
	f("Bearer "+key, key, ReasonOK)
	f("bearer "+key, key, ReasonOK)
	f("BEARER "+key, key, ReasonOK)
	f("BeArEr "+key, key, ReasonOK)
	f("Bearer\t"+key, key, ReasonOK)
	f("Bearer \t  "+key+" \t", key, ReasonOK)
	f("  Bearer "+key, key, ReasonOK)
	f(key, key, ReasonOK)             // bare key, as in the seed
	f(" \t"+key+"\t ", key, ReasonOK) // bare key, trimmed
	f("Bearer "+strings.Repeat("k", 16), strings.Repeat("k", 16), ReasonOK)
	f("Bearer "+strings.Repeat("k", 128), strings.Repeat("k", 128), ReasonOK)
	// No whitespace after "Bearer": the whole value is a bare key.
	f("Bearer"+key, "Bearer"+key, ReasonOK)
	f("bearerxyz0123456789", "bearerxyz0123456789", ReasonOK)

	// Bad format.
	f("Basic abc", "", ReasonBadFormat)
	f("Basic "+key, "", ReasonBadFormat)
	f("Bearer "+strings.Repeat("k", 15), "", ReasonBadFormat)
	f("Bearer "+strings.Repeat("k", 129), "", ReasonBadFormat)
	f("Bearer "+key+"!", "", ReasonBadFormat)
	f("Bearer "+key+" extra", "", ReasonBadFormat)
	f("Bearer Bearer "+key, "", ReasonBadFormat)
	f("Bearer sk-tést-0123456789abcdef", "", ReasonBadFormat)
	f("Bearer\v"+key, "", ReasonBadFormat) // only space and tab separate
	f("Bearerxyz", "", ReasonBadFormat)
	f("short", "", ReasonBadFormat)
	f("Bear", "", ReasonBadFormat)
	f("Bearer\x00"+key, "", ReasonBadFormat)
}

func TestParseAuthorizationSubslice(t *testing.T) {
	h := []byte("Bearer sk-test-0123456789abcdef")
	key, r := ParseAuthorization(h)
	if r != ReasonOK || &key[0] != &h[7] {
		t.Fatalf("key is not a subslice of the header: %q, %v", key, r)
	}
	if key, r := ParseAuthorization(nil); key != nil || r != ReasonMissing {
		t.Fatalf("ParseAuthorization(nil) = %q, %v; want nil, ReasonMissing", key, r)
	}
}

func TestReason(t *testing.T) {
	f := func(r Reason, message, label string) {
		t.Helper()
		if got := r.Message(); got != message {
			t.Fatalf("Reason(%d).Message() = %q, want %q", r, got, message)
		}
		if got := r.String(); got != label {
			t.Fatalf("Reason(%d).String() = %q, want %q", r, got, label)
		}
	}
	f(ReasonOK, "", "ok")
	f(ReasonMissing, "Missing Authorization header", "missing")
	f(ReasonEmpty, "Empty Authorization header", "empty")
	f(ReasonBadFormat, "Invalid API key format", "bad_format")
	f(ReasonUnknown, "Invalid API key", "unknown")
	f(Reason(200), "Invalid API key", "Reason(200)")
}
