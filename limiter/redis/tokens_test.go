package redis_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authgate/authgate/internal/redistest"
	"github.com/authgate/authgate/limiter/redis"
	"github.com/authgate/authgate/limiter/tokens"
)

// newTokens is a token Store on its own connection to url: one per
// simulated replica.
func newTokens(t *testing.T, url string, cfg redis.TokensConfig) *redis.Tokens {
	t.Helper()
	s := redis.NewTokens(newRedis(t, url, time.Minute), cfg)
	t.Cleanup(s.Close)
	return s
}

func usage(t *testing.T, s *redis.Tokens, keyID string) redis.Usage {
	t.Helper()
	u, err := s.Usage(keyID)
	if err != nil {
		t.Fatalf("Usage(%s): %v", keyID, err)
	}
	return u
}

// TestTokensSharedExactUnderConcurrency: four replicas admitting one
// key_id's requests at once admit exactly what the TPM limit holds, and
// reconciling replaces every reservation by the tokens used.
func TestTokensSharedExactUnderConcurrency(t *testing.T) {
	srv := redistest.Start(t)
	var stores []*redis.Tokens
	for range 4 {
		stores = append(stores, newTokens(t, srv.URL(), redis.TokensConfig{}))
	}
	lim := tokens.Limits{TPM: 1000, TPD: 5000}
	var (
		mu     sync.Mutex
		leases []tokens.Lease
		wg     sync.WaitGroup
	)
	for i := range 400 {
		wg.Go(func() {
			l, res, err := stores[i%4].Admit("k1", lim, 10)
			if err != nil {
				t.Errorf("Admit: %v", err)
				return
			}
			if res.Allowed() {
				mu.Lock()
				leases = append(leases, l)
				mu.Unlock()
			} else if res.Kind != tokens.Limited || res.Scope != tokens.ScopeTPM || res.RetryAfter <= 0 {
				t.Errorf("refusal %+v: want Limited by TPM with a retry time", res)
			}
		})
	}
	wg.Wait()
	if len(leases) != 100 {
		t.Fatalf("admitted %d of 400 requests of 10 tokens under tpm=1000, want exactly 100", len(leases))
	}
	u := usage(t, stores[0], "k1")
	if u.WindowTokens != 1000 || u.TokensReserved != 1000 || u.Reservations != 100 || u.DayTokens != 1000 {
		t.Fatalf("after admissions: %+v, want 1000 tokens in the window and the day, all reserved by 100 leases", u)
	}
	for i, l := range leases {
		l.Finish(int64(i % 7)) // 0..6 tokens used
	}
	var want int64
	for i := range leases {
		want += int64(i % 7)
	}
	u = usage(t, stores[1], "k1")
	if u.WindowTokens != want || u.DayTokens != want || u.TokensReserved != 0 || u.Reservations != 0 {
		t.Fatalf("after finishing: %+v, want %d tokens used in the window and the day, none reserved", u, want)
	}
	// The tokens freed by the reconciliation admit more.
	if _, res, err := stores[2].Admit("k1", lim, 1000-want); err != nil || !res.Allowed() || res.Remaining != 0 {
		t.Fatalf("Admit of the rest: %+v, %v: want admitted with 0 remaining", res, err)
	}
}

