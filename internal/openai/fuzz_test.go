package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// refRequest is what encoding/json reads of a request body: the last of
// each top-level member, the members ParseRequest reads that are given
// twice (at the top level or in a stream_options object), and how deep
// the body nests.
type refRequest struct {
	members    map[string]json.RawMessage
	options    map[string]json.RawMessage // the last stream_options, if an object
	duplicates map[string]bool            // by FieldError.Field
	depth      int
}

// readRefRequest reads body with encoding/json, or fails if it is not
// one JSON object.
func readRefRequest(body []byte) (*refRequest, error) {
	if !json.Valid(body) {
		return nil, ErrSyntax
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); t[0] != '{' {
		return nil, ErrNotObject
	}
	ref := &refRequest{duplicates: map[string]bool{}}
	if err := json.Unmarshal(body, &ref.members); err != nil {
		return nil, err
	}
	tracked := map[string]bool{}
	for _, name := range requestFields {
		tracked[name] = true
	}
	countKeys(body, "", tracked, ref.duplicates)
	for _, raw := range allValues(body, "stream_options") {
		countKeys(raw, "stream_options.", map[string]bool{"include_usage": true, "continuous_usage_stats": true}, ref.duplicates)
	}
	if raw := ref.members["stream_options"]; len(raw) > 0 && raw[0] == '{' {
		json.Unmarshal(raw, &ref.options)
	}
	ref.depth = jsonDepth(body)
	return ref, nil
}

// jsonDepth returns how deep the JSON value b nests arrays and objects.
func jsonDepth(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	deepest := 0
	for depth := 0; ; {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// countKeys adds to dup the names of tracked that are given twice among
// the members of the JSON object raw, prefixed with prefix.
func countKeys(raw []byte, prefix string, tracked, dup map[string]bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		key := tok.(string)
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return
		}
		if tracked[key] && seen[key] {
			dup[prefix+key] = true
		}
		seen[key] = true
	}
}

// allValues returns every value of the top-level member name of the JSON
// object raw.
func allValues(raw []byte, name string) []json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.Token()
	var out []json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return out
		}
		if tok == name {
			out = append(out, v)
		}
	}
	return out
}

// integer is the integers ParseRequest takes: digits only.
var integer = regexp.MustCompile(`^[0-9]+$`)

// refBadType reports whether a value of the member field could justify
// ErrType: one that is not of the type ParseRequest requires.
func (ref *refRequest) refBadType(body []byte, field string) bool {
	var values []json.RawMessage
	if name, ok := strings.CutPrefix(field, "stream_options."); ok {
		for _, so := range allValues(body, "stream_options") {
			values = append(values, allValues(so, name)...)
		}
	} else {
		values = allValues(body, field)
	}
	for _, v := range values {
		s := string(v)
		switch field {
		case "model":
			var m *string
			if json.Unmarshal(v, &m) != nil || !utf8.Valid(v) || strings.Contains(strings.ToLower(s), `\ud`) {
				return true
			}
		case "stream", "stream_options.include_usage", "stream_options.continuous_usage_stats":
			if s != "true" && s != "false" && s != "null" {
				return true
			}
		case "stream_options":
			if s != "null" && s[0] != '{' {
				return true
			}
		case "n", "max_tokens", "max_completion_tokens", "max_output_tokens":
			n, err := strconv.ParseInt(s, 10, 64)
			if s != "null" && (!integer.MatchString(s) || err != nil || field == "n" && n < 1) {
				return true
			}
		}
	}
	return false
}

