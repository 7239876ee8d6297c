package rawhttp

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	f := func(raw string, wantStatus int, wantClose bool, wantBody string, wantChunks int) {
		t.Helper()
		br := bufio.NewReader(strings.NewReader(raw + "NEXT"))
		chunks := 0
		r, err := ReadResponse(br, true, func([]byte) { chunks++ })
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if r.Status != wantStatus || r.Close != wantClose || string(r.Body) != wantBody || chunks != wantChunks {
			t.Errorf("%q: got status %d close %v body %q chunks %d; want %d %v %q %d",
				raw, r.Status, r.Close, r.Body, chunks, wantStatus, wantClose, wantBody, wantChunks)
		}
		if !wantClose {
			// The next response's bytes are left unread.
			rest, _ := br.ReadString(0)
			if rest != "NEXT" {
				t.Errorf("%q: left %q unread, want NEXT", raw, rest)
			}
		}
	}
	f("HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello", 401, false, "hello", 0)
	f("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 200, false, "", 0)
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndata:\r\n3;ext=1\r\n ab\r\n0\r\n\r\n", 200, false, "data: ab", 2)
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nTrailer: v\r\n\r\n", 200, false, "x", 1)
	f("HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno", 429, true, "no", 0)
	f("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, true, "ok", 0)
	f("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, false, "ok", 0)
	f("HTTP/1.1 204 No Content\r\n\r\n", 204, false, "", 0)
	f("HTTP/1.1 200 OK\r\n\r\nuntil close", 200, true, "until closeNEXT", 0)

	for _, bad := range []string{
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"SSH-2.0-OpenSSH\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	} {
		if _, err := ReadResponse(bufio.NewReader(strings.NewReader(bad)), false, nil); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestRequest(t *testing.T) {
	got := string(Request("127.0.0.1:1", "/v1/x", "sk-k", `{"a":1}`))
	want := "POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-k\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if strings.Contains(string(Request("h", "/", "", "")), "Authorization") {
		t.Error("no key: Authorization sent")
	}
}