// TestTokensRefusals: the Results of refusals, as a local Limiter's.
func TestTokensRefusals(t *testing.T) {
	s := newTokens(t, redistest.Start(t).URL(), redis.TokensConfig{Period: 10 * time.Second})
	f := func(keyID string, lim tokens.Limits, n int64, kind tokens.Kind, scope tokens.Scope) tokens.Result {
		t.Helper()
		_, res, err := s.Admit(keyID, lim, n)
		if err != nil {
			t.Fatalf("Admit: %v", err)
		}
		if res.Kind != kind || (kind != tokens.Admitted && res.Scope != scope) {
			t.Fatalf("Admit(%s, %+v, %d) = %+v: want %v by %v", keyID, lim, n, res, kind, scope)
		}
		return res
	}
	tpm := tokens.Limits{TPM: 100}
	if r := f("a", tpm, 150, tokens.TooLarge, tokens.ScopeTPM); r.RetryAfter != 0 {
		t.Errorf("too large: RetryAfter %v, want none", r.RetryAfter)
	}
	r := f("a", tpm, 60, tokens.Admitted, tokens.ScopeTPM)
	if r.Used != 60 || r.Remaining != 40 || r.Reset <= 0 || r.Reset > 10*time.Second+20*time.Millisecond {
		t.Errorf("admission %+v: want Used 60, Remaining 40, Reset within the period", r)
	}
	r = f("a", tpm, 60, tokens.Limited, tokens.ScopeTPM)
	if r.Used != 60 || r.Requested != 60 || r.RetryAfter <= 0 || r.RetryAfter > 10*time.Second+20*time.Millisecond {
		t.Errorf("refusal %+v: want Used 60, Requested 60, a retry time within the period", r)
	}
	msg, code := tokens.Message("a", r)
	if code != tokens.CodeRateLimitExceeded || !strings.HasPrefix(msg, "Rate limit reached for a on tokens per min (TPM): Limit 100, Used 60, Requested 60. Please try again in ") {
		t.Errorf("message %q, code %q", msg, code)
	}
	tpd := tokens.Limits{TPD: 100}
	f("d", tpd, 101, tokens.TooLarge, tokens.ScopeTPD)
	f("d", tpd, 100, tokens.Admitted, tokens.ScopeTPD)
	now := time.Now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	r = f("d", tpd, 1, tokens.Limited, tokens.ScopeTPD)
	if d := r.RetryAfter - time.Until(midnight); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("TPD refusal retries in %v, want the time to the next UTC midnight (%v)", r.RetryAfter, time.Until(midnight))
	}
}

// TestTokensConcurrencySlots: a key_id's slots are shared by replicas;
// a finished request frees its slot at once.
func TestTokensConcurrencySlots(t *testing.T) {
	url := redistest.Start(t).URL()
	a, b := newTokens(t, url, redis.TokensConfig{}), newTokens(t, url, redis.TokensConfig{})
	lim := tokens.Limits{Concurrency: 2}
	l1, r1, _ := a.Admit("c", lim, 0)
	_, r2, _ := b.Admit("c", lim, 0)
	_, r3, err := b.Admit("c", lim, 0)
	if err != nil || !r1.Allowed() || !r2.Allowed() || r3.Kind != tokens.ConcurrencyExceeded || r3.Used != 2 {
		t.Fatalf("slots: %+v %+v %+v (%v): want two admitted, the third ConcurrencyExceeded", r1, r2, r3, err)
	}
	l1.Finish(0)
	if _, r, err := b.Admit("c", lim, 0); err != nil || !r.Allowed() {
		t.Fatalf("after a slot was freed: %+v, %v: want admitted", r, err)
	}
	if u := usage(t, a, "c"); u.InFlight != 2 || u.Reservations != 0 {
		t.Fatalf("usage %+v: want 2 slots held, no reservation", u)
	}
}

// TestTokensLeaseOfAKilledReplicaExpires: a replica that stops renewing
// (killed: its requests never finish) leaks its slots and reservations
// for no longer than the lease; its reserved tokens stay counted.
func TestTokensLeaseOfAKilledReplicaExpires(t *testing.T) {
	url := redistest.Start(t).URL()
	cfg := redis.TokensConfig{Lease: 900 * time.Millisecond}
	dead, live := newTokens(t, url, cfg), newTokens(t, url, cfg)
	lim := tokens.Limits{TPM: 1000, Concurrency: 1}
	if _, r, err := dead.Admit("k", lim, 50); err != nil || !r.Allowed() {
		t.Fatalf("Admit: %+v, %v", r, err)
	}
	// While the replica renews, its lease outlives several lease times.
	if _, r, err := live.Admit("k2", lim, 5); err != nil || !r.Allowed() {
		t.Fatalf("Admit: %+v, %v", r, err)
	}
	eventually(t, "three renewals (one lease time) of the live replica", func() bool {
		var b bytes.Buffer
		live.WriteMetrics(&b)
		return metricAtLeast(b.String(), "authgate_redis_lease_renewals_total", 3)
	})
	if u := usage(t, live, "k2"); u.InFlight != 1 || u.Reservations != 1 {
		t.Fatalf("a renewed lease: %+v, want its slot and reservation held", u)
	}
	dead.Close() // stops renewing, as a killed process does
	eventually(t, "the killed replica's slot and reservation expire", func() bool {
		u := usage(t, live, "k")
		return u.InFlight == 0 && u.Reservations == 0 && u.TokensReserved == 0
	})
	if u := usage(t, live, "k"); u.WindowTokens != 50 {
		t.Fatalf("after expiry the window holds %d tokens, want the 50 reserved (the request may have used them)", u.WindowTokens)
	}
	if _, r, err := live.Admit("k", lim, 10); err != nil || !r.Allowed() {
		t.Fatalf("the freed slot: %+v, %v: want admitted", r, err)
	}
}

