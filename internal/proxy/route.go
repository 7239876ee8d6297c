package proxy

import (
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/apierr"
)

// routeTable is what routing by model reads
// (docs/http.md#models-and-routing): which upstreams serve which model,
// and the model list. It is built from every upstream's model set and
// health, at New and after a check round that changed one of them, and
// is not modified once published in Proxy.table: readers never lock.
type routeTable struct {
	all      []*upstream       // every upstream, in config order
	byModel  map[string]*route // a model id some upstream lists → those that list it
	catchAll []*upstream       // the upstreams that list no model: any model (see buildTable)
	routing  bool              // Proxy.Routing
	onePool  bool              // Proxy.DefaultPool
	known    bool              // Proxy.ModelsKnown
	models   []Model           // Proxy.Models

	// What it was built from, in the order of all.
	sets    []*modelSet
	healthy []bool
}

// route is the upstreams that list one model.
type route struct {
	id  string
	ups []*upstream // in config order
}

// body404Model answers a request for a model no upstream serves any
// more: its last upstream dropped it between the caller's Resolve and
// ServeModel.
var body404Model = apierr.Body("The model does not exist", "invalid_request_error", "model_not_found")

// buildTable builds the route table of p's upstreams as they are now. An
// upstream without a model list is a catch-all, except one whose list is
// to be read but never was, while it fails its checks: at start, before
// the first check, every such upstream is one.
func (p *Proxy) buildTable() *routeTable {
	t := &routeTable{
		all:     p.ups,
		byModel: map[string]*route{},
		sets:    make([]*modelSet, len(p.ups)),
		healthy: make([]bool, len(p.ups)),
	}
	pools := map[string]bool{} // a set's key, or "*" for any model
	entries := map[string][]byte{}
	healthyCatchAll := false
	for i, up := range p.ups {
		set, healthy := up.models.Load(), up.healthy.Load()
		t.sets[i], t.healthy[i] = set, healthy
		if set == nil {
			if up.discover && !healthy {
				// Its list was never read, and it does not answer: not a
				// pool of its own until it does.
				continue
			}
			t.catchAll = append(t.catchAll, up)
			pools["*"] = true // no set's key: those start with a digit, or are empty
			healthyCatchAll = healthyCatchAll || healthy
			continue
		}
		t.known = true
		pools[set.key] = true
		for _, m := range set.models {
			r := t.byModel[m.ID]
			if r == nil {
				r = &route{id: m.ID}
				t.byModel[m.ID] = r
			}
			r.ups = append(r.ups, up)
			if _, ok := entries[m.ID]; healthy && !ok {
				entries[m.ID] = m.JSON // the first upstream's entry
			}
		}
	}
	t.routing = len(pools) > 1 || len(p.aliases) > 0
	t.onePool = len(pools) <= 1

	// An alias is listed while its model is: as its model's entry, or
	// made up when only a catch-all serves it. It hides a model of its
	// name (never another alias's model: those are no aliases).
	var aliased []Model
	for _, alias := range p.aliasIDs {
		target := p.aliases[alias].model
		if e, ok := entries[target]; ok {
			aliased = append(aliased, Model{ID: alias, JSON: renamedEntry(e, alias)})
		} else if t.byModel[target] == nil && healthyCatchAll {
			aliased = append(aliased, Model{ID: alias, JSON: madeUpEntry(alias, p.created)})
		}
	}
	for _, alias := range p.aliasIDs {
		delete(entries, alias)
	}
	t.models = make([]Model, 0, len(entries)+len(aliased))
	for id, e := range entries {
		t.models = append(t.models, Model{ID: id, JSON: e})
	}
	t.models = append(t.models, aliased...)
	slices.SortFunc(t.models, func(a, b Model) int { return strings.Compare(a.ID, b.ID) })
	return t
}

// refreshTable publishes a new route table if an upstream's model set or
// health changed since the current one was built. The health checker
// calls it after each round; it is its only caller after New.
func (p *Proxy) refreshTable() {
	t := p.table.Load()
	for i, up := range p.ups {
		if up.models.Load() != t.sets[i] || up.healthy.Load() != t.healthy[i] {
			p.table.Store(p.buildTable())
			return
		}
	}
}

