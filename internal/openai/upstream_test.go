package openai

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/authgate/authgate/mockupstream"
)

// The package against a real upstream, the mock, on a loopback port: what
// a gateway does with a request and its answer.

const mockModel = "mock/Model-1B"

// startMock serves a mock upstream with chunks content chunks per stream
// on a loopback port and returns its base URL.
func startMock(t *testing.T, chunks int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := mockupstream.New(mockupstream.Config{Model: mockModel, StreamChunks: chunks})
	served := make(chan error, 1)
	go func() { served <- m.Serve(ln) }()
	t.Cleanup(func() {
		m.Shutdown()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String()
}

// smallReads reads r a few bytes at a time, so that the stream's events
// straddle the reads, as they may across network reads.
type smallReads struct{ r io.Reader }

func (s smallReads) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 23)]) }

// proxyStream posts body to url and passes the answer through an
// SSEScanner, as the gateway would: it drops the usage-only chunk when
// drop is set, and returns the bytes forwarded, the last usage seen, the
// content events and the events dropped.
func proxyStream(t *testing.T, url string, body []byte, drop bool) (out []byte, usage Usage, hasUsage bool, content, dropped int) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var s SSEScanner
	buf := make([]byte, 4096)
	r := smallReads{resp.Body}
	for {
		n, err := r.Read(buf)
		s.Feed(buf[:n])
		for ev, ok := s.Next(); ok; ev, ok = s.Next() {
			if ev.HasUsage {
				usage, hasUsage = ev.Usage, true
			}
			if ev.Content {
				content++
			}
			if drop && ev.UsageOnly {
				dropped++
				continue
			}
			out = append(out, ev.Bytes...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if ev, ok := s.Flush(); ok {
		t.Fatalf("the stream ends inside an event: %q", ev.Bytes)
	}
	return out, usage, hasUsage, content, dropped
}

// TestUpstreamStreamUsage: the gateway rewrites the model alias and asks
// for usage the client did not ask for; the upstream sees the real model,
// the gateway meters the upstream's usage, and the client gets the stream
// it would have had without include_usage.
func TestUpstreamStreamUsage(t *testing.T) {
	const chunks = 7
	url := startMock(t, chunks) + "/v1/chat/completions"
	client := []byte(`{"model":"alias","stream":true,"messages":[{"role":"user","content":"Say \"model\": hi"}]}`)
	r, err := ParseRequest(client)
	if err != nil || string(r.Model) != "alias" || !r.Stream || r.IncludeUsage {
		t.Fatalf("ParseRequest: %+v, %v", r, err)
	}
	upstream := r.AppendBody(nil, client, Edit{Model: mockModel, IncludeUsage: true})

	out, usage, hasUsage, content, dropped := proxyStream(t, url, upstream, !r.IncludeUsage)
	want := Usage{Prompt: max(1, (len(upstream)+3)/4), Completion: chunks} // the mock's count
	want.Total = want.Prompt + want.Completion
	if !hasUsage || usage != want || content != chunks || dropped != 1 {
		t.Fatalf("usage %v %+v (want %+v), %d content events, %d dropped", hasUsage, usage, want, content, dropped)
	}
	if bytes.Contains(out, []byte(`"usage"`)) || !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
		t.Fatalf("the client's stream: %s", out)
	}
	if n := bytes.Count(out, []byte(`"model":"`+mockModel+`"`)); n != chunks+2 {
		t.Fatalf("the client's stream names the model %d times, want %d: %s", n, chunks+2, out)
	}

	// Without the drop, the same stream has the usage chunk: the client
	// that asked for usage gets it.
	out2, usage2, _, _, dropped2 := proxyStream(t, url, upstream, false)
	if usage2 != want || dropped2 != 0 || bytes.Count(out2, []byte("\n\n")) != bytes.Count(out, []byte("\n\n"))+1 ||
		!bytes.Contains(out2, []byte(`"choices":[],"usage":`)) {
		t.Fatalf("with usage: %+v, %d dropped: %s", usage2, dropped2, out2)
	}
}

// TestUpstreamUsageAndModels: the usage of an answer that is not streamed,
// and the upstream's model list.
func TestUpstreamUsageAndModels(t *testing.T) {
	base := startMock(t, 0)
	body, err := RewriteModel(nil, []byte(`{"model":"alias","messages":[{"role":"user","content":"hi"}]}`), mockModel)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d, %v", resp.StatusCode, err)
	}
	u, ok := ParseUsage(answer)
	if !ok || u.Prompt != max(1, (len(body)+3)/4) || u.Completion == 0 || u.Total != u.Prompt+u.Completion {
		t.Fatalf("ParseUsage(%s) = %+v, %v", answer, u, ok)
	}

	resp, err = http.Get(base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	list, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseModelList(list)
	if err != nil || len(entries) != 1 || entries[0].ID != mockModel || !bytes.Contains(list, entries[0].JSON) ||
		!bytes.HasPrefix(entries[0].JSON, []byte("{")) || !bytes.HasSuffix(entries[0].JSON, []byte("}")) {
		t.Fatalf("ParseModelList(%s) = %+v, %v", list, entries, err)
	}
}
