// Package accounts holds what the request path needs for each key_id: its
// request window, its precomputed 429 body, its counters and its access
// (models, expiry). An Account is shared by every key of its key_id and
// outlives reloads that keep the key_id; a Snapshot is one published key
// set, caching each key_id's Account on first use.
package accounts

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/stats"
	"github.com/authgate/authgate/limiter"
	"github.com/authgate/authgate/limiter/tokens"
)

// account is what the request path needs for one key_id: its limiter window
// and its precomputed 429 body. It is shared by every key of the key_id and
// outlives reloads that keep the key_id.
type Account struct {
	KeyID   string
	Window  *limiter.Window // nil: not rate-limited (auth disabled, fail-open)
	Body429 []byte
	Stats   stats.Requests // its metrics
	// inflight counts the key_id's requests in flight, streams included,
	// held to its concurrency= (Acquire); shared pseudo key_ids have none.
	inflight atomic.Int64
	// Tokens holds the key_id to its tpm= and tpd= (or the defaults):
	// reserve at admission, reconcile at the end (docs/http.md#token-limits);
	// nil for a shared pseudo key_id.
	Tokens       *tokens.Limiter
	tokenLimited atomic.Bool // Tokens has a limit on: set with its limits
	acc          atomic.Pointer[Access]
}

// setTokenLimits sets a's token limits to l.
func (a *Account) setTokenLimits(l tokens.Limits) {
	a.Tokens.SetLimits(l)
	a.tokenLimited.Store(l.TPM > 0 || l.TPD > 0)
}

// Acquire takes one of the key_id's concurrency slots for an admitted
// request, which must release it as it ends; or returns the status and
// body refusing a request over the key_id's concurrency=
// (docs/http.md#rate-limit): 429, or 503 when the slots are shared
// through a Store that cannot decide and the failure mode is closed. A
// local slot is an atomic count: a request is admitted only if, counted,
// the requests in flight are at most the limit, so never more are.
func (a *Account) Acquire() (Slot, int, []byte) {
	if a.Window == nil {
		return Slot{}, 0, nil // a shared pseudo key_id: not counted
	}
	k := a.Access()
	if k.Concurrency > 0 && a.Tokens != nil {
		if lease, r, ok := a.Tokens.AcquireSlot(int64(k.Concurrency)); ok {
			switch r.Kind {
			case tokens.Admitted:
				a.inflight.Add(1)
				return Slot{a, lease}, 0, nil
			case tokens.Unavailable:
				return Slot{}, fasthttp.StatusServiceUnavailable, apierr.LimiterUnavailable
			}
			return Slot{}, fasthttp.StatusTooManyRequests, k.BodyBusy
		}
	}
	if n := a.inflight.Add(1); k.Concurrency > 0 && n > int64(k.Concurrency) {
		a.inflight.Add(-1)
		return Slot{}, fasthttp.StatusTooManyRequests, k.BodyBusy
	}
	return Slot{a, nil}, 0, nil
}

// InFlight returns the key_id's requests in flight.
func (a *Account) InFlight() int64 { return a.inflight.Load() }

// Slot is an admitted request's concurrency slot, from Acquire: release
// it once, as the request ends. Release on a released or zero Slot does
// nothing.
type Slot struct {
	a     *Account
	lease tokens.Lease // the slot in a Store; nil for a local one
}

// Release gives the slot back.
func (s *Slot) Release() {
	if s.a != nil {
		s.a.inflight.Add(-1)
		if s.lease != nil {
			s.lease.Finish(0)
		}
		*s = Slot{}
	}
}

// TokenLimited reports whether a's requests are held to a token limit.
func (a *Account) TokenLimited() bool { return a.tokenLimited.Load() }

// Access is what a key_id's settings allow: its models and expiry
// (docs/keys-file.md#settings). It is replaced whole when a reload
// changes them.
type Access struct {
	Models  []string  // patterns; nil: every model
	Expires time.Time // zero: never
	Body401 []byte    // the 401 once expired
	// Concurrency is the concurrency= setting (0: none), and BodyBusy the
	// 429 of a request over it.
	Concurrency int
	BodyBusy    []byte
}

// noLimits is the access of an account without settings.
var noLimits = &Access{}

// access returns a's current access.
func (a *Account) Access() *Access {
	if k := a.acc.Load(); k != nil {
		return k
	}
	return noLimits
}