// FuzzTopLevelModel: ParseRequest reads what encoding/json reads. When
// encoding/json finds the body not to be one JSON object, ParseRequest
// refuses it; when encoding/json reads it, ParseRequest reads the same
// model and other members, or refuses it for a documented reason that
// holds: a nesting deeper than MaxDepth, a duplicated member, a member of
// the wrong type. Then AppendBody's rewrite is JSON that reads back as the
// new model and keeps every other member.
func FuzzTopLevelModel(f *testing.F) {
	for _, s := range []string{
		`{"model":"m"}`,
		`{"messages":[{"role":"user","content":"\"model\":\"x\"","model":"x"}],"model":"Qwen/Qwen3-8B"}`,
		`{"mo\u0064el":"\u0051wen","stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":true}}`,
		`{"model":"a","model":"b"}`,
		`{"model":"\ud83d\ude00","n":2,"max_tokens":10,"max_completion_tokens":null,"max_output_tokens":3}`,
		`{"model":"\ud800"}`,
		`{"model":1}`,
		`{"stream":"true"}`,
		`{"n":0}`,
		`{"a":[[[[{"b":null}]]]],"model":null}`,
		`{"model":"a"} x`,
		`[{"model":"a"}]`,
		" {\"model\" : \"a\\n\\t\\\"\" } ",
		"{\"model\":\"\xff\"}",
	} {
		f.Add([]byte(s), "new-model")
	}
	f.Fuzz(func(t *testing.T, body []byte, newModel string) {
		r, err := ParseRequest(body)
		ref, refErr := readRefRequest(body)
		if refErr != nil {
			if err == nil {
				t.Fatalf("ParseRequest(%q) = %+v; encoding/json: %v", body, r, refErr)
			}
			if errors.Is(refErr, ErrNotObject) != errors.Is(err, ErrNotObject) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("ParseRequest(%q): %v; encoding/json: %v", body, err, refErr)
			}
			return
		}
		if err != nil {
			var fe *FieldError
			switch {
			case errors.Is(err, ErrTooDeep):
				if ref.depth <= MaxDepth {
					t.Fatalf("ParseRequest(%q): %v, at depth %d", body, err, ref.depth)
				}
			case errors.As(err, &fe) && errors.Is(err, ErrDuplicate):
				if !ref.duplicates[fe.Field] {
					t.Fatalf("ParseRequest(%q): %v, but encoding/json sees it once", body, err)
				}
			case errors.As(err, &fe) && errors.Is(err, ErrType):
				if !ref.refBadType(body, fe.Field) {
					t.Fatalf("ParseRequest(%q): %v, but encoding/json reads a good value", body, err)
				}
			default:
				t.Fatalf("ParseRequest(%q): %v; encoding/json reads it", body, err)
			}
			return
		}

		var want Request
		want.N = 1
		if raw, ok := ref.members["model"]; ok && string(raw) != "null" {
			var m string
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("ParseRequest(%q) read a model; encoding/json: %v", body, err)
			}
			want.Model, want.HasModel = []byte(m), true
		}
		want.Stream = string(ref.members["stream"]) == "true"
		want.IncludeUsage = string(ref.options["include_usage"]) == "true"
		want.ContinuousUsage = string(ref.options["continuous_usage_stats"]) == "true"
		for _, name := range []string{"max_completion_tokens", "max_tokens", "max_output_tokens"} {
			if raw, ok := ref.members[name]; ok && string(raw) != "null" {
				json.Unmarshal(raw, &want.MaxTokens)
				want.MaxTokensField = name
				break
			}
		}
		if raw, ok := ref.members["n"]; ok && string(raw) != "null" {
			json.Unmarshal(raw, &want.N)
		}
		if string(r.Model) != string(want.Model) || r.HasModel != want.HasModel || r.Stream != want.Stream ||
			r.IncludeUsage != want.IncludeUsage || r.ContinuousUsage != want.ContinuousUsage ||
			r.MaxTokens != want.MaxTokens || r.MaxTokensField != want.MaxTokensField || r.N != want.N {
			t.Fatalf("ParseRequest(%q)\n got %+v\nwant %+v (encoding/json)", body, r, want)
		}

		// The rewrite.
		if !utf8.ValidString(newModel) {
			return
		}
		out := r.AppendBody(nil, body, Edit{Model: newModel, IncludeUsage: true})
		r2, err := ParseRequest(out)
		if err != nil {
			t.Fatalf("AppendBody(%q) = %q: %v", body, out, err)
		}
		if newModel != "" && string(r2.Model) != newModel || newModel == "" && string(r2.Model) != string(r.Model) {
			t.Fatalf("AppendBody(%q, %q) = %q: model %q", body, newModel, out, r2.Model)
		}
		if r2.Stream != r.Stream || r2.IncludeUsage != (r.IncludeUsage || r.Stream) || r2.ContinuousUsage != r.ContinuousUsage {
			t.Fatalf("AppendBody(%q) = %q: %+v", body, out, r2)
		}
		ref2, err := readRefRequest(out)
		if err != nil {
			t.Fatalf("AppendBody(%q) = %q: %v", body, out, err)
		}
		for name, raw := range ref.members {
			if name != "model" && name != "stream_options" && !bytes.Equal(raw, ref2.members[name]) {
				t.Fatalf("AppendBody(%q) = %q: member %q changed", body, out, name)
			}
		}
		for name, raw := range ref.options {
			if name != "include_usage" && !bytes.Equal(raw, ref2.options[name]) {
				t.Fatalf("AppendBody(%q) = %q: stream_options member %q changed", body, out, name)
			}
		}
		if !r.Stream && newModel == "" && !bytes.Equal(out, body) {
			t.Fatalf("AppendBody(%q) changed nothing to change: %q", body, out)
		}
	})
}

