package logsink

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fixedTime is 2026-11-27T06:30:22.123456789Z.
var fixedTime = time.Date(2026, 11, 27, 6, 30, 22, 123456789, time.UTC)

func TestParseFormat(t *testing.T) {
	f := func(s string, want Format) {
		t.Helper()
		got, err := ParseFormat(s)
		if err != nil {
			t.Fatalf("ParseFormat(%q): %v", s, err)
		}
		if got != want {
			t.Fatalf("ParseFormat(%q) = %v, want %v", s, got, want)
		}
		if got.String() != s {
			t.Fatalf("%v.String() = %q, want %q", got, got.String(), s)
		}
	}
	f("text", FormatText)
	f("json", FormatJSON)

	bad := func(s string) {
		t.Helper()
		_, err := ParseFormat(s)
		if !errors.Is(err, ErrUnknownFormat) {
			t.Fatalf("ParseFormat(%q) error = %v, want ErrUnknownFormat", s, err)
		}
		if !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Fatalf("ParseFormat(%q) error %q does not name the value", s, err)
		}
	}
	bad("")
	bad("JSON")
	bad("xml")
	bad("text ")

	if got := Format(7).String(); got != "Format(7)" {
		t.Fatalf("Format(7).String() = %q", got)
	}
}

func TestAppendText(t *testing.T) {
	f := func(e Entry, want string) {
		t.Helper()
		got := string(appendText(nil, &e, nil))
		if got != want+"\n" {
			t.Fatalf("appendText:\n got %q\nwant %q", got, want+"\n")
		}
	}
	// The example of docs/operations.md#access-log; nanoseconds are truncated to microseconds.
	f(Entry{Time: fixedTime, KeyID: "alice", Method: []byte("POST"), Path: []byte("/v1/chat/completions"), Status: 200},
		"2026-11-27T06:30:22.123456Z | alice | POST /v1/chat/completions | 200")
	// A non-UTC time is converted to UTC.
	f(Entry{Time: time.Date(2026, 11, 27, 12, 0, 22, 999999999, time.FixedZone("IST", 5*3600+30*60)), KeyID: "bob", Method: []byte("GET"), Path: []byte("/v1/models"), Status: 200},
		"2026-11-27T06:30:22.999999Z | bob | GET /v1/models | 200")
	// Across midnight and a year boundary.
	f(Entry{Time: time.Date(2027, 1, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600)), KeyID: "k", Method: []byte("GET"), Path: []byte("/"), Status: 404},
		"2026-12-31T23:30:00.000000Z | k | GET / | 404")
	// Whole microseconds keep their leading zeros.
	f(Entry{Time: time.Date(2026, 2, 3, 4, 5, 6, 7000, time.UTC), KeyID: "k", Method: []byte("GET"), Path: []byte("/"), Status: 200},
		"2026-02-03T04:05:06.000007Z | k | GET / | 200")
	// No key: "-".
	f(Entry{Time: fixedTime, Method: []byte("POST"), Path: []byte("/v1/completions"), Status: 401},
		"2026-11-27T06:30:22.123456Z | - | POST /v1/completions | 401")
	// The query string is cut.
	f(Entry{Time: fixedTime, KeyID: "alice", Method: []byte("GET"), Path: []byte("/v1/models?api_key=sk-secret&x=1"), Status: 200},
		"2026-11-27T06:30:22.123456Z | alice | GET /v1/models | 200")
	f(Entry{Time: fixedTime, KeyID: "alice", Method: []byte("GET"), Path: []byte("/a?"), Status: 200},
		"2026-11-27T06:30:22.123456Z | alice | GET /a | 200")
	// Empty method and path (also after the cut): "-".
	f(Entry{Time: fixedTime, Path: []byte("?q"), Status: 400},
		"2026-11-27T06:30:22.123456Z | - | - - | 400")
	// A forged line cannot be injected.
	f(Entry{Time: fixedTime, KeyID: "alice", Method: []byte("GET"), Path: []byte("/x | 200\n2026-01-01T00:00:00.000000Z | admin | GET /y"), Status: 404},
		"2026-11-27T06:30:22.123456Z | alice | GET /x%20%7C%20200%0A2026-01-01T00:00:00.000000Z%20%7C%20admin%20%7C%20GET%20/y | 404")
}