// expired reports whether the key_id's keys have stopped working at now.
func (k *Access) Expired(now time.Time) bool {
	return !k.Expires.IsZero() && !now.Before(k.Expires)
}

// setAccess makes a's access that of settings s, unless it already is.
func (a *Account) SetAccess(s auth.Settings) {
	old := a.Access()
	if slices.Equal(old.Models, s.ModelPatterns()) && old.Expires.Equal(s.Expires) && old.Concurrency == s.Concurrency {
		return
	}
	k := &Access{Models: s.ModelPatterns(), Expires: s.Expires, Concurrency: s.Concurrency}
	if s.Concurrency > 0 {
		msg := tokens.AppendMessage(nil, a.KeyID, tokens.Result{Kind: tokens.ConcurrencyExceeded, Scope: tokens.ScopeConcurrency, Limit: int64(s.Concurrency)})
		k.BodyBusy = apierr.Body(string(msg), "rate_limit_error", tokens.CodeConcurrencyLimitExceeded)
	}
	if !k.Expires.IsZero() {
		k.Body401 = []byte(`{"error":{"message":"The API key of key_id ` + a.KeyID + ` expired at ` +
			k.Expires.Format(time.RFC3339) + `.","type":"invalid_request_error","param":"authorization","code":"expired_api_key"}}`)
	}
	a.acc.Store(k)
}

// accounts holds every key_id's account, created on the key_id's first
// request, so that key_ids never used cost nothing and unknown keys never
// reach it. Keyed by key_id, it carries limiter state across reloads.
type Registry struct {
	m      sync.Map      // key_id → *Account
	Period time.Duration // the windows' length: Config.RateWindow
	// Tokens holds the key_ids' token limiters (nil: none), with
	// DefaultTPM and DefaultTPD for key_ids without tpm= or tpd=.
	Tokens                 *tokens.Registry
	DefaultTPM, DefaultTPD int64
	// Store, if set before OpenTokens, shares the token limits and the
	// concurrency slots with other processes, StoreFailure saying what a
	// request gets when it cannot decide (tokens.Store).
	Store        tokens.Store
	StoreFailure tokens.FailureMode
	saver        *tokens.Saver // OpenTokens'; nil without a directory
	saverClosed  atomic.Bool
}

// StateSaveInterval is how often OpenTokens' saver saves the tokens of
// the day.
const StateSaveInterval = 5 * time.Second

// OpenTokens sets up the key_ids' token limiters, with TPM windows period
// long: with dir set, starting from the tokens of the day saved in dir
// (tokens.StateFile) and saving them there every StateSaveInterval until
// CloseTokens, so that a restart keeps them and a crash loses at most an
// interval. A file that cannot be read is an error, not a day from zero.
func (as *Registry) OpenTokens(period time.Duration, dir string) error {
	var state *tokens.State
	if dir != "" {
		var err error
		if state, err = tokens.LoadState(dir, time.Now()); err != nil {
			return fmt.Errorf("%w (in %s; remove the file to start the day from zero)", err, dir)
		}
	}
	as.Tokens = tokens.NewRegistry(tokens.Config{Period: period, State: state, Store: as.Store, FailureMode: as.StoreFailure})
	if dir != "" {
		as.saver = tokens.NewSaver(dir, as.Tokens, StateSaveInterval)
	}
	return nil
}

// CloseTokens stops the saver, if any, after a last save, whose error it
// returns; once.
func (as *Registry) CloseTokens() error {
	if as.saver == nil || !as.saverClosed.CompareAndSwap(false, true) {
		return nil
	}
	return as.saver.Close()
}

// tokenLimits are the token limits of a key_id with settings s.
func (as *Registry) tokenLimits(s auth.Settings) tokens.Limits {
	l := tokens.Limits{TPM: s.TPM, TPD: s.TPD}
	if l.TPM == 0 {
		l.TPM = as.DefaultTPM
	}
	if l.TPD == 0 {
		l.TPD = as.DefaultTPD
	}
	return l
}

// get returns keyID's account, creating it with limit rpm and access s if
// it has none.
func (as *Registry) Get(keyID string, rpm int, s auth.Settings) *Account {
	if a, ok := as.m.Load(keyID); ok {
		return a.(*Account)
	}
	a := &Account{
		KeyID:   keyID,
		Window:  limiter.NewWindow(rpm, as.Period),
		Body429: RateLimitBody(keyID),
	}
	if as.Tokens != nil {
		lim := as.tokenLimits(s)
		a.Tokens = as.Tokens.Get(keyID, lim)
		a.setTokenLimits(lim) // a Limiter kept across a reload keeps its counts
	}
	a.SetAccess(s)
	got, _ := as.m.LoadOrStore(keyID, a)
	return got.(*Account)
}