// longItem is what SSEScanner returned for one event: a whole event, a
// long one (its pieces joined) or the bytes Flush returned.
type longItem struct {
	desc  string
	bytes []byte
}

// joinPieces joins the pieces of each long event.
func joinPieces(events []string, pieces [][]byte) []longItem {
	var items []longItem
	for i, e := range events {
		if e == "long" && len(items) > 0 && strings.HasPrefix(items[len(items)-1].desc, "long") {
			items[len(items)-1].bytes = append(items[len(items)-1].bytes, pieces[i]...)
			continue
		}
		items = append(items, longItem{e, slices.Clone(pieces[i])})
	}
	return items
}

// refEvents splits stream into events as the SSE specification does, by
// blank lines ("\n" or "\r\n"), and reports whether the last one is
// unterminated.
func refEvents(stream []byte) (events [][]byte, unterminated bool) {
	var cur []byte
	for _, line := range bytes.SplitAfter(stream, []byte("\n")) {
		cur = append(cur, line...)
		if string(line) == "\n" || string(line) == "\r\n" {
			events = append(events, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		events = append(events, cur)
	}
	return events, len(cur) > 0
}

// refUsage reads the usage of an event's data with encoding/json, and
// reports whether the check applies: data that is one JSON object with a
// top-level "usage" and no "response", or the reverse.
func refUsage(data []byte) (u Usage, has, applies bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || bytes.TrimLeft(data, " \t\r\n")[0] != '{' ||
		len(allValues(data, "response")) > 1 || jsonDepth(data) > MaxDepth {
		return Usage{}, false, false
	}
	raw, top := m["usage"]
	if resp, ok := m["response"]; ok {
		var r map[string]json.RawMessage
		if json.Unmarshal(resp, &r) == nil && len(resp) > 0 && resp[0] == '{' {
			if top {
				return Usage{}, false, false
			}
			raw = r["usage"]
		}
	}
	var counts map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &counts) != nil {
		return Usage{}, false, true
	}
	get := func(names ...string) (int, bool, bool) {
		for _, name := range names {
			v, ok := counts[name]
			if !ok || string(v) == "null" {
				continue
			}
			n, err := strconv.ParseInt(string(v), 10, 64)
			if !integer.MatchString(string(v)) || err != nil {
				return 0, false, false
			}
			return int(n), true, true
		}
		return 0, false, true
	}
	p, pSet, ok1 := get("prompt_tokens", "input_tokens")
	c, cSet, ok2 := get("completion_tokens", "output_tokens")
	tot, tSet, ok3 := get("total_tokens")
	if !ok1 || !ok2 || !ok3 {
		return Usage{}, false, true
	}
	if !tSet {
		tot = p + c
	}
	return Usage{p, c, tot}, pSet || cSet || tSet, true
}

// FuzzSSEScanner: the scanner never panics; cut anywhere, a stream gives
// the same events as fed whole, and its pieces add up to the stream (so
// bytes forwarded plus bytes dropped are the bytes in); its events are
// those a plain split by blank lines gives; and the usage it reads is the
// one encoding/json reads.
func FuzzSSEScanner(f *testing.F) {
	for _, s := range []string{chatStream, continuousStream, completionStream, responsesStream,
		"data: [DONE]\n\ndata: [DONE]\r\n\r\n\n", ": x\r\n\r\r\n\n\ndata: {}\n"} {
		f.Add([]byte(s), []byte{3, 40, 7, 200, 1}, uint16(0))
		f.Add([]byte(s), []byte{17}, uint16(60))
	}
	f.Fuzz(func(t *testing.T, stream, cutBytes []byte, maxEvent uint16) {
		var cuts []int
		at := 0
		for _, c := range cutBytes {
			if at += int(c)%64 + 1; at >= len(stream) {
				break
			}
			cuts = append(cuts, at)
		}
		max := int(maxEvent)
		if max > 0 {
			max = max%512 + 1
		}
		whole := SSEScanner{MaxEvent: max}
		events, pieces := scanAll(&whole, stream, nil)
		split := SSEScanner{MaxEvent: max}
		events2, pieces2 := scanAll(&split, stream, cuts)
		if !bytes.Equal(bytes.Join(pieces, nil), stream) || !bytes.Equal(bytes.Join(pieces2, nil), stream) {
			t.Fatalf("%q cut at %v: the pieces do not add up to the stream", stream, cuts)
		}
		items, items2 := joinPieces(events, pieces), joinPieces(events2, pieces2)
		if len(items) != len(items2) {
			t.Fatalf("%q cut at %v: %q, whole %q", stream, cuts, events2, events)
		}
		for i := range items {
			if items[i].desc != items2[i].desc || !bytes.Equal(items[i].bytes, items2[i].bytes) {
				t.Fatalf("%q cut at %v: event %d is %q %q, whole %q %q", stream, cuts, i, items2[i].desc, items2[i].bytes, items[i].desc, items[i].bytes)
			}
		}

		limit := max
		if limit == 0 {
			limit = DefaultMaxEvent
		}
		ref, lastUnterminated := refEvents(stream)
		if len(ref) != len(items) {
			t.Fatalf("%q: %d events, the plain split %d", stream, len(items), len(ref))
		}
		for i, ev := range ref {
			it := items[i]
			if !bytes.Equal(it.bytes, ev) {
				t.Fatalf("%q: event %d is %q, the plain split's %q", stream, i, it.bytes, ev)
			}
			long := strings.HasPrefix(it.desc, "long")
			unterminated := i == len(ref)-1 && lastUnterminated
			switch {
			case len(ev) > limit:
				if !long || it.desc != "long content" {
					t.Fatalf("%q: event %d of %d bytes read as %q (MaxEvent %d)", stream, i, len(ev), it.desc, limit)
				}
			case unterminated:
				if it.desc != "flush -" {
					t.Fatalf("%q: the unterminated event read as %q", stream, it.desc)
				}
			case long:
				t.Fatalf("%q: event %d of %d bytes passed as long (MaxEvent %d)", stream, i, len(ev), limit)
			default:
				var s SSEScanner
				s.Feed(ev)
				got, _ := s.Next()
				if describe(got) != it.desc {
					t.Fatalf("%q: read as %q in the stream, %q alone", ev, it.desc, describe(got))
				}
				var data [][]byte
				for _, line := range bytes.Split(ev, []byte("\n")) {
					line = bytes.TrimSuffix(line, []byte("\r"))
					if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
						data = append(data, bytes.TrimPrefix(v, []byte(" ")))
					} else if string(line) == "data" {
						data = append(data, nil)
					}
				}
				joined := bytes.Join(data, []byte("\n"))
				if got.Done != (len(data) > 0 && string(joined) == "[DONE]") {
					t.Fatalf("%q: Done %v", ev, got.Done)
				}
				if len(data) == 0 || got.Done {
					if got.HasUsage || got.Content || got.UsageOnly {
						t.Fatalf("%q: %+v", ev, got)
					}
					break
				}
				if u, has, applies := refUsage(joined); applies && (has != got.HasUsage || has && u != got.Usage) {
					t.Fatalf("%q: usage %v %+v, encoding/json %v %+v", ev, got.HasUsage, got.Usage, has, u)
				}
			}
		}

		// Drop the usage-only chunks, as a gateway that asked for usage does.
		forwarded, dropped := 0, 0
		var s SSEScanner
		s.MaxEvent = max
		prev := 0
		for _, c := range append(cuts, len(stream)) {
			s.Feed(stream[prev:c])
			prev = c
			for ev, ok := s.Next(); ok; ev, ok = s.Next() {
				if ev.UsageOnly {
					dropped += len(ev.Bytes)
				} else {
					forwarded += len(ev.Bytes)
				}
			}
		}
		if ev, ok := s.Flush(); ok {
			forwarded += len(ev.Bytes)
		}
		if forwarded+dropped != len(stream) {
			t.Fatalf("%q: %d bytes forwarded, %d dropped, of %d", stream, forwarded, dropped, len(stream))
		}
	})
}

