package mockupstream_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/authgate/authgate/mockupstream"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// A Mock served on an in-memory listener answers a chat completion.
func Example() {
	m := mockupstream.New(mockupstream.Config{Model: "demo-model"})
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- m.Serve(ln) }()
	defer func() {
		_ = m.Shutdown()
		<-served
	}()

	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://upstream/v1/chat/completions")
	req.SetBodyString(`{"messages":[{"role":"user","content":"Hi"}]}`)
	if err := c.Do(req, resp); err != nil {
		fmt.Println(err)
		return
	}

	var cc struct {
		Object  string
		Model   string
		Choices []struct {
			Message struct{ Role, Content string }
		}
	}
	if err := json.Unmarshal(resp.Body(), &cc); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode(), strings.SplitN(string(resp.Header.ContentType()), ";", 2)[0])
	fmt.Println(cc.Object, cc.Model)
	fmt.Println(cc.Choices[0].Message.Role+":", cc.Choices[0].Message.Content)
	// Output:
	// 200 application/json
	// chat.completion demo-model
	// assistant: Hello from the mock upstream.
}