// TestStamp: a stamp's timestamps are appendTimestamp's, whatever the
// order of the times it is given: the same second, the next, an earlier
// one, one second apart across a day, a year outside 0–9999 and back.
func TestStamp(t *testing.T) {
	var ts stamp
	f := func(tm time.Time) {
		t.Helper()
		got := string(ts.appendTime([]byte("x"), tm))
		if want := "x" + string(appendTimestamp(nil, tm)); got != want {
			t.Fatalf("stamp at %v: %q, want %q", tm, got, want)
		}
	}
	f(fixedTime)
	f(fixedTime.Add(time.Microsecond))
	f(fixedTime.Add(876 * time.Millisecond)) // still 06:30:22.999…
	f(fixedTime.Add(877 * time.Millisecond)) // 06:30:23.000…
	f(fixedTime)                             // back
	f(time.Date(2026, 11, 27, 23, 59, 59, 999999000, time.UTC))
	f(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))
	f(time.Date(2026, 11, 28, 0, 0, 0, 0, time.FixedZone("X", 3600))) // another zone, same second as UTC's 23:00
	f(time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC))       // before the epoch: Unix() is the floor
	f(time.Date(1969, 12, 31, 23, 59, 58, 999999999, time.UTC))
	f(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) // not cached
	f(time.Date(10000, 1, 1, 0, 0, 0, 1000, time.UTC))
	f(fixedTime)
	f(fixedTime)
	var none *stamp
	if got, want := string(none.appendTime(nil, fixedTime)), "2026-11-27T06:30:22.123456Z"; got != want {
		t.Fatalf("nil stamp: %q, want %q", got, want)
	}
}

func TestAppendTimestampMatchesAppendFormat(t *testing.T) {
	f := func(tm time.Time) {
		t.Helper()
		got := string(appendTimestamp(nil, tm))
		want := tm.UTC().Format(timestampLayout)
		if got != want {
			t.Fatalf("appendTimestamp(%v) = %q, want %q", tm, got, want)
		}
	}
	f(time.Time{})
	f(fixedTime)
	f(time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC))
	f(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC))
	f(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) // falls back to AppendFormat
	f(time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC))    // falls back to AppendFormat
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		f(time.Unix(r.Int64N(1<<35)-1<<34, r.Int64N(1e9)).In(time.FixedZone("", r.IntN(50000)-25000)))
	}

	// The layout itself gives six fraction digits and a literal Z.
	if got := fixedTime.Format(timestampLayout); got != "2026-11-27T06:30:22.123456Z" {
		t.Fatalf("layout gives %q", got)
	}
}

func TestAppendEscaped(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(appendEscaped(nil, in)); got != want {
			t.Fatalf("appendEscaped(%q) = %q, want %q", in, got, want)
		}
		if got := string(appendEscaped(nil, []byte(in))); got != want {
			t.Fatalf("appendEscaped([]byte(%q)) = %q, want %q", in, got, want)
		}
	}
	f("", "")
	f("alice", "alice")
	f("/v1/chat/completions", "/v1/chat/completions")
	f("a-b_c.d~e:f@g!$&'()*+,;=", "a-b_c.d~e:f@g!$&'()*+,;=")
	f("%", "%25")
	f("/v1/a%7Cb", "/v1/a%257Cb") // not the same as an escaped '|'
	f("/v1/a|b", "/v1/a%7Cb")
	f(" ", "%20")
	f("a b", "a%20b")
	f("\n", "%0A")
	f("\r\n", "%0D%0A")
	f("\t", "%09")
	f("\x00", "%00")
	f("\x1f", "%1F")
	f("!", "!")
	f("~", "~")
	f("\x7f", "%7F")
	f("\x80", "%80")
	f("\xff", "%FF")
	f("é", "%C3%A9")
	f("|", "%7C")
	f(`"`, "%22")
	f(`\`, "%5C")
	f(`x"y\z|w`, "x%22y%5Cz%7Cw")
	f("\u2028", "%E2%80%A8") // JSON-safe, and no Unicode line separator either

	// Every byte: escaped exactly when mustEscape says so, and never
	// into anything but [!-~] minus the delimiters, with '%' only as the
	// escape's first byte.
	for c := 0; c < 256; c++ {
		got := string(appendEscaped(nil, []byte{byte(c)}))
		esc := c < 0x21 || c >= 0x7f || c == '|' || c == '"' || c == '\\' || c == '%'
		if esc != (len(got) == 3) || (esc && got[0] != '%') {
			t.Fatalf("byte %#02x escaped as %q", c, got)
		}
		for i := 0; i < len(got); i++ {
			if mustEscape(got[i]) && !(esc && i == 0) {
				t.Fatalf("byte %#02x escaped as %q, which holds %q", c, got, got[i])
			}
		}
	}
}

