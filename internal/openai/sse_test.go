package openai

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// Streams as upstreams send them.
const (
	// OpenAI's, and vLLM's and SGLang's, chat stream with include_usage.
	chatStream = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"lo \"usage\": {}"},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}

data: [DONE]

`
	// vLLM's chat stream with continuous_usage_stats: a running total in
	// every chunk; reasoning and tool calls.
	continuousStream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hm\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\r\n\r\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\r\n\r\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[]},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\r\n\r\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\r\n\r\n" +
		"data: [DONE]\r\n\r\n"
	// A legacy completions stream, with a keep-alive comment, an id line
	// and data split over two lines.
	completionStream = ": keep-alive\n\n" +
		"id: 1\ndata: {\"choices\":[{\"text\":\"Once\",\"index\":0}]}\n\n" +
		"data: {\"choices\":[{\"text\":\"\",\"index\":0},\n" +
		"data:  {\"text\":\" upon\",\"index\":1}]}\n\n" +
		"data:[DONE]\n\n"
	// The Responses API: named events, deltas, usage in response.completed.
	responsesStream = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r1\",\"status\":\"in_progress\",\"usage\":null}}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\"}\n\n" +
		"event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"text\":\"Hi\"}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r1\",\"status\":\"completed\",\"output\":[{\"content\":[{\"text\":\"Hi\"}]}],\"usage\":{\"input_tokens\":7,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":1,\"total_tokens\":8}}}\n\n"
)

// describe sums up what Next returned, one line per event.
func describe(ev SSEEvent) string {
	var w []string
	if ev.Long {
		w = append(w, "long")
	}
	if ev.Done {
		w = append(w, "done")
	}
	if ev.Content {
		w = append(w, "content")
	}
	if ev.HasUsage {
		w = append(w, fmt.Sprintf("usage %d/%d/%d", ev.Usage.Prompt, ev.Usage.Completion, ev.Usage.Total))
	}
	if ev.UsageOnly {
		w = append(w, "only")
	}
	if len(w) == 0 {
		return "-"
	}
	return strings.Join(w, " ")
}

// scanAll feeds stream to s in the chunks cut at the offsets cuts, and
// returns a description of each piece Next and Flush return, and their
// bytes.
func scanAll(s *SSEScanner, stream []byte, cuts []int) (events []string, pieces [][]byte) {
	prev := 0
	for _, c := range append(cuts, len(stream)) {
		s.Feed(stream[prev:c])
		prev = c
		for ev, ok := s.Next(); ok; ev, ok = s.Next() {
			events = append(events, describe(ev))
			pieces = append(pieces, bytes.Clone(ev.Bytes))
		}
	}
	if ev, ok := s.Flush(); ok {
		events = append(events, "flush "+describe(ev))
		pieces = append(pieces, bytes.Clone(ev.Bytes))
	}
	return events, pieces
}

func TestSSEScanner(t *testing.T) {
	f := func(stream string, want ...string) {
		t.Helper()
		// Whole, then cut at every offset, then one byte at a time.
		splits := [][]int{nil}
		for i := 1; i < len(stream); i++ {
			splits = append(splits, []int{i})
		}
		var bytewise []int
		for i := 1; i < len(stream); i++ {
			bytewise = append(bytewise, i)
		}
		splits = append(splits, bytewise)
		var s SSEScanner
		for _, cuts := range splits {
			events, pieces := scanAll(&s, []byte(stream), cuts)
			if strings.Join(events, "\n") != strings.Join(want, "\n") {
				t.Fatalf("cut at %v:\n got %q\nwant %q", cuts, events, want)
			}
			if got := bytes.Join(pieces, nil); string(got) != stream {
				t.Fatalf("cut at %v: the pieces are %q", cuts, got)
			}
		}
	}
	f(chatStream, "-", "content", "content", "-", "usage 9/2/11 only", "done")
	f(continuousStream, "content usage 5/1/6", "content usage 5/2/7", "usage 5/3/8", "usage 5/3/8 only", "done")
	f(completionStream, "-", "content", "content", "done")
	f(responsesStream, "-", "content", "-", "-", "usage 7/1/8")
	f("")
	// Blank lines alone are events of their own; mixed line endings.
	f("\n\r\n", "-", "-")
	f("data: [DONE]\r\n\ndata: [DONE]\n\r\n", "done", "done")
	// An unterminated last event is returned by Flush, unread.
	f("data: [DONE]\n\ndata: [DONE]\n", "done", "flush -")
	f("data: [DONE]\n\ndata: [DONE]\r\n\r", "done", "flush -")
	// Data that is not [DONE] nor a JSON object is read as nothing.
	f("data: [DONE] \n\ndata: {\"usage\":{\"prompt_tokens\":1}} x\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}\n\n",
		"-", "-", "-")
	f("data: {\"choices\":[{\"text\":\"a\"}],\"usage\":{\"prompt_tokens\":\"1\"}}\n\n", "content")
	// A usage chunk with choices is not UsageOnly; nor one without a
	// "choices" member; a later "usage" wins.
	f("data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"completion_tokens\":4}}\n\n"+
		"data: {\"usage\":{\"completion_tokens\":4}}\n\n"+
		"data: {\"choices\":[],\"usage\":{\"completion_tokens\":4},\"usage\":null}\n\n",
		"usage 0/4/4", "usage 0/4/4", "-")
}

func TestSSEScannerLongEvents(t *testing.T) {
	long := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 100) + "\"}}]}\n\n"
	short := "data: {\"choices\":[{\"delta\":{}}]}\n\n" // 34 bytes
	stream := "data: [DONE]\n\n" + long + short + long + "data: [DONE]\n\n"
	for _, max := range []int{len(long) - 1, 30, 1} {
		for _, cuts := range [][]int{nil, {5}, {20, 21, 70, 150}, {len(stream) - 3}} {
			s := SSEScanner{MaxEvent: max}
			events, pieces := scanAll(&s, []byte(stream), cuts)
			if got := bytes.Join(pieces, nil); string(got) != stream {
				t.Fatalf("MaxEvent %d, cut at %v: the pieces are %q", max, cuts, got)
			}
			// Each long event: its first piece counts as content, every
			// piece is long; the events around it are read.
			var summary []string
			for _, e := range events {
				if e == "long" && len(summary) > 0 && strings.HasPrefix(summary[len(summary)-1], "long") {
					continue
				}
				summary = append(summary, e)
			}
			want := []string{"done", "long content", "long content", "long content", "done"}
			if max == 1 {
				// Even "data: [DONE]\n\n" is longer than one byte.
				want = []string{"long content", "long content", "long content", "long content", "long content"}
			}
			if max == len(long)-1 {
				want = []string{"done", "long content", "-", "long content", "done"}
			}
			if strings.Join(summary, ",") != strings.Join(want, ",") {
				t.Fatalf("MaxEvent %d, cut at %v: got %q, want %q", max, cuts, events, want)
			}
		}
	}
	// An event of exactly MaxEvent bytes is read.
	s := SSEScanner{MaxEvent: len(long)}
	if events, _ := scanAll(&s, []byte(long), []int{10}); strings.Join(events, ",") != "content" {
		t.Fatalf("an event of MaxEvent bytes: %q", events)
	}
}

// TestSSEScannerHolds: an event is returned when its blank line arrives,
// and not before; the events before it are returned at once.
func TestSSEScannerHolds(t *testing.T) {
	var s SSEScanner
	s.Feed([]byte("data: [DONE]\n\ndata: {\"choices\":[]"))
	if ev, ok := s.Next(); !ok || !ev.Done || string(ev.Bytes) != "data: [DONE]\n\n" {
		t.Fatalf("first event: %q, %v", ev.Bytes, ok)
	}
	if ev, ok := s.Next(); ok {
		t.Fatalf("the incomplete event was returned: %q", ev.Bytes)
	}
	s.Feed([]byte(`,"usage":{"prompt_tokens":3}}` + "\n"))
	if ev, ok := s.Next(); ok {
		t.Fatalf("the event was returned before its blank line: %q", ev.Bytes)
	}
	s.Feed([]byte("\ndata: [DO"))
	ev, ok := s.Next()
	if !ok || !ev.UsageOnly || ev.Usage.Prompt != 3 || string(ev.Bytes) != "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n" {
		t.Fatalf("second event: %q %+v, %v", ev.Bytes, ev, ok)
	}
	if _, ok := s.Next(); ok {
		t.Fatal("a third event")
	}
	if ev, ok := s.Flush(); !ok || string(ev.Bytes) != "data: [DO" || ev.Done {
		t.Fatalf("Flush: %q %+v, %v", ev.Bytes, ev, ok)
	}
	// Flush reset the scanner.
	s.Feed([]byte("data: [DONE]\n\n"))
	if ev, ok := s.Next(); !ok || !ev.Done {
		t.Fatalf("after Flush: %q, %v", ev.Bytes, ok)
	}
}

// TestSSEScannerDrop: forwarding every event but the usage chunk gives the
// stream the client would have had without include_usage.
func TestSSEScannerDrop(t *testing.T) {
	usageChunk := `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}` + "\n\n"
	want := strings.Replace(chatStream, usageChunk, "", 1)
	if want == chatStream {
		t.Fatal("the usage chunk is not in the stream")
	}
	for cut := 1; cut < len(chatStream); cut += 7 {
		var s SSEScanner
		var out []byte
		var usage Usage
		dropped := 0
		for _, chunk := range []string{chatStream[:cut], chatStream[cut:]} {
			s.Feed([]byte(chunk))
			for ev, ok := s.Next(); ok; ev, ok = s.Next() {
				if ev.HasUsage {
					usage = ev.Usage
				}
				if ev.UsageOnly {
					dropped += len(ev.Bytes)
					continue
				}
				out = append(out, ev.Bytes...)
			}
		}
		if string(out) != want || dropped != len(usageChunk) || usage != (Usage{9, 2, 11}) {
			t.Fatalf("cut at %d: forwarded %q, dropped %d bytes, usage %+v", cut, out, dropped, usage)
		}
	}
}
