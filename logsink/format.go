package logsink

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Format selects how a Sink writes its lines. The zero value is FormatText.
type Format uint8

const (
	// FormatText writes the line of docs/operations.md#access-log:
	// "TIMESTAMP | KEY_ID | METHOD PATH | STATUS".
	FormatText Format = iota
	// FormatJSON writes one JSON object a line with the fields time, key_id,
	// method, path, status, latency_ms, bytes_in, bytes_out, upstream,
	// request_id and client.
	FormatJSON
)

// ParseFormat returns the Format named s: "text" or "json" (lower case, as
// ACCESS_LOG_FORMAT takes them). Any other value is an error wrapping
// ErrUnknownFormat that names the value.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "text":
		return FormatText, nil
	case "json":
		return FormatJSON, nil
	}
	return 0, fmt.Errorf("%w %q (want \"text\" or \"json\")", ErrUnknownFormat, s)
}

// String returns the name ParseFormat accepts for f, or "Format(N)" for a
// value that is neither FormatText nor FormatJSON.
func (f Format) String() string {
	switch f {
	case FormatText:
		return "text"
	case FormatJSON:
		return "json"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// valid reports whether f is FormatText or FormatJSON.
func (f Format) valid() bool { return f == FormatText || f == FormatJSON }

// Entry is one access-log record. Sink.Write copies everything it needs
// before it returns, so the byte slices may point into memory the caller
// reuses afterwards (a fasthttp request, for instance).
type Entry struct {
	// Time is when the request arrived. It is written in UTC, as RFC 3339
	// with microseconds (truncated): 2026-11-27T06:30:22.123456Z. The zero
	// Time means time.Now().
	Time time.Time
	// KeyID is the authenticated key_id; empty is written as "-"
	// (unauthenticated).
	KeyID string
	// Method is the request method; empty is written as "-".
	Method []byte
	// Path is the request path. Everything from the first '?' on is cut
	// off, so a full request URI may be passed; an empty path is written as
	// "-".
	Path []byte
	// Status is the response status code.
	Status int

	// The fields below are written by FormatJSON only.

	// Latency is the time from the request's arrival to the end of its
	// response, written as latency_ms with three decimals.
	Latency time.Duration
	// BytesIn is the size of the request body.
	BytesIn int64
	// BytesOut is the size of the response body.
	BytesOut int64
	// Upstream is the base URL of the upstream that served the request;
	// empty when none did.
	Upstream string
	// RequestID is the request's X-Request-Id; may be empty.
	RequestID []byte
	// Client is the address of the client the request came from: the
	// connection's peer, or the client a trusted proxy forwarded for (see
	// server.Config.TrustedProxies). Written as client ("1.2.3.4",
	// "2001:db8::1"); the zero Addr is written as "".
	Client netip.Addr
	// Model is the model the request named, as the client named it (an
	// alias, not its target); empty when it named none or the gateway did
	// not look (docs/http.md#model-routing). Written as model, escaped.
	Model []byte
	// Metered reports that the upstream's token usage was read
	// (docs/http.md#token-metering): PromptTokens and CompletionTokens,
	// and UsageEstimated when they were counted rather than reported.
	// Written as prompt_tokens, completion_tokens and usage_estimated,
	// null when not metered.
	Metered          bool
	PromptTokens     int64
	CompletionTokens int64
	UsageEstimated   bool
}

// timestampLayout is the time.Layout equivalent of appendTimestamp.
const timestampLayout = "2006-01-02T15:04:05.000000Z"

// appendTimestamp appends t in UTC as "2006-01-02T15:04:05.000000Z",
// microseconds truncated. It is time.AppendFormat with timestampLayout,
// about twice as fast.
func appendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, timestampLayout)
	}
	hour, minute, sec := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	return appendMicrosZ(dst, t.Nanosecond()/1000)
}