func TestAppendJSON(t *testing.T) {
	e := Entry{
		Time:      fixedTime,
		KeyID:     "alice",
		Method:    []byte("POST"),
		Path:      []byte("/v1/chat/completions?stream=true"),
		Status:    200,
		Latency:   1234567 * time.Nanosecond,
		BytesIn:   12,
		BytesOut:  345,
		Upstream:  "http://10.0.0.1:8000",
		RequestID: []byte("req-1"),
		Client:    netip.MustParseAddr("203.0.113.5"),
	}
	want := `{"time":"2026-11-27T06:30:22.123456Z","key_id":"alice","method":"POST","path":"/v1/chat/completions","status":200,"latency_ms":1.235,"bytes_in":12,"bytes_out":345,"upstream":"http://10.0.0.1:8000","request_id":"req-1","client":"203.0.113.5","model":"","prompt_tokens":null,"completion_tokens":null,"usage_estimated":null}` + "\n"
	if got := string(appendJSON(nil, &e, nil)); got != want {
		t.Fatalf("appendJSON:\n got %s\nwant %s", got, want)
	}
	e.Model, e.Metered, e.PromptTokens, e.CompletionTokens = []byte("qwen"), true, 17, 5
	want = strings.Replace(want, `"model":"","prompt_tokens":null,"completion_tokens":null,"usage_estimated":null`, `"model":"qwen","prompt_tokens":17,"completion_tokens":5,"usage_estimated":false`, 1)
	if got := string(appendJSON(nil, &e, nil)); got != want {
		t.Fatalf("appendJSON, metered:\n got %s\nwant %s", got, want)
	}
	// The text line has no client.
	if got, want := string(appendText(nil, &e, nil)), "2026-11-27T06:30:22.123456Z | alice | POST /v1/chat/completions | 200\n"; got != want {
		t.Fatalf("appendText:\n got %q\nwant %q", got, want)
	}

	want = `{"time":"2026-11-27T06:30:22.123456Z","key_id":"-","method":"-","path":"-","status":0,"latency_ms":0.000,"bytes_in":0,"bytes_out":0,"upstream":"","request_id":"","client":"","model":"","prompt_tokens":null,"completion_tokens":null,"usage_estimated":null}` + "\n"
	if got := string(appendJSON(nil, &Entry{Time: fixedTime}, nil)); got != want {
		t.Fatalf("appendJSON of an empty entry:\n got %s\nwant %s", got, want)
	}
}

// jsonLine is what a FormatJSON line decodes into.
type jsonLine struct {
	Time      string  `json:"time"`
	KeyID     string  `json:"key_id"`
	Method    string  `json:"method"`
	Path      string  `json:"path"`
	Status    int     `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	BytesIn   int64   `json:"bytes_in"`
	BytesOut  int64   `json:"bytes_out"`
	Upstream  string  `json:"upstream"`
	RequestID string  `json:"request_id"`
	Client    string  `json:"client"`
	Model     string  `json:"model"`
	// Token counts: null (nil) when the request was not metered.
	PromptTokens     *int64 `json:"prompt_tokens"`
	CompletionTokens *int64 `json:"completion_tokens"`
	UsageEstimated   *bool  `json:"usage_estimated"`
}

// checkJSONLine asserts that line is one newline-terminated JSON object
// holding exactly the fields of jsonLine, and returns it decoded.
func checkJSONLine(t testing.TB, line []byte) jsonLine {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("not one line: %q", line)
	}
	var fields map[string]any
	if err := json.Unmarshal(line, &fields); err != nil {
		t.Fatalf("line %q does not parse: %v", line, err)
	}
	if len(fields) != 15 {
		t.Fatalf("line %q has %d fields, want 15", line, len(fields))
	}
	var v jsonLine
	if err := json.Unmarshal(line, &v); err != nil {
		t.Fatalf("line %q does not parse: %v", line, err)
	}
	return v
}

func TestAppendJSONHostile(t *testing.T) {
	f := func(keyID, method, path, upstream, requestID string) {
		t.Helper()
		e := Entry{Time: fixedTime, KeyID: keyID, Method: []byte(method), Path: []byte(path), Status: 200, Latency: -time.Millisecond, BytesIn: -1, BytesOut: 1 << 62, Upstream: upstream, RequestID: []byte(requestID)}
		v := checkJSONLine(t, appendJSON(nil, &e, nil))
		if v.Time != "2026-11-27T06:30:22.123456Z" || v.Status != 200 || v.LatencyMS != -1 || v.BytesIn != -1 || v.BytesOut != 1<<62 {
			t.Fatalf("decoded %+v", v)
		}
		if want := string(appendEscaped(nil, requestID)); v.RequestID != want {
			t.Fatalf("request_id = %q, want %q", v.RequestID, want)
		}
	}
	f("alice", "GET", "/", "", "")
	f(`a","key_id":"admin`, `G"E\T`, `/"}`+"\n"+`{"x":1`, `\u0000`, "\x00\x01\xff")
	f("\xed\xa0\x80", "\xc3", "/\u2028\u2029", "\\", `"`)
	f("|||", "\r\n", "/%22", "\t", "\x7f")
}

