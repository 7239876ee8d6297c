package proxy

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/authgate/authgate/internal/safelog"
	"github.com/authgate/authgate/internal/upstreamspec"
)

// Model is one entry of the gateway's model list (Proxy.Models).
type Model struct {
	// ID is the model's id, as clients name it.
	ID string
	// JSON is the entry, a JSON object: as the upstream listed it, or with
	// its "id" replaced for an alias, or made up for a declared model.
	JSON []byte
}

// Bounds of a model list read from an upstream: over them the list is not
// used (docs/configuration.md#models-and-routing).
const (
	maxModels        = 4096
	maxModelListBody = 4 << 20
)

// modelSet is the models one upstream serves. It is not modified once
// stored in upstream.models.
type modelSet struct {
	models []Model // in the upstream's order, each id once
	key    string  // the ids, sorted and length-prefixed: equal keys, equal sets
}

func newModelSet(models []Model) *modelSet {
	ids := make([]string, len(models))
	for i, m := range models {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	var key []byte
	for _, id := range ids {
		key = strconv.AppendInt(key, int64(len(id)), 10)
		key = append(key, ':')
		key = append(key, id...)
	}
	return &modelSet{models: models, key: string(key)}
}

// declaredSet is the set of an upstream's models= option, each entry made
// up with created as its "created" time.
func declaredSet(ids []string, created int64) *modelSet {
	models := make([]Model, len(ids))
	for i, id := range ids {
		models[i] = Model{ID: id, JSON: madeUpEntry(id, created)}
	}
	return newModelSet(models)
}

// madeUpEntry is the model list entry of a model the gateway knows only by
// its id.
func madeUpEntry(id string, created int64) []byte {
	var a fastjson.Arena
	o := a.NewObject()
	o.Set("id", a.NewString(id))
	o.Set("object", a.NewString("model"))
	o.Set("created", a.NewNumberInt(int(created)))
	o.Set("owned_by", a.NewString("authgate"))
	return o.MarshalTo(nil)
}

// renamedEntry is entry with its "id" replaced by id.
func renamedEntry(entry []byte, id string) []byte {
	var p fastjson.Parser
	v, err := p.ParseBytes(entry)
	if err != nil || v.Type() != fastjson.TypeObject {
		panic("BUG: a stored model list entry does not parse")
	}
	var a fastjson.Arena
	v.Set("id", a.NewString(id))
	return v.MarshalTo(nil)
}

// Why a model list read from an upstream is not used.
var (
	errListNotJSON  = safelog.Fixed("model list is not JSON")
	errListShape    = safelog.Fixed("model list has no data array of objects")
	errListEntry    = safelog.Fixed("model list entry without a valid id")
	errListTooMany  = safelog.Fixed("model list holds over 4096 models")
	errListTooLarge = safelog.Fixed("model list body over 4 MiB")
)

// errListStatus is the status of a model list request other than 200.
type errListStatus struct{ code int }

func (e *errListStatus) Error() string {
	return "model list answered " + fasthttp.StatusMessage(e.code)
}
func (e *errListStatus) ErrClass() string { return e.Error() }

// parseModelList reads an OpenAI model list,
// {"object":"list","data":[{"id":"m",…},…]}, into its entries, each id once
// (the first entry of an id is kept) and each entry's JSON as the upstream
// wrote it, whitespace aside. An id is 1 to upstreamspec.MaxModelID bytes
// of UTF-8.
func parseModelList(body []byte) ([]Model, error) {
	// The parser lets invalid escapes through, and MarshalTo would pass
	// them on: the validator does not.
	if fastjson.ValidateBytes(body) != nil {
		return nil, errListNotJSON
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, errListNotJSON
	}
	data := v.Get("data")
	if data == nil || data.Type() != fastjson.TypeArray {
		return nil, errListShape
	}
	entries, _ := data.Array()
	if len(entries) > maxModels {
		return nil, errListTooMany
	}
	models := make([]Model, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if e.Type() != fastjson.TypeObject {
			return nil, errListShape
		}
		id := e.GetStringBytes("id")
		if len(id) == 0 || len(id) > upstreamspec.MaxModelID || !utf8.Valid(id) {
			return nil, errListEntry
		}
		if seen[string(id)] {
			continue
		}
		m := Model{ID: string(id), JSON: e.MarshalTo(nil)}
		seen[m.ID] = true
		models = append(models, m)
	}
	return models, nil
}

// discovered records what reading up's model list gave: the models, or
// why there are none. A list whose ids are those already stored leaves
// the stored one (and its entries) in place; a new one is stored and
// logged. A failure keeps the stored list, and is logged when its class
// changes. It runs on up's check goroutine only.
func (h *healthChecker) discovered(up *upstream, models []Model, err error) {
	if err != nil {
		class := safelog.Class(err, "malformed response")
		if class == up.health.listErr {
			return
		}
		up.health.listErr = class
		if up.models.Load() == nil {
			h.log.Warn("cannot read the upstream's model list: it gets requests for any model until it can", "upstream", up.name, "err", class)
		} else {
			h.log.Warn("cannot read the upstream's model list: keeping the last one read", "upstream", up.name, "err", class)
		}
		return
	}
	up.health.listErr = ""
	set := newModelSet(models)
	if old := up.models.Load(); old != nil && old.key == set.key {
		return
	}
	up.models.Store(set)
	h.log.Info("upstream now serves", "upstream", up.name, "models", logIDs(set.models), "count", len(set.models))
}

// How many model ids, and how much of each, a log line shows.
const (
	logMaxIDs    = 16
	logMaxIDSize = 64
)

// logIDs returns the first logMaxIDs ids of models, each cut to
// logMaxIDSize bytes: an upstream's list may be long, and its ids long.
func logIDs(models []Model) []string {
	out := make([]string, 0, min(len(models), logMaxIDs))
	for _, m := range models[:min(len(models), logMaxIDs)] {
		id := m.ID
		if len(id) > logMaxIDSize {
			id = id[:logMaxIDSize]
			for !utf8.ValidString(id) {
				id = id[:len(id)-1]
			}
			id += "…"
		}
		out = append(out, id)
	}
	return out
}

// isBodyTooLarge reports whether err is fasthttp's for a response body
// over the client's limit.
func isBodyTooLarge(err error) bool { return errors.Is(err, fasthttp.ErrBodyTooLarge) }

// ModelListJSON is the gateway's GET /v1/models answer: Models in
// OpenAI's list shape, only those allow accepts.
func (p *Proxy) ModelListJSON(allow func(id string) bool) []byte {
	out := append([]byte(nil), `{"object":"list","data":[`...)
	n := 0
	for _, m := range p.Models() {
		if !allow(m.ID) {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, m.JSON...)
		n++
	}
	return append(out, "]}"...)
}

// ModelJSON is the entry of Models with this id, if there is one.
func (p *Proxy) ModelJSON(id string) ([]byte, bool) {
	models := p.Models()
	i, ok := slices.BinarySearchFunc(models, id, func(m Model, id string) int { return strings.Compare(m.ID, id) })
	if !ok {
		return nil, false
	}
	return models[i].JSON, true
}
