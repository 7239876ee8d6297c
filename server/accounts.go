package server

import (
	"slices"
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
	acc     atomic.Pointer[keyAccess]
}

// keyAccess is what a key_id's settings allow: its models and expiry
// (docs/keys-file.md#settings). It is replaced whole when a reload
// changes them.
type keyAccess struct {
	models  []string  // patterns; nil: every model
	expires time.Time // zero: never
	body401 []byte    // the 401 once expired
}

// noLimits is the access of an account without settings.
var noLimits = &keyAccess{}

// access returns a's current access.
func (a *account) access() *keyAccess {
	if k := a.acc.Load(); k != nil {
		return k
	}
	return noLimits
}

// expired reports whether the key_id's keys have stopped working at now.
func (k *keyAccess) expired(now time.Time) bool {
	return !k.expires.IsZero() && !now.Before(k.expires)
}

// setAccess makes a's access that of settings s, unless it already is.
func (a *account) setAccess(s auth.Settings) {
	old := a.access()
	if slices.Equal(old.models, s.ModelPatterns()) && old.expires.Equal(s.Expires) {
		return
	}
	k := &keyAccess{models: s.ModelPatterns(), expires: s.Expires}
	if !k.expires.IsZero() {
		k.body401 = []byte(`{"error":{"message":"The API key of key_id ` + a.keyID + ` expired at ` +
			k.expires.Format(time.RFC3339) + `.","type":"invalid_request_error","param":"authorization","code":"expired_api_key"}}`)
	}
	a.acc.Store(k)
}

// accounts holds every key_id's account, created on the key_id's first
// request, so that key_ids never used cost nothing and unknown keys never
// reach it. Keyed by key_id, it carries limiter state across reloads.
type accounts struct {
	m      sync.Map      // key_id → *account
	period time.Duration // the windows' length: Config.RateWindow
}

// get returns keyID's account, creating it with limit rpm and access s if
// it has none.
func (as *accounts) get(keyID string, rpm int, s auth.Settings) *account {
	if a, ok := as.m.Load(keyID); ok {
		return a.(*account)
	}
	a := &account{
		keyID:   keyID,
		window:  limiter.NewWindow(rpm, as.period),
		body429: rateLimitBody(keyID),
	}
	a.setAccess(s)
	got, _ := as.m.LoadOrStore(keyID, a)
	return got.(*account)
}

// sync applies a newly loaded key set: key_ids it keeps keep their state,
// with their limit updated; key_ids it drops are freed.
func (as *accounts) sync(keys *auth.KeySet, defaultRPM int) {
	keep := make(map[string]*auth.Identity, len(keys.Identities()))
	for _, id := range keys.Identities() {
		keep[id.KeyID] = id
	}
	as.m.Range(func(k, v any) bool {
		id, ok := keep[k.(string)]
		if !ok {
			as.m.Delete(k)
			return true
		}
		a := v.(*account)
		if rpm := limitOf(id, defaultRPM); a.window.Limit() != rpm {
			a.window.SetLimit(rpm)
		}
		a.setAccess(id.Settings)
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
	a := as.get(id.KeyID, limitOf(id, s.defaultRPM), id.Settings)
	slot.Store(a)
	return a
}
