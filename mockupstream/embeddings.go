package mockupstream

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"

	"github.com/valyala/fasthttp"
)

// embeddingDims is the length of every mock embedding.
const embeddingDims = 8

// embeddingsRequest is the part of an embeddings request the mock reads.
type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
}

// embeddings answers POST /v1/embeddings.
func (m *Mock) embeddings(ctx *fasthttp.RequestCtx) {
	var req embeddingsRequest
	if !parseBody(ctx, &req) {
		return
	}
	if !m.cat.Load().serves([]byte(req.Model)) {
		modelNotFound(ctx, []byte(req.Model))
		return
	}
	useBase64 := false
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		useBase64 = true
	default:
		badRequest(ctx, "encoding_format must be 'float' or 'base64'", "encoding_format", "invalid_value")
		return
	}
	inputs, ok := splitInputs(req.Input)
	if !ok {
		badRequest(ctx, "input must be a non-empty string, array of strings, or array of token arrays", "input", "invalid_value")
		return
	}

	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	b := ctx.Response.SwapBody(nil)[:0]
	b = append(b, `{"object":"list","data":[`...)
	tokens := 0
	for i, in := range inputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = appendInt(b, int64(i))
		b = append(b, `,"embedding":`...)
		v := embed(in)
		if useBase64 {
			b = appendBase64Vector(b, &v)
		} else {
			b = appendFloatVector(b, &v)
		}
		b = append(b, '}')
		tokens += estimateTokens(len(in))
	}
	b = append(b, `],"model":`...)
	b = m.appendModel(b, req.Model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = appendInt(b, int64(tokens))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(tokens))
	b = append(b, "}}"...)
	ctx.Response.SwapBody(b)
}

// splitInputs splits the raw "input" of an embeddings request into one raw
// JSON value per embedding to return: a string gives one, an array of
// numbers (one token array) gives one, an array of strings or of token
// arrays gives one per element. It reports false for anything else,
// including an empty input.
func splitInputs(raw json.RawMessage) ([]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, false
	}
	switch raw[0] {
	case '"':
		return []json.RawMessage{raw}, true
	case '[':
	default:
		return nil, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || len(elems) == 0 {
		return nil, false
	}
	first := elems[0]
	if first[0] != '"' && first[0] != '[' {
		// One token array: every element must be a number.
		for _, e := range elems {
			if _, err := strconv.ParseFloat(string(e), 64); err != nil {
				return nil, false
			}
		}
		return []json.RawMessage{raw}, true
	}
	for _, e := range elems {
		if e[0] != first[0] {
			return nil, false
		}
	}
	return elems, true
}

// embed returns a deterministic unit-length vector for the raw input: equal
// inputs get equal vectors.
func embed(in []byte) [embeddingDims]float32 {
	// FNV-1a of the input seeds the generator.
	state := uint64(14695981039346656037)
	for _, c := range in {
		state ^= uint64(c)
		state *= 1099511628211
	}
	var v [embeddingDims]float32
	var norm float64
	for i := range v {
		// splitmix64 step, mapped to [-1, 1).
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		f := float64(z>>11)/(1<<53)*2 - 1
		v[i] = float32(f)
		norm += f * f
	}
	norm = math.Sqrt(norm)
	if norm == 0 {
		v[0], norm = 1, 1
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / norm)
	}
	return v
}

// appendFloatVector appends v as a JSON array of numbers.
func appendFloatVector(dst []byte, v *[embeddingDims]float32) []byte {
	dst = append(dst, '[')
	for i, f := range v {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendFloat(dst, float64(f), 'g', -1, 32)
	}
	return append(dst, ']')
}

// appendBase64Vector appends v as a JSON string holding the base64 of its
// little-endian float32s, as OpenAI does for "encoding_format": "base64".
func appendBase64Vector(dst []byte, v *[embeddingDims]float32) []byte {
	var raw [embeddingDims * 4]byte
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[i*4:], math.Float32bits(f))
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, raw[:])
	return append(dst, '"')
}
