package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/stats"
	"github.com/authgate/authgate/limiter"
)

// account is what the request path needs for one key_id: its limiter window
// and its precomputed 429 body. It is shared by every key of the key_id and
// outlives reloads that keep the key_id.
type account struct {
	keyID   string
	window  *limiter.Window // nil: not rate-limited (auth disabled, fail-open)
	body429 []byte
	stats   stats.Requests // its metrics
}

// accounts holds every key_id's account, created on the key_id's first
// request, so that key_ids never used cost nothing and unknown keys never
// reach it. Keyed by key_id, it carries limiter state across reloads.
type accounts struct {
	m      sync.Map      // key_id → *account
	period time.Duration // the windows' length: Config.RateWindow
}

// get returns keyID's account, creating it with limit rpm if it has none.
func (as *accounts) get(keyID string, rpm int) *account {
	if a, ok := as.m.Load(keyID); ok {
		return a.(*account)
	}
	a, _ := as.m.LoadOrStore(keyID, &account{
		keyID:   keyID,
		window:  limiter.NewWindow(rpm, as.period),
		body429: rateLimitBody(keyID),
	})
	return a.(*account)
}

// sync applies a newly loaded key set: key_ids it keeps keep their state,
// with their limit updated; key_ids it drops are freed.
func (as *accounts) sync(keys *auth.KeySet, defaultRPM int) {
	keep := make(map[string]int, len(keys.Identities()))
	for _, id := range keys.Identities() {
		keep[id.KeyID] = limitOf(id, defaultRPM)
	}
	as.m.Range(func(k, v any) bool {
		rpm, ok := keep[k.(string)]
		switch {
		case !ok:
			as.m.Delete(k)
		case v.(*account).window.Limit() != rpm:
			v.(*account).window.SetLimit(rpm)
		}
		return true
	})
}

// each calls f for every account in use.
func (as *accounts) each(f func(*account)) {
	as.m.Range(func(_, v any) bool {
		f(v.(*account))
		return true
	})
}

// limitOf is id's limit: its rpm= setting, else the default.
func limitOf(id *auth.Identity, defaultRPM int) int {
	if id.Settings.RPM > 0 {
		return id.Settings.RPM
	}
	return defaultRPM
}

// keySnapshot is one published key set. It is immutable but for its account
// slots: each caches its key_id's account the first time the key_id is used
// under this snapshot, so the request path looks the account up once per
// snapshot rather than once per request.
type keySnapshot struct {
	keys       *auth.KeySet
	slots      []atomic.Pointer[account] // by auth.Identity.Index
	defaultRPM int
}

func newKeySnapshot(keys *auth.KeySet, defaultRPM int) *keySnapshot {
	return &keySnapshot{
		keys:       keys,
		slots:      make([]atomic.Pointer[account], len(keys.Identities())),
		defaultRPM: defaultRPM,
	}
}

// account returns id's account.
func (s *keySnapshot) account(as *accounts, id *auth.Identity) *account {
	slot := &s.slots[id.Index]
	if a := slot.Load(); a != nil {
		return a
	}
	a := as.get(id.KeyID, limitOf(id, s.defaultRPM))
	slot.Store(a)
	return a
}
