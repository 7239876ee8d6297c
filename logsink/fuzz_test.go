package logsink

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzAppendLine checks that no input can split a line or add a field: a
// text line has exactly four " | "-separated fields, a JSON line parses
// into exactly its eleven fields. The client is made of client's bytes (4
// or 16 of them make an address, any other count none) and zone.
func FuzzAppendLine(f *testing.F) {
	f.Add("alice", []byte("POST"), []byte("/v1/chat/completions"), []byte("req-1"), "http://u:1", int64(0), []byte{192, 0, 2, 1}, "")
	f.Add("", []byte(""), []byte("?x"), []byte(""), "", int64(-1), []byte{}, "")
	f.Add("a | b", []byte("G\nET"), []byte("/x | 200\n2026 | admin | GET /y"), []byte(`"},{"`), `\`, int64(1<<62), []byte{0xfe, 0x80, 15: 1}, `x","key_id":"`)
	f.Add("\xff\x00", []byte("\x7f"), []byte("/\u2028?\n"), []byte("\\u0000"), "\"", int64(123456789), []byte{10: 0xff, 11: 0xff, 15: 1}, "\n")
	f.Fuzz(func(t *testing.T, keyID string, method, path, requestID []byte, upstream string, ns int64, client []byte, zone string) {
		ip, _ := netip.AddrFromSlice(client)
		if ip.Is6() {
			ip = ip.WithZone(zone)
		}
		e := Entry{Time: time.Unix(0, ns), KeyID: keyID, Method: method, Path: path, Status: 200, Latency: time.Duration(ns), Upstream: upstream, RequestID: requestID, Client: ip}

		text := string(appendText(nil, &e, nil))
		var ts stamp
		for range 2 { // computing the second, then reusing it
			if cached := string(appendText(nil, &e, &ts)); cached != text {
				t.Fatalf("with a stamp %q, without %q", cached, text)
			}
		}
		if strings.Count(text, "\n") != 1 || !strings.HasSuffix(text, "\n") {
			t.Fatalf("text line %q is not one line", text)
		}
		fields := strings.Split(strings.TrimSuffix(text, "\n"), " | ")
		if len(fields) != 4 || strings.Count(fields[2], " ") != 1 || fields[3] != "200" {
			t.Fatalf("text line %q: fields %q", text, fields)
		}
		for _, field := range fields[1:] {
			if strings.ContainsAny(field, "|\"\\\r\n\t\x00") {
				t.Fatalf("text line %q: unescaped byte in %q", text, field)
			}
		}

		// The path decodes back to what was logged of it: '%' is escaped
		// too, so no two paths look alike.
		if len(path) > 0 && path[0] != '?' {
			_, logged, _ := strings.Cut(fields[2], " ")
			if got, want := percentDecode(logged), string(cutQuery(path)); got != want {
				t.Fatalf("text line %q: path decodes to %q, want %q", text, got, want)
			}
		}

		v := checkJSONLine(t, appendJSON(nil, &e, nil))
		if v.KeyID != fields[1] || v.Method+" "+v.Path != fields[2] {
			t.Fatalf("JSON %+v disagrees with text %q", v, text)
		}
		if want := string(appendAddr(nil, ip)); v.Client != want || (ip.IsValid() && ip.Zone() == "" && v.Client != ip.String()) {
			t.Fatalf("JSON client %q, want %q (%v)", v.Client, want, ip)
		}
	})
}

// percentDecode decodes every %XX of s.
func percentDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
