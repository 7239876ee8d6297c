package openai_test

import (
	"fmt"

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