// stamp remembers the part of a timestamp that changes once a second,
// "2006-01-02T15:04:05.", for the second it was last computed for, so that
// the lines of one second need only their microseconds formatted. The
// zero value holds nothing; a stamp is used by one goroutine at a time (a
// Sink keeps one with each pooled line buffer).
type stamp struct {
	sec    int64 // the Unix second of prefix
	ok     bool  // prefix holds sec's
	prefix [20]byte
}

// appendTime is appendTimestamp(dst, t), reusing the previous call's
// second when t falls in it. A nil stamp computes every timestamp whole.
func (s *stamp) appendTime(dst []byte, t time.Time) []byte {
	if s == nil {
		return appendTimestamp(dst, t)
	}
	sec := t.Unix() // the floor: t's nanoseconds are never negative
	if !s.ok || sec != s.sec {
		start := len(dst)
		dst = appendTimestamp(dst, t)
		if len(dst)-start != len(timestampLayout) { // a year outside 0–9999
			s.ok = false
			return dst
		}
		copy(s.prefix[:], dst[start:])
		s.sec, s.ok = sec, true
		return dst
	}
	dst = append(dst, s.prefix[:]...)
	return appendMicrosZ(dst, t.Nanosecond()/1000)
}

// appendMicrosZ appends the microseconds us (below 10^6) as six digits
// and a 'Z': the end of every timestamp, written byte by byte so that it
// needs no call to copy.
func appendMicrosZ(dst []byte, us int) []byte {
	a, b, c := 2*(us/10000), 2*(us/100%100), 2*(us%100)
	return append(dst, digitPairs[a], digitPairs[a+1], digitPairs[b], digitPairs[b+1], digitPairs[c], digitPairs[c+1], 'Z')
}

// appendDigits appends the non-negative n as exactly width decimal digits,
// zero-padded on the left; n must be below 10^width, and width at most 8.
func appendDigits(dst []byte, n, width int) []byte {
	var buf [8]byte
	i := width
	for i >= 2 {
		i -= 2
		q := n / 100
		d := (n - q*100) * 2
		buf[i], buf[i+1] = digitPairs[d], digitPairs[d+1]
		n = q
	}
	if i == 1 {
		buf[0] = byte('0' + n)
	}
	return append(dst, buf[:width]...)
}

// digitPairs holds "00" to "99", for appendDigits and appendStatus.
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// appendStatus appends the status code n in decimal: three digits for an
// HTTP status, strconv's for anything else.
func appendStatus(dst []byte, n int) []byte {
	if n < 100 || n > 999 {
		return strconv.AppendInt(dst, int64(n), 10)
	}
	d := 2 * (n % 100)
	return append(dst, byte('0'+n/100), digitPairs[d], digitPairs[d+1])
}

// mustEscape reports whether c is written percent-encoded: control
// characters, space, DEL, non-ASCII bytes, the field delimiters '|', '"'
// and '\', and '%' itself: an escaped '|' is "%7C", and a client's own
// "%7C" is "%257C", so that the line can be decoded back unambiguously.
func mustEscape(c byte) bool {
	return c < 0x21 || c >= 0x7f || c == '|' || c == '"' || c == '\\' || c == '%'
}

// escapeTable is mustEscape for every byte: one load a byte instead of
// five comparisons.
var escapeTable = func() (t [256]bool) {
	for c := range t {
		t[c] = mustEscape(byte(c))
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

// appendEscaped appends src with every byte for which mustEscape reports
// true written as %XX.
func appendEscaped[T string | []byte](dst []byte, src T) []byte {
	start := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		if !escapeTable[c] {
			continue
		}
		dst = append(dst, src[start:i]...)
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&0xf])
		start = i + 1
	}
	return append(dst, src[start:]...)
}

// appendField appends src escaped, or "-" when src is empty.
func appendField[T string | []byte](dst []byte, src T) []byte {
	if len(src) == 0 {
		return append(dst, '-')
	}
	return appendEscaped(dst, src)
}

