package mockupstream

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

const (
	pathChatCompletions = "/v1/chat/completions"
	pathCompletions     = "/v1/completions"
	pathEmbeddings      = "/v1/embeddings"
	pathModels          = "/v1/models"
)

var (
	strApplicationJSON = []byte("application/json")
	strTextEventStream = []byte("text/event-stream")
	strNoCache         = []byte("no-cache")
	strCacheControl    = []byte("Cache-Control")
	strAllow           = []byte("Allow")
	strPost            = []byte("POST")
	strGetHead         = []byte("GET, HEAD")
	prefixModelsSlash  = []byte(pathModels + "/")
)

// Handler is the Mock's fasthttp.RequestHandler; see Mock for what it
// answers. It may be mounted in any fasthttp.Server.
func (m *Mock) Handler(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) {
	case pathChatCompletions:
		if !ctx.IsPost() {
			methodNotAllowed(ctx, strPost)
			return
		}
		m.chatCompletions(ctx)
	case pathCompletions:
		if !ctx.IsPost() {
			methodNotAllowed(ctx, strPost)
			return
		}
		m.completions(ctx)
	case pathEmbeddings:
		if !ctx.IsPost() {
			methodNotAllowed(ctx, strPost)
			return
		}
		m.embeddings(ctx)
	case pathModels:
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx, strGetHead)
			return
		}
		writeJSON(ctx, m.modelsBody)
	default:
		if id, ok := bytes.CutPrefix(path, prefixModelsSlash); ok && len(id) > 0 {
			if !ctx.IsGet() && !ctx.IsHead() {
				methodNotAllowed(ctx, strGetHead)
				return
			}
			m.model1(ctx, id)
			return
		}
		notFound(ctx)
	}
}

// model1 answers GET /v1/models/{id}.
func (m *Mock) model1(ctx *fasthttp.RequestCtx, id []byte) {
	if string(id) != m.model {
		msg := append([]byte("The model '"), id...)
		msg = append(msg, "' does not exist"...)
		writeError(ctx, fasthttp.StatusNotFound, msg, "model", "model_not_found")
		return
	}
	writeJSON(ctx, m.modelBody)
}

// writeJSON answers 200 with body, which must stay unchanged afterwards.
func writeJSON(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	ctx.Response.SetBodyRaw(body)
}

// appendModelObject appends an OpenAI model object for the model whose
// JSON string literal is modelJSON.
func appendModelObject(dst, modelJSON []byte, created int64) []byte {
	dst = append(dst, `{"id":`...)
	dst = append(dst, modelJSON...)
	dst = append(dst, `,"object":"model","created":`...)
	dst = appendInt(dst, created)
	return append(dst, `,"owned_by":"authgate-mock"}`...)
}
