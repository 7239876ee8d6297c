package openai

import (
	"errors"
	"fmt"
)

// The bounds of ParseModelList: vLLM lists its model and its LoRA
// adapters, a few entries of a few hundred bytes each.
const (
	MaxModels        = 4096
	MaxModelListSize = 16 << 20
)

// ErrModelList: a body is not a model list as ParseModelList requires.
var ErrModelList = errors.New("openai: the body is not a model list")

// ModelEntry is one model of an upstream's GET /v1/models answer.
type ModelEntry struct {
	// ID is the entry's "id", unescaped.
	ID string
	// JSON is the entry's object as the upstream wrote it, with every
	// member kept (vLLM's root, parent, max_model_len, permission…), so
	// that it can be served again as it is. It is a copy of the body's
	// bytes, shared by the entries of one list: do not modify it.
	JSON []byte
}

// ParseModelList reads an upstream's GET /v1/models answer, a JSON object
// whose "data" is an array of objects, each with a string "id" of UTF-8
// text, and returns its entries in order. It refuses a body over
// MaxModelListSize bytes, more than MaxModels entries, an entry without an
// id, an entry or an object with its "id" or "data" twice, and an id given
// by two entries, with errors that wrap ErrModelList or the JSON errors of
// ParseRequest, and quote nothing of the body.
func ParseModelList(body []byte) ([]ModelEntry, error) {
	if len(body) > MaxModelListSize {
		return nil, fmt.Errorf("%w: over %d bytes", ErrModelList, MaxModelListSize)
	}
	o, err := openDocument(body)
	if err != nil {
		return nil, err
	}
	data := span{-1, -1}
	depth := 0
	for o.next() {
		if o.keyIs("data") {
			if data.start >= 0 {
				return nil, &FieldError{"data", ErrDuplicate}
			}
			data, depth = o.val, o.depth
		}
	}
	if err := o.close(); err != nil {
		return nil, err
	}
	if data.start < 0 || body[data.start] != '[' {
		return nil, fmt.Errorf("%w: no \"data\" array", ErrModelList)
	}

	owned := append([]byte(nil), body[data.start:data.end]...)
	var entries []ModelEntry
	seen := map[string]bool{}
	a, _ := openArray(owned, 0, depth)
	for a.next() {
		if len(entries) == MaxModels {
			return nil, fmt.Errorf("%w: over %d models", ErrModelList, MaxModels)
		}
		id, err := entryID(owned, a.val, a.depth)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrModelList, len(entries), err)
		}
		if seen[id] {
			return nil, fmt.Errorf("%w: entry %d repeats an id", ErrModelList, len(entries))
		}
		seen[id] = true
		entries = append(entries, ModelEntry{ID: id, JSON: owned[a.val.start:a.val.end:a.val.end]})
	}
	return entries, nil
}

// entryID returns the "id" of the checked model entry v.
func entryID(b []byte, v span, depth int) (string, error) {
	if b[v.start] != '{' {
		return "", errors.New("not an object")
	}
	var id []byte
	o, _ := openObject(b, v.start, depth)
	for o.next() {
		if !o.keyIs("id") {
			continue
		}
		if id != nil {
			return "", &FieldError{"id", ErrDuplicate}
		}
		text, err := readText(b[o.val.start:o.val.end])
		if err != nil || len(text) == 0 {
			return "", &FieldError{"id", ErrType}
		}
		id = text
	}
	if id == nil {
		return "", errors.New("no id")
	}
	return string(id), nil
}