// sync applies a newly loaded key set: key_ids it keeps keep their state,
// with their limit updated; key_ids it drops are freed.
func (as *Registry) Sync(keys *auth.KeySet, defaultRPM int) {
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
		a := v.(*Account)
		if rpm := LimitOf(id, defaultRPM); a.Window.Limit() != rpm {
			a.Window.SetLimit(rpm)
		}
		a.SetAccess(id.Settings)
		if a.Tokens != nil {
			a.setTokenLimits(as.tokenLimits(id.Settings))
		}
		return true
	})
	if as.Tokens != nil {
		limits := make(map[string]tokens.Limits, len(keep))
		for k, id := range keep {
			limits[k] = as.tokenLimits(id.Settings)
		}
		as.Tokens.Sync(limits)
	}
}

// each calls f for every account in use.
func (as *Registry) Each(f func(*Account)) {
	as.m.Range(func(_, v any) bool {
		f(v.(*Account))
		return true
	})
}

// limitOf is id's limit: its rpm= setting, else the default.
func LimitOf(id *auth.Identity, defaultRPM int) int {
	if id.Settings.RPM > 0 {
		return id.Settings.RPM
	}
	return defaultRPM
}

// Snapshot is one published key set. It is immutable but for its account
// slots: each caches its key_id's account the first time the key_id is used
// under this snapshot, so the request path looks the account up once per
// snapshot rather than once per request.
type Snapshot struct {
	Keys       *auth.KeySet
	slots      []atomic.Pointer[Account] // by auth.Identity.Index
	defaultRPM int
}

func NewSnapshot(keys *auth.KeySet, defaultRPM int) *Snapshot {
	return &Snapshot{
		Keys:       keys,
		slots:      make([]atomic.Pointer[Account], len(keys.Identities())),
		defaultRPM: defaultRPM,
	}
}

// account returns id's account.
func (s *Snapshot) Account(as *Registry, id *auth.Identity) *Account {
	slot := &s.slots[id.Index]
	if a := slot.Load(); a != nil {
		return a
	}
	a := as.Get(id.KeyID, LimitOf(id, s.defaultRPM), id.Settings)
	slot.Store(a)
	return a
}

// NewShared returns the account of a pseudo key_id, shared by many
// clients' requests: not rate-limited, with sharded counters.
func NewShared(keyID string) *Account {
	return &Account{KeyID: keyID, Stats: stats.Requests{Shared: true}}
}

// RateLimitBody returns the 429 body for keyID. key_ids are [A-Za-z0-9_-]+
// (auth.ValidKeyID), so they need no escaping; the gateway's own pseudo
// key_ids are of the same alphabet.
func RateLimitBody(keyID string) []byte {
	return []byte(`{"error":{"message":"Rate limit exceeded for ` + keyID +
		`","type":"rate_limit_error","code":"rate_limit_exceeded"}}`)
}

