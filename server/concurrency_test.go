package server_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// TestConcurrencyLimit: a key_id with concurrency=1 holds its slot for a
// whole stream: a second request meanwhile answers 429
// concurrency_limit_exceeded in OpenAI's shape, and other key_ids are not
// held. The slot is released on every way a request ends: a response
// held whole, an upstream that cannot be reached, a stream the client
// leaves; so the key_id is admitted again each time.
func TestConcurrencyLimit(t *testing.T) {
	_, upURL := startMock(t, mockupstream.Config{StreamChunks: 1000, ChunkDelay: 10 * time.Millisecond})
	dead, err := net.Listen("tcp", "127.0.0.1:0") // an upstream that refuses connections
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	g := startGateway(t, server.Config{
		KeysFile:  keysFile(t, "alice:"+keyAlice+"  concurrency=1\nbob:"+keyBob+"\n"),
		Upstreams: []string{upURL},
	})
	gDead := startGateway(t, server.Config{
		KeysFile:  keysFile(t, "alice:"+keyAlice+"  concurrency=1\n"),
		Upstreams: []string{deadURL},
	})
	chat := func(g *gateway, key string) (int, string) {
		resp, body := do(t, "POST", g.url+"/v1/chat/completions", "Bearer "+key, `{"messages":[]}`)
		return resp.StatusCode, body
	}
	// Held whole: released as the handler returns.
	for range 3 {
		if s, b := chat(g, keyAlice); s != 200 {
			t.Fatalf("sequential requests: %d %s", s, b)
		}
	}
	// An unreachable upstream: released with the 502.
	for range 2 {
		if s, b := chat(gDead, keyAlice); s != 502 {
			t.Fatalf("unreachable upstream: %d %s", s, b)
		}
	}

	// A stream holds the slot until it ends.
	c, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"stream":true}`
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAlice, len(body), body)
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	s, b := chat(g, keyAlice)
	want := `{"error":{"message":"Too many concurrent requests for alice: limit 1 requests in flight. Please try again once one has finished.","type":"rate_limit_error","param":null,"code":"concurrency_limit_exceeded"}}`
	if s != 429 || b != want {
		t.Fatalf("a second request during the stream: %d %s, want 429 %s", s, b, want)
	}
	if s, b := chat(g, keyBob); s != 200 {
		t.Fatalf("another key_id during alice's stream: %d %s", s, b)
	}
	// The client leaves: the slot is released when the gateway notices.
	c.Close()
	pollUntil(t, "alice admitted after leaving her stream", func() bool {
		s, _ := chat(g, keyAlice)
		return s == 200
	})
}
