package mockupstream

import (
	"time"

	"github.com/valyala/fasthttp"
)

// DefaultMaxModelLen is the max_model_len the model list reports for each
// model served from the start.
const DefaultMaxModelLen = 4096

// entry is one model the mock serves, as vLLM lists it: a base model (one
// of Config.Models) or an adapter loaded at run time.
type entry struct {
	id      string
	root    string // the model's path: its id for a base model
	adapter bool   // loaded at run time: listed with its base as parent
	created int64
}

// catalog is what the mock serves, built whole on every change and read
// without locking (Mock.cat). It is not modified once published.
type catalog struct {
	strict      bool              // refuse models not listed (Config.Models set)
	entries     []entry           // in the order added
	byID        map[string][]byte // id → its model object
	list        []byte            // GET /v1/models
	defaultJSON []byte            // the first model's id as a JSON string literal
}

// newCatalog builds the catalog of entries; base names the first base
// model, the parent of adapters.
func newCatalog(strict bool, entries []entry, base string) *catalog {
	c := &catalog{strict: strict, entries: entries, byID: make(map[string][]byte, len(entries))}
	c.list = append(c.list, `{"object":"list","data":[`...)
	for i, e := range entries {
		obj := appendModelObject(nil, e, base)
		c.byID[e.id] = obj
		if i > 0 {
			c.list = append(c.list, ',')
		}
		c.list = append(c.list, obj...)
	}
	c.list = append(c.list, "]}"...)
	c.defaultJSON = appendJSONString(nil, base)
	return c
}

// serves reports whether a request naming model is served: any model is,
// unless the mock is strict; a request naming none is.
func (c *catalog) serves(model []byte) bool {
	if !c.strict || len(model) == 0 {
		return true
	}
	_, ok := c.byID[string(model)]
	return ok
}

// appendModelObject appends e's entry in GET /v1/models, in vLLM's shape:
// a base model with its max_model_len and no parent, an adapter with its
// base as parent and no max_model_len.
func appendModelObject(dst []byte, e entry, base string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, e.id)
	dst = append(dst, `,"object":"model","created":`...)
	dst = appendInt(dst, e.created)
	dst = append(dst, `,"owned_by":"authgate-mock","root":`...)
	dst = appendJSONString(dst, e.root)
	if e.adapter {
		dst = append(dst, `,"parent":`...)
		dst = appendJSONString(dst, base)
		return append(dst, `,"max_model_len":null}`...)
	}
	dst = append(dst, `,"parent":null,"max_model_len":`...)
	dst = appendInt(dst, DefaultMaxModelLen)
	return append(dst, '}')
}

// AddModel starts serving the model id, listed as an adapter of the first
// model (as vLLM lists a LoRA adapter loaded at run time, with id as its
// path). It reports false, changing nothing, if id is served already.
func (m *Mock) AddModel(id string) bool { return m.add(id, id) }

func (m *Mock) add(id, root string) bool {
	m.catMu.Lock()
	defer m.catMu.Unlock()
	c := m.cat.Load()
	if _, ok := c.byID[id]; ok {
		return false
	}
	entries := append(c.entries[:len(c.entries):len(c.entries)], entry{id: id, root: root, adapter: true, created: time.Now().Unix()})
	m.cat.Store(newCatalog(c.strict, entries, m.base))
	return true
}

// RemoveModel stops serving the model id, a base model or an adapter: it
// is no longer listed, and a strict mock (Config.Models) answers requests
// naming it 404. It reports false if id was not served.
func (m *Mock) RemoveModel(id string) bool { return m.remove(id, false) }

// remove removes id, only if it is an adapter when adaptersOnly.
func (m *Mock) remove(id string, adaptersOnly bool) bool {
	m.catMu.Lock()
	defer m.catMu.Unlock()
	c := m.cat.Load()
	entries := make([]entry, 0, len(c.entries))
	found := false
	for _, e := range c.entries {
		if e.id == id && (e.adapter || !adaptersOnly) {
			found = true
			continue
		}
		entries = append(entries, e)
	}
	if found {
		m.cat.Store(newCatalog(c.strict, entries, m.base))
	}
	return found
}

// Models returns the ids of the models the mock serves now, in the order
// GET /v1/models lists them.
func (m *Mock) Models() []string {
	c := m.cat.Load()
	ids := make([]string, len(c.entries))
	for i, e := range c.entries {
		ids[i] = e.id
	}
	return ids
}

// loraRequest is the body of vLLM's POST /v1/load_lora_adapter and
// /v1/unload_lora_adapter.
type loraRequest struct {
	Name string `json:"lora_name"`
	Path string `json:"lora_path"`
}

// loadAdapter answers POST /v1/load_lora_adapter as vLLM does: 200 and a
// line of text once loaded; 400 without lora_name or lora_path, or for a
// name already served.
func (m *Mock) loadAdapter(ctx *fasthttp.RequestCtx) {
	var req loraRequest
	if !parseBody(ctx, &req) {
		return
	}
	if req.Name == "" || req.Path == "" {
		badRequest(ctx, "Both 'lora_name' and 'lora_path' must be provided.", "", "invalid_value")
		return
	}
	if !m.add(req.Name, req.Path) {
		badRequest(ctx, "The lora adapter '"+req.Name+"' has already been loaded.", "lora_name", "invalid_value")
		return
	}
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("Success: LoRA adapter '" + req.Name + "' added successfully.")
}

// unloadAdapter answers POST /v1/unload_lora_adapter as vLLM does: 200
// and a line of text once unloaded; 400 without lora_name; 404 for a name
// that is not a loaded adapter (base models are never unloaded).
func (m *Mock) unloadAdapter(ctx *fasthttp.RequestCtx) {
	var req loraRequest
	if !parseBody(ctx, &req) {
		return
	}
	if req.Name == "" {
		badRequest(ctx, "'lora_name' must be provided.", "", "invalid_value")
		return
	}
	if !m.remove(req.Name, true) {
		writeError(ctx, fasthttp.StatusNotFound, []byte("The lora adapter '"+req.Name+"' cannot be found."), "lora_name", "not_found")
		return
	}
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("Success: LoRA adapter '" + req.Name + "' removed successfully.")
}

// modelNotFound answers a request naming a model a strict mock does not
// serve, as vLLM does (404).
func modelNotFound(ctx *fasthttp.RequestCtx, model []byte) {
	msg := append([]byte("The model `"), model...)
	msg = append(msg, "` does not exist."...)
	writeError(ctx, fasthttp.StatusNotFound, msg, "model", "model_not_found")
}
