package openai_test

import (
	"fmt"
	"os"

	"github.com/authgate/authgate/internal/openai"
)

// A gateway reads the model it routes by, then sends the upstream the
// body with the model's real name and a request for usage.
func ExampleParseRequest() {
	body := []byte(`{"model":"fast","stream":true,"messages":[{"role":"user","content":"Hi"}],"max_tokens":64}`)
	r, err := openai.ParseRequest(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("model %s, stream %v, usage asked %v, %s %d, n %d\n", r.Model, r.Stream, r.IncludeUsage, r.MaxTokensField, r.MaxTokens, r.N)
	fmt.Printf("%s\n", r.AppendBody(nil, body, openai.Edit{Model: "Qwen/Qwen3-8B", IncludeUsage: true}))

	_, err = openai.ParseRequest([]byte(`{"model":"cheap","model":"expensive"}`))
	fmt.Println(err)
	// Output:
	// model fast, stream true, usage asked false, max_tokens 64, n 1
	// {"stream_options":{"include_usage":true},"model":"Qwen/Qwen3-8B","stream":true,"messages":[{"role":"user","content":"Hi"}],"max_tokens":64}
	// openai: a member is given more than once: model
}

// A gateway passes an upstream's stream to the client as it arrives,
// meters it, and drops the usage chunk the client did not ask for.
func ExampleSSEScanner() {
	chunks := []string{
		"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"del",
		"ta\":{\"content\":\"lo\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,",
		"\"completion_tokens\":2,\"total_tokens\":11}}\n\ndata: [DONE]\n\n",
	}
	var s openai.SSEScanner
	var usage openai.Usage
	content := 0
	for _, chunk := range chunks {
		s.Feed([]byte(chunk))
		for ev, ok := s.Next(); ok; ev, ok = s.Next() {
			if ev.HasUsage {
				usage = ev.Usage
			}
			if ev.Content {
				content++
			}
			if ev.UsageOnly {
				continue // the client did not ask for usage
			}
			os.Stdout.Write(ev.Bytes)
		}
	}
	if ev, ok := s.Flush(); ok {
		os.Stdout.Write(ev.Bytes)
	}
	fmt.Printf("usage %+v, %d content events\n", usage, content)
	// Output:
	// data: {"choices":[{"delta":{"content":"Hel"}}]}
	//
	// data: {"choices":[{"delta":{"content":"lo"}}]}
	//
	// data: [DONE]
	//
	// usage {Prompt:9 Completion:2 Total:11}, 2 content events
}