// FuzzMultipartModel: MultipartModel never panics, and a model it reads,
// or the absence of one, is what mime/multipart reads of the same body.
func FuzzMultipartModel(f *testing.F) {
	f.Add(formBody(f, "XYZ", [][2]string{{"model", "whisper-1"}, {"language", "en"}}, []byte("RIFF\r\n--XYZa\r\n")), "XYZ")
	f.Add(formBody(f, "b", [][2]string{{"prompt", "p"}}, []byte("RIFF")), "b")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nRIFF\r\n--b\r\n"+
		"Content-Disposition: form-data; name=model\r\nContent-Type: text/plain\r\n\r\nm\r\n--b-- \r\nepilogue"), "b")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n--b\r\n\r\nx\r\n--b--"), "b")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"model\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nm=3D\r\n--b--"), "b")
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		model, ok, err := MultipartModel(body, []byte(boundary))
		if err != nil {
			if ok || model != "" {
				t.Fatalf("MultipartModel(%q) = %q, %v, %v", body, model, ok, err)
			}
			return
		}
		ref, refOK, refErr := referenceMultipartModel(body, boundary)
		if refErr != nil || ref != model || refOK != ok {
			t.Fatalf("MultipartModel(%q, %q) = %q, %v; mime/multipart %q, %v, %v", body, boundary, model, ok, ref, refOK, refErr)
		}
	})
}