// cutQuery returns path up to its first '?'.
func cutQuery(path []byte) []byte {
	for i, c := range path {
		if c == '?' {
			return path[:i]
		}
	}
	return path
}

// entryTime returns e.Time, or now when it is zero.
func entryTime(e *Entry) time.Time {
	if e.Time.IsZero() {
		return time.Now()
	}
	return e.Time
}

// appendText appends e as a FormatText line, newline included; ts may be
// nil (see stamp).
func appendText(dst []byte, e *Entry, ts *stamp) []byte {
	dst = ts.appendTime(dst, entryTime(e))
	dst = append(dst, " | "...)
	dst = appendField(dst, e.KeyID)
	dst = append(dst, " | "...)
	dst = appendField(dst, e.Method)
	dst = append(dst, ' ')
	dst = appendField(dst, cutQuery(e.Path))
	dst = append(dst, " | "...)
	dst = appendStatus(dst, e.Status)
	return append(dst, '\n')
}

// appendJSON appends e as a FormatJSON line, newline included. No string
// needs JSON escaping: appendEscaped has already encoded '"', '\' and every
// control and non-ASCII byte. ts may be nil (see stamp).
func appendJSON(dst []byte, e *Entry, ts *stamp) []byte {
	dst = append(dst, `{"time":"`...)
	dst = ts.appendTime(dst, entryTime(e))
	dst = append(dst, `","key_id":"`...)
	dst = appendField(dst, e.KeyID)
	dst = append(dst, `","method":"`...)
	dst = appendField(dst, e.Method)
	dst = append(dst, `","path":"`...)
	dst = appendField(dst, cutQuery(e.Path))
	dst = append(dst, `","status":`...)
	dst = appendStatus(dst, e.Status)
	dst = append(dst, `,"latency_ms":`...)
	dst = strconv.AppendFloat(dst, float64(e.Latency)/float64(time.Millisecond), 'f', 3, 64)
	dst = append(dst, `,"bytes_in":`...)
	dst = strconv.AppendInt(dst, e.BytesIn, 10)
	dst = append(dst, `,"bytes_out":`...)
	dst = strconv.AppendInt(dst, e.BytesOut, 10)
	dst = append(dst, `,"upstream":"`...)
	dst = appendEscaped(dst, e.Upstream)
	dst = append(dst, `","request_id":"`...)
	dst = appendEscaped(dst, e.RequestID)
	dst = append(dst, `","client":"`...)
	dst = appendAddr(dst, e.Client)
	dst = append(dst, `","model":"`...)
	dst = appendEscaped(dst, e.Model)
	if !e.Metered {
		return append(dst, `","prompt_tokens":null,"completion_tokens":null,"usage_estimated":null}`+"\n"...)
	}
	dst = append(dst, `","prompt_tokens":`...)
	dst = strconv.AppendInt(dst, e.PromptTokens, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, e.CompletionTokens, 10)
	dst = append(dst, `,"usage_estimated":`...)
	dst = strconv.AppendBool(dst, e.UsageEstimated)
	return append(dst, "}\n"...)
}

// appendAddr appends ip in its usual form, "" for the zero Addr, with
// any zone escaped as appendEscaped does.
func appendAddr(dst []byte, ip netip.Addr) []byte {
	if !ip.IsValid() {
		return dst
	}
	if z := ip.Zone(); z != "" {
		dst = ip.WithZone("").AppendTo(dst)
		dst = append(dst, '%')
		return appendEscaped(dst, z)
	}
	return ip.AppendTo(dst)
}

// appendLine appends e in format f, newline included; ts may be nil (see
// stamp).
func appendLine(dst []byte, f Format, e *Entry, ts *stamp) []byte {
	if f == FormatJSON {
		return appendJSON(dst, e, ts)
	}
	return appendText(dst, e, ts)
}