// TestAppendAddr: the client is written in its usual form, IPv6
// compressed and lower case, an IPv4-mapped address as such, and a zone
// escaped, so that no address can forge a field.
func TestAppendAddr(t *testing.T) {
	f := func(ip netip.Addr, want string) {
		t.Helper()
		if got := string(appendAddr(nil, ip)); got != want {
			t.Errorf("appendAddr(%#v) = %q, want %q", ip, got, want)
		}
		v := checkJSONLine(t, appendJSON(nil, &Entry{Time: fixedTime, Client: ip}, nil))
		if v.Client != want {
			t.Errorf("JSON client %q, want %q", v.Client, want)
		}
	}
	f(netip.Addr{}, "")
	f(netip.MustParseAddr("192.0.2.1"), "192.0.2.1")
	f(netip.MustParseAddr("2001:DB8:0:0::1"), "2001:db8::1")
	f(netip.MustParseAddr("::ffff:192.0.2.1"), "::ffff:192.0.2.1")
	f(netip.MustParseAddr("fe80::1").WithZone("eth0"), "fe80::1%eth0")
	f(netip.MustParseAddr("fe80::1").WithZone(`a","key_id":"x`+"\n"), "fe80::1%a%22,%22key_id%22:%22x%0A")
}

func TestEntryZeroTimeIsNow(t *testing.T) {
	before := time.Now().UTC().Truncate(time.Microsecond)
	line := string(appendText(nil, &Entry{Status: 200}, nil))
	after := time.Now().UTC()
	ts, err := time.Parse(time.RFC3339Nano, line[:len("2006-01-02T15:04:05.000000Z")])
	if err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	if ts.Before(before) || ts.After(after) {
		t.Fatalf("timestamp %v outside [%v, %v]", ts, before, after)
	}
}

// TestAppendDigits: every width, against fmt's zero padding, at the edges
// and at random.
func TestAppendDigits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	limit := 1
	for width := 1; width <= 8; width++ {
		limit *= 10
		for _, n := range []int{0, 1, 9, 10, 99, limit / 10, limit - 1, r.IntN(limit), r.IntN(limit), r.IntN(limit)} {
			if n >= limit {
				continue
			}
			got := string(appendDigits([]byte("x"), n, width))
			if want := fmt.Sprintf("x%0*d", width, n); got != want {
				t.Fatalf("appendDigits(%d, %d) = %q, want %q", n, width, got, want)
			}
		}
	}
}

// TestAppendStatus: three digits for an HTTP status, strconv's decimal for
// anything else a caller may pass.
func TestAppendStatus(t *testing.T) {
	for _, n := range []int{100, 101, 200, 204, 401, 429, 499, 500, 503, 599, 999, 0, 7, 99, 1000, 12345, -1, -404} {
		got := string(appendStatus([]byte("x"), n))
		if want := "x" + strconv.Itoa(n); got != want {
			t.Fatalf("appendStatus(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestAppendMicrosZ: every microsecond value, against fmt.
func TestAppendMicrosZ(t *testing.T) {
	buf := make([]byte, 0, 16)
	for us := range 1_000_000 {
		buf = appendMicrosZ(buf[:0], us)
		if len(buf) != 7 || buf[6] != 'Z' || string(buf[:6]) != fmt.Sprintf("%06d", us) {
			t.Fatalf("appendMicrosZ(%d) = %q", us, buf)
		}
	}
}
