package openai

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// vllmModels is vLLM's GET /v1/models answer: the base model and a LoRA
// adapter, with the members vLLM adds to OpenAI's.
const vllmModels = `{"object":"list","data":[` +
	`{"id":"Qwen/Qwen3-8B","object":"model","created":1700000000,"owned_by":"vllm","root":"/models/qwen3-8b","parent":null,"max_model_len":32768,"permission":[{"id":"modelperm-1","object":"model_permission","allow_sampling":true}]},` +
	` {"id":"sql-lora","object":"model","created":1700000000,"owned_by":"vllm","root":"/adapters/sql","parent":"Qwen/Qwen3-8B","max_model_len":null}` +
	`]}`

func TestParseModelList(t *testing.T) {
	entries, err := ParseModelList([]byte(vllmModels))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].ID != "Qwen/Qwen3-8B" || entries[1].ID != "sql-lora" {
		t.Fatalf("entries %+v", entries)
	}
	if want := vllmModels[strings.Index(vllmModels, `{"id":"Qwen`):strings.Index(vllmModels, `, {"id":"sql`)]; string(entries[0].JSON) != want {
		t.Fatalf("entry 0 JSON %s, want %s", entries[0].JSON, want)
	}
	if !strings.HasSuffix(string(entries[1].JSON), `"parent":"Qwen/Qwen3-8B","max_model_len":null}`) {
		t.Fatalf("entry 1 JSON %s", entries[1].JSON)
	}
	// The entries are copies: changing the body changes nothing.
	body := []byte(vllmModels)
	entries, _ = ParseModelList(body)
	clear(body)
	if entries[0].ID != "Qwen/Qwen3-8B" || entries[1].JSON[0] != '{' {
		t.Fatalf("entries alias the body: %+v", entries)
	}

	f := func(body string, want ...string) {
		t.Helper()
		entries, err := ParseModelList([]byte(body))
		if err != nil {
			t.Fatalf("ParseModelList(%s): %v", body, err)
		}
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.ID)
		}
		if strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Fatalf("ParseModelList(%s) = %q, want %q", body, ids, want)
		}
	}
	f(`{"data":[]}`)
	f(`{"object":"list","data":[{"id":"a\u002fb"}],"extra":{"data":1}}`, "a/b")
	f(`{"data":[{"id":"a","data":[{"id":"a"}]},{"id":"A"}]}`, "a", "A")
}

func TestParseModelListErrors(t *testing.T) {
	f := func(body string, want error) {
		t.Helper()
		entries, err := ParseModelList([]byte(body))
		if !errors.Is(err, want) || entries != nil {
			t.Fatalf("ParseModelList(%.80s) = %v, %v; want %v", body, entries, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Fatalf("ParseModelList(%.80s): error %q quotes the body", body, err)
		}
	}
	f(`{"data":[{"id":"secret"}]`, ErrSyntax)
	f(`[{"id":"secret"}]`, ErrNotObject)
	f(`{}`, ErrModelList)
	f(`{"data":null}`, ErrModelList)
	f(`{"data":{"id":"secret"}}`, ErrModelList)
	f(`{"data":[],"data":[]}`, ErrDuplicate)
	f(`{"data":["secret"]}`, ErrModelList)
	f(`{"data":[{"name":"secret"}]}`, ErrModelList)
	f(`{"data":[{"id":""}]}`, ErrModelList)
	f(`{"data":[{"id":1}]}`, ErrType)
	f(`{"data":[{"id":"secret\ud800"}]}`, ErrType)
	f(`{"data":[{"id":"secret","id":"other"}]}`, ErrDuplicate)
	f(`{"data":[{"id":"secret"},{"id":"x"},{"id":"secret"}]}`, ErrModelList)

	list := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"data":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"m%d"}`, i)
		}
		b.WriteString(`]}`)
		return b.String()
	}
	f(list(MaxModels+1), ErrModelList)
	if entries, err := ParseModelList([]byte(list(MaxModels))); err != nil || len(entries) != MaxModels {
		t.Fatalf("MaxModels entries: %d, %v", len(entries), err)
	}
	f(`{"data":[],"pad":"`+strings.Repeat("x", MaxModelListSize)+`"}`, ErrModelList)
}