// WriteMetrics appends authgate_requests_total and
// authgate_rate_limited_total of accts, sorted by key_id, in the
// Prometheus text format (docs/operations.md#metrics).
func WriteMetrics(bb *bytes.Buffer, accts []*Account) {
	slices.SortFunc(accts, func(a, b *Account) int { return strings.Compare(a.KeyID, b.KeyID) })
	type codeN struct {
		code int
		n    uint64
	}
	var codes []codeN
	metrics.WriteMetadataIfNeeded(bb, "authgate_requests_total", "counter")
	for _, a := range accts {
		codes = codes[:0]
		a.Stats.EachCode(func(code int, n uint64) { codes = append(codes, codeN{code, n}) })
		slices.SortFunc(codes, func(x, y codeN) int { return x.code - y.code })
		for _, c := range codes {
			fmt.Fprintf(bb, "authgate_requests_total{key_id=\"%s\",code=\"%d\"} %d\n", stats.EscapeLabel(a.KeyID), c.code, c.n)
		}
	}
	metrics.WriteMetadataIfNeeded(bb, "authgate_rate_limited_total", "counter")
	for _, a := range accts {
		if n, ok := a.Stats.RateLimitedCount(); ok {
			fmt.Fprintf(bb, "authgate_rate_limited_total{key_id=\"%s\"} %d\n", stats.EscapeLabel(a.KeyID), n)
		}
	}
	// The token limits' estimation error (docs/http.md#token-limits): the
	// tokens requests used beyond their reservations, and the requests in
	// flight, of each token-limited key_id.
	now := time.Now()
	metrics.WriteMetadataIfNeeded(bb, "authgate_tokens_over_reservation_total", "counter")
	for _, a := range accts {
		if a.TokenLimited() {
			u := a.Tokens.UsageAt(now)
			fmt.Fprintf(bb, "authgate_tokens_over_reservation_total{key_id=\"%s\"} %d\n", stats.EscapeLabel(a.KeyID), u.EstimationError)
		}
	}
	metrics.WriteMetadataIfNeeded(bb, "authgate_requests_in_flight", "gauge")
	for _, a := range accts {
		if a.Window != nil {
			fmt.Fprintf(bb, "authgate_requests_in_flight{key_id=\"%s\"} %d\n", stats.EscapeLabel(a.KeyID), a.InFlight())
		}
	}
}

// Delete forgets keyID's account: its next request starts a new one, with
// an empty window.
func (as *Registry) Delete(keyID string) { as.m.Delete(keyID) }

// Settings returns the settings in force for a's requests: its limit.
func (a *Account) Settings() auth.Settings {
	if a.Window == nil {
		return auth.Settings{}
	}
	return auth.Settings{RPM: a.Window.Limit()}
}

// KeyLimit is one key_id's entry in the /limits snapshot.
type KeyLimit struct {
	// RequestsLastMinute is the number of requests admitted in the sliding
	// window ending at the snapshot's instant.
	RequestsLastMinute int `json:"requests_last_minute"`
	// RateLimit is the key_id's limit per window.
	RateLimit int `json:"rate_limit"`
	// InFlight is the number of the key_id's requests in flight, streams
	// included, and Concurrency its concurrency= limit (omitted: none).
	InFlight    int64 `json:"in_flight"`
	Concurrency int   `json:"concurrency,omitempty"`
	// The key_id's tokens (docs/http.md#token-limits), when it has a
	// token limit: committed and reserved in the TPM window, committed and
	// reserved today (UTC), and the limits.
	TokensLastMinute  *int64 `json:"tokens_last_minute,omitempty"`
	TokensReserved    *int64 `json:"tokens_reserved,omitempty"`
	TokensToday       *int64 `json:"tokens_today,omitempty"`
	TokensReservedDay *int64 `json:"tokens_reserved_today,omitempty"`
	TokensPerMinute   int64  `json:"tpm,omitempty"`
	TokensPerDay      int64  `json:"tpd,omitempty"`
	// Shared is the key_id's state in the Store that shares its token and
	// concurrency limits between replicas (docs/operations.md#several-replicas),
	// when there is one and it answered; the fields above are then what
	// this process counted itself.
	Shared *tokens.StoreUsage `json:"shared,omitempty"`
}

// Limits returns the state at now of every rate-limited account, by
// key_id, for the admin /limits page. The map is the caller's.
func (as *Registry) Limits(now time.Time) map[string]KeyLimit {
	out := make(map[string]KeyLimit)
	usage, _ := as.Store.(interface {
		Usage(keyID string) (tokens.StoreUsage, error)
	})
	as.Each(func(a *Account) {
		if a.Window == nil {
			return
		}
		k := KeyLimit{RequestsLastMinute: a.Window.CountAt(now), RateLimit: a.Window.Limit(),
			InFlight: a.InFlight(), Concurrency: a.Access().Concurrency}
		if a.TokenLimited() {
			u := a.Tokens.UsageAt(now)
			k.TokensLastMinute, k.TokensReserved = &u.WindowUsed, &u.WindowReserved
			k.TokensToday, k.TokensReservedDay = &u.DayUsed, &u.DayReserved
			k.TokensPerMinute, k.TokensPerDay = u.Limits.TPM, u.Limits.TPD
		}
		if (a.TokenLimited() || k.Concurrency > 0) && usage != nil {
			if u, err := usage.Usage(a.KeyID); err == nil {
				k.Shared = &u
			}
		}
		out[a.KeyID] = k
	})
	return out
}
