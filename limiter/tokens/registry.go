package tokens

import (
	"sync"
	"time"
)

// Config configures a Registry; the zero Config is valid.
type Config struct {
	// Period is the TPM window's length; zero means 60 s.
	Period time.Duration
	// State is the TPD counts to start from, as read by LoadState at
	// start: each key_id's Limiter starts its day with the state's total.
	// nil starts every key_id at zero.
	State *State
	// Store, if set, shares every key_id's limits with the other
	// processes using it (see Store); FailureMode says what happens to a
	// request it cannot decide. nil: the limits are this process's.
	Store       Store
	FailureMode FailureMode
}

// Registry holds one Limiter per key_id, created on the key_id's first
// request, so that key_ids never used cost nothing. It keeps a key_id's
// counts across reloads that keep the key_id (Sync) and across restarts
// through a State (Config.State, Registry.State, Saver).
//
// The zero value is not usable; create a Registry with NewRegistry. A
// Registry is safe for concurrent use.
type Registry struct {
	m      sync.Map // key_id → *Limiter
	period time.Duration
	store  Store
	mode   FailureMode

	mu sync.Mutex
	// restored is Config.State's totals of the key_ids not yet in m, so
	// that a State saved before their first request still holds them.
	restored map[string]dayTotal
}

// dayTotal is one key_id's TPD total of a UTC day (days since 1970-01-01).
type dayTotal struct {
	day, tokens int64
}

// NewRegistry returns an empty Registry configured by cfg.
func NewRegistry(cfg Config) *Registry {
	r := &Registry{period: cfg.Period, store: cfg.Store, mode: cfg.FailureMode, restored: map[string]dayTotal{}}
	if cfg.State != nil {
		for id, e := range cfg.State.Keys {
			if day, ok := parseDay(e.Date); ok {
				r.restored[id] = dayTotal{day, e.Tokens}
			}
		}
	}
	return r
}

// Get returns keyID's Limiter, creating it with limits lim if it has none;
// an existing Limiter keeps its limits (SetLimits and Sync change them).
// Get does not allocate once the key_id has a Limiter. keyID is kept as
// the map key: pass a string of its own, never an unsafe view of request
// bytes that change when the request is reused.
func (r *Registry) Get(keyID string, lim Limits) *Limiter {
	if l, ok := r.m.Load(keyID); ok {
		return l.(*Limiter)
	}
	l := NewLimiter(lim, r.period)
	l.keyID, l.store, l.mode = keyID, r.store, r.mode
	r.mu.Lock()
	e, restored := r.restored[keyID]
	r.mu.Unlock()
	if restored {
		l.restoreDay(e.day, e.tokens)
	}
	got, loaded := r.m.LoadOrStore(keyID, l)
	if !loaded && restored {
		r.mu.Lock()
		delete(r.restored, keyID)
		r.mu.Unlock()
	}
	return got.(*Limiter)
}

// SetLimits changes keyID's limits, if it has a Limiter, keeping its
// counts.
func (r *Registry) SetLimits(keyID string, lim Limits) {
	if l, ok := r.m.Load(keyID); ok {
		l.(*Limiter).SetLimits(lim)
	}
}

// Sync applies a reload: the key_ids in limits keep their Limiters and
// counts, with their limits updated; the others are forgotten, their TPD
// total of the day included (a key_id added back starts from zero).
func (r *Registry) Sync(limits map[string]Limits) {
	r.m.Range(func(k, v any) bool {
		if lim, ok := limits[k.(string)]; ok {
			v.(*Limiter).SetLimits(lim)
		} else {
			r.m.Delete(k)
		}
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.restored {
		if _, ok := limits[id]; !ok {
			delete(r.restored, id)
		}
	}
}

// Range calls f for each key_id's Limiter until f returns false, as
// sync.Map.Range does.
func (r *Registry) Range(f func(keyID string, l *Limiter) bool) {
	r.m.Range(func(k, v any) bool {
		return f(k.(string), v.(*Limiter))
	})
}

// State returns every key_id's TPD total (committed plus reserved tokens)
// of now's UTC day, for a Saver; key_ids with none are left out.
func (r *Registry) State(now time.Time) *State {
	today := floorDiv(now.UnixNano(), dayNanos)
	date := formatDay(today)
	s := &State{Keys: map[string]DayTotal{}}
	r.m.Range(func(k, v any) bool {
		if day, tokens := v.(*Limiter).dayTotal(); day == today && tokens > 0 {
			s.Keys[k.(string)] = DayTotal{Date: date, Tokens: tokens}
		}
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, e := range r.restored {
		if _, ok := s.Keys[id]; !ok && e.day == today && e.tokens > 0 {
			s.Keys[id] = DayTotal{Date: date, Tokens: e.tokens}
		}
	}
	return s
}