// FuzzParseResponse: ParseResponse reads what encoding/json reads of a
// response: nothing of a body encoding/json does not read as one object
// (or nests deeper than MaxDepth); else the last top-level "model" when
// it is a string, and a usage only when the last top-level "usage" is an
// object whose counts read as encoding/json reads them.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`,
		`{"usage":{"input_tokens":3,"output_tokens":4},"model":"q\u0077en","choices":[{"model":"x"}]}`,
		`{"model":7,"usage":{"prompt_tokens":null}}`,
		`{"model":"a","model":"b","usage":[],"usage":{"total_tokens":1}}`,
		`{"usage":{"prompt_tokens":1.5}}`,
		`["model"]`,
		`{"model":"a"} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := ParseResponse(body)
		var ref map[string]json.RawMessage
		if err := json.Unmarshal(body, &ref); err != nil || ref == nil {
			if r.Model != nil || r.HasUsage {
				t.Fatalf("ParseResponse(%q) = %+v; encoding/json: %v", body, r, err)
			}
			return
		}
		if r.Model == nil && !r.HasUsage {
			return // refused (too deep), or neither member readable
		}
		var model string
		if raw, ok := ref["model"]; ok && json.Unmarshal(raw, &model) == nil && raw[0] == '"' {
			if string(r.Model) != model {
				t.Fatalf("ParseResponse(%q).Model = %q, encoding/json %q", body, r.Model, model)
			}
		} else if r.Model != nil {
			t.Fatalf("ParseResponse(%q).Model = %q, but encoding/json reads no string", body, r.Model)
		}
		if !r.HasUsage {
			return
		}
		// Member names match exactly, as the upstreams' own JSON writers
		// spell them (encoding/json's struct fields would not).
		var um map[string]json.RawMessage
		if err := json.Unmarshal(ref["usage"], &um); err != nil {
			t.Fatalf("ParseResponse(%q) reads usage %+v; encoding/json: %v", body, r.Usage, err)
		}
		count := func(names ...string) (int, bool) {
			for _, name := range names {
				raw, ok := um[name]
				if !ok || string(raw) == "null" {
					continue
				}
				var n int
				if err := json.Unmarshal(raw, &n); err != nil {
					t.Fatalf("ParseResponse(%q) reads usage %+v; encoding/json reads %s as %s: %v", body, r.Usage, name, raw, err)
				}
				return n, true
			}
			return 0, false
		}
		p, _ := count("prompt_tokens", "input_tokens")
		c, _ := count("completion_tokens", "output_tokens")
		if r.Usage.Prompt != p || r.Usage.Completion != c {
			t.Fatalf("ParseResponse(%q) = %+v; encoding/json prompt %d, completion %d", body, r.Usage, p, c)
		}
		if total, ok := count("total_tokens"); ok && r.Usage.Total != total {
			t.Fatalf("ParseResponse(%q) total %d, encoding/json %d", body, r.Usage.Total, total)
		}
	})
}
