package auth

import "strconv"

// Reason is the outcome of authenticating a request; every value but
// ReasonOK rejects it with 401 and the body of docs/http.md#authentication, whose message is
// [Reason.Message].
type Reason uint8

// The outcomes of authentication, in the order the checks run.
const (
	// ReasonOK: the header holds a well-formed key. After a successful
	// [KeySet.Lookup] the request is authenticated.
	ReasonOK Reason = iota
	// ReasonMissing: no Authorization header, or one with only whitespace.
	ReasonMissing
	// ReasonEmpty: "Bearer" followed by nothing but whitespace.
	ReasonEmpty
	// ReasonBadFormat: the key is not 16 to 128 bytes of [A-Za-z0-9_-].
	ReasonBadFormat
	// ReasonUnknown: a well-formed key that the key set does not hold. It
	// is never returned by [ParseAuthorization]; the caller sets it when
	// [KeySet.Lookup] returns nil.
	ReasonUnknown
)

// Message returns the client-facing error message (docs/http.md#authentication) for r: empty
// for ReasonOK, and "Invalid API key" for values outside the constants.
func (r Reason) Message() string {
	switch r {
	case ReasonOK:
		return ""
	case ReasonMissing:
		return "Missing Authorization header"
	case ReasonEmpty:
		return "Empty Authorization header"
	case ReasonBadFormat:
		return "Invalid API key format"
	default:
		return "Invalid API key"
	}
}

// String returns a short label for r, fit for a metric label or a log
// field: "ok", "missing", "empty", "bad_format" or "unknown".
func (r Reason) String() string {
	switch r {
	case ReasonOK:
		return "ok"
	case ReasonMissing:
		return "missing"
	case ReasonEmpty:
		return "empty"
	case ReasonBadFormat:
		return "bad_format"
	case ReasonUnknown:
		return "unknown"
	default:
		return "Reason(" + strconv.Itoa(int(r)) + ")"
	}
}

// ParseAuthorization extracts the API key from the value h of an
// Authorization header (nil or empty when the header is absent), following
// docs/http.md#authentication:
//
//   - spaces and tabs around h are ignored; nothing left: ReasonMissing;
//   - if h starts with "bearer" in any case, followed by a space, a tab or
//     the end of h, the key is what follows, trimmed; nothing left:
//     ReasonEmpty. "Bearer" needs no trailing whitespace because fasthttp
//     trims it off header values, so "Bearer " arrives as "Bearer";
//   - otherwise the whole trimmed value is the key (the seed accepts a bare
//     key), so "Bearerxyz…" is the bare key "Bearerxyz…";
//   - a key that is not [ValidKey]: ReasonBadFormat.
//
// On ReasonOK, key is a subslice of h, valid as long as h is (for a
// fasthttp header, until the request is released; copy it to keep it). On
// any other Reason, key is nil. It does not allocate.
func ParseAuthorization(h []byte) (key []byte, r Reason) {
	v := trimOWS(h)
	if len(v) == 0 {
		return nil, ReasonMissing
	}
	if len(v) >= len("bearer") && isBearer(v) && (len(v) == len("bearer") || isOWS(v[len("bearer")])) {
		v = trimOWS(v[len("bearer"):])
		if len(v) == 0 {
			return nil, ReasonEmpty
		}
	}
	if !ValidKey(v) {
		return nil, ReasonBadFormat
	}
	return v, ReasonOK
}

// isBearer reports whether b starts with "bearer" in any letter case.
func isBearer(b []byte) bool {
	const lower = "bearer"
	for i := 0; i < len(lower); i++ {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// isOWS reports whether c is HTTP optional whitespace: a space or a tab.
func isOWS(c byte) bool {
	return c == ' ' || c == '\t'
}

// trimOWS returns b without leading and trailing spaces and tabs.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