// metricAtLeast reports whether the counter name in the text exposition
// is at least min.
func metricAtLeast(text, name string, min int) bool {
	for _, line := range strings.Split(text, "\n") {
		var v int
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			if _, err := fmt.Sscan(rest, &v); err == nil && v >= min {
				return true
			}
		}
	}
	return false
}

// TestTokensCluster: on a 3-node Redis Cluster, each key_id's keys live on
// one node (hash tags) and the limits are exact.
func TestTokensCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	a, b := newTokens(t, c.URL(), redis.TokensConfig{}), newTokens(t, c.URL(), redis.TokensConfig{})
	lim := tokens.Limits{TPM: 200, TPD: 1000, Concurrency: 5}
	var admitted [8]atomic.Int64
	var wg sync.WaitGroup
	for k := range admitted {
		for i := range 12 {
			wg.Go(func() {
				s := a
				if i%2 == 1 {
					s = b
				}
				_, res, err := s.Admit("key"+string(rune('a'+k)), lim, 30)
				if err != nil {
					t.Errorf("Admit: %v", err)
				} else if res.Allowed() {
					admitted[k].Add(1)
				}
			})
		}
	}
	wg.Wait()
	for k := range admitted {
		// 30 tokens each: 6 fit 200, but 5 slots: exactly 5 admitted.
		if n := admitted[k].Load(); n != 5 {
			t.Errorf("key_id %d: %d admitted, want exactly 5 (concurrency=5, tpm=200 holds 6)", k, n)
		}
	}
	nodes := 0
	for _, s := range c.Nodes {
		if out, err := s.Do("DBSIZE"); err == nil && out != ":0" {
			nodes++
		}
	}
	if nodes < 2 {
		t.Errorf("the key_ids' keys are on %d node(s), want them spread over the cluster", nodes)
	}
	// The request window (one key per key_id) runs on the cluster too.
	r := newRedis(t, c.URL(), time.Minute)
	for k := range 6 {
		key := "rpm" + string(rune('a'+k))
		if res := allow(t, r, key, 1); !res.Allowed {
			t.Errorf("%s: first request refused", key)
		}
		if res := allow(t, r, key, 1); res.Allowed {
			t.Errorf("%s: second request of a limit of 1 admitted", key)
		}
	}
}

// TestTokensFailureModes: with Redis gone, a Registry's limiters decide by
// the failure mode.
func TestTokensFailureModes(t *testing.T) {
	srv := redistest.Start(t)
	s := newTokens(t, srv.URL(), redis.TokensConfig{})
	srv.Kill()
	if _, _, err := s.Admit("k", tokens.Limits{TPM: 10}, 1); !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("Admit with Redis gone: %v, want ErrUnavailable", err)
	}
	f := func(mode tokens.FailureMode, n int64, want tokens.Kind) {
		t.Helper()
		reg := tokens.NewRegistry(tokens.Config{Store: s, FailureMode: mode})
		l := reg.Get("k", tokens.Limits{TPM: 100})
		a, r := l.Admit(time.Now(), n)
		defer a.Finish(0)
		if r.Kind != want {
			t.Errorf("mode %d, %d tokens: %v, want %v", mode, n, r.Kind, want)
		}
	}
	f(tokens.FailLocal, 150, tokens.TooLarge) // the local limit decides
	f(tokens.FailLocal, 50, tokens.Admitted)
	f(tokens.FailOpen, 150, tokens.Admitted)
	f(tokens.FailClosed, 50, tokens.Unavailable)
}

// TestTokensWrongTypeFailsOneKeyID: a key_id's token keys overwritten by
// something else fail that key_id's decisions, not everyone's.
func TestTokensWrongTypeFailsOneKeyID(t *testing.T) {
	srv := redistest.Start(t)
	s := newTokens(t, srv.URL(), redis.TokensConfig{})
	if _, err := srv.Do("SET authgate:tk:{broken}:w x"); err != nil {
		t.Fatal(err)
	}
	lim := tokens.Limits{TPM: 100}
	if _, _, err := s.Admit("broken", lim, 1); !errors.Is(err, redis.ErrUnavailable) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("Admit of the overwritten key_id: %v, want ErrUnavailable naming WRONGTYPE", err)
	}
	if _, r, err := s.Admit("fine", lim, 1); err != nil || !r.Allowed() {
		t.Fatalf("Admit of another key_id: %+v, %v: want admitted (Redis is not down)", r, err)
	}
}
