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
	pathLoadAdapter     = "/v1/load_lora_adapter"
	pathUnloadAdapter   = "/v1/unload_lora_adapter"
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
		writeJSON(ctx, m.cat.Load().list)
	case pathLoadAdapter:
		if !ctx.IsPost() {
			methodNotAllowed(ctx, strPost)
			return
		}
		m.loadAdapter(ctx)
	case pathUnloadAdapter:
		if !ctx.IsPost() {
			methodNotAllowed(ctx, strPost)
			return
		}
		m.unloadAdapter(ctx)
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
	obj, ok := m.cat.Load().byID[string(id)]
	if !ok {
		msg := append([]byte("The model '"), id...)
		msg = append(msg, "' does not exist"...)
		writeError(ctx, fasthttp.StatusNotFound, msg, "model", "model_not_found")
		return
	}
	writeJSON(ctx, obj)
}

// writeJSON answers 200 with body, which must stay unchanged afterwards.
func writeJSON(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	ctx.Response.SetBodyRaw(body)
}