// Routing reports whether requests must be inspected to be routed: the
// upstreams do not all serve the same models (catch-alls, which serve any
// model, count as one pool of their own), or aliases are configured.
// Otherwise Serve alone is needed. It may change after a health check
// round, as upstreams' model lists do.
func (p *Proxy) Routing() bool { return p.table.Load().routing }

// DefaultPool reports whether a request that names no model has a pool to
// go to: every upstream serves the same models (or there is none).
// ServeModel(ctx, "") then uses every upstream.
func (p *Proxy) DefaultPool() bool { return p.table.Load().onePool }

// ModelsKnown reports whether any upstream has a model list, declared or
// read from it; if none has, Models is empty and GET /v1/models is best
// proxied to an upstream.
func (p *Proxy) ModelsKnown() bool { return p.table.Load().known }

// Models returns the gateway's model list as of the last health check
// round: every model a healthy upstream lists, once (the entry of the
// first such upstream in config order), and every alias whose model is
// served by a healthy upstream (a catch-all included), sorted by ID. The
// slice is shared: callers must not modify it or its entries.
func (p *Proxy) Models() []Model { return p.table.Load().models }

// alias is a name of Config.Aliases and the model it stands for.
type alias struct{ name, model string }

// Resolve returns, for a request naming model, the name it is known by
// and the model it is served by: for an alias, the alias and its model;
// else model itself, twice. It reports whether some upstream, healthy or
// not, lists the served model, or a catch-all exists. When known is
// false, name and served are the alias and its model for an alias, else
// empty. The names are the route table's own strings: it does not
// allocate, except for a model no upstream lists but a catch-all serves
// (name and served are then one copy of model).
func (p *Proxy) Resolve(model []byte) (name, served string, known bool) {
	t := p.table.Load()
	if a, ok := p.aliases[string(model)]; ok {
		return a.name, a.model, t.byModel[a.model] != nil || len(t.catchAll) > 0
	}
	if r := t.byModel[string(model)]; r != nil {
		return r.id, r.id, true
	}
	if len(t.catchAll) > 0 {
		s := string(model)
		return s, s, true
	}
	return "", "", false
}

// Listed returns the name of model as the route table holds it, if an
// upstream lists it or it is an alias: a string of the gateway's own for
// a name read from elsewhere (a response's "model"), or false.
func (p *Proxy) Listed(model []byte) (string, bool) {
	if a, ok := p.aliases[string(model)]; ok {
		return a.name, true
	}
	if r := p.table.Load().byModel[string(model)]; r != nil {
		return r.id, true
	}
	return "", false
}

// ServeModel is Serve restricted to the upstreams that serve the model
// served (as Resolve returned it): those that list it, or the catch-alls
// if none does. Balancing and the retry of a refused connection stay
// within them; with none of them healthy the request is answered 502
// upstream_unavailable. Empty served means every upstream, the default
// pool when DefaultPool reports true. A served model no upstream serves
// any more (it was dropped since Resolve) is answered 404
// model_not_found. It does not allocate.
func (p *Proxy) ServeModel(ctx *fasthttp.RequestCtx, served string) (name string, bodyLeft bool) {
	ups, ok := p.table.Load().pool(served)
	if !ok {
		apierr.Write(ctx, fasthttp.StatusNotFound, body404Model)
		return "", false
	}
	return p.serve(ctx, ups)
}

// AcceptsStreamOptions reports whether every upstream that may serve
// the model served ("" for the default pool) takes a request with
// stream_options: none of them is set stream-options=off.
func (p *Proxy) AcceptsStreamOptions(served string) bool {
	ups, _ := p.table.Load().pool(served)
	for _, up := range ups {
		if up.noStreamOptions {
			return false
		}
	}
	return true
}

// pool returns the upstreams that serve the model served (every upstream
// for ""), and reports false if none does.
func (t *routeTable) pool(served string) ([]*upstream, bool) {
	if served == "" {
		return t.all, true
	}
	if r := t.byModel[served]; r != nil {
		return r.ups, true
	}
	return t.catchAll, len(t.catchAll) > 0
}
