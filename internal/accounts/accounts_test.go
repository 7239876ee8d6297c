package accounts

import (
	"strings"
	"testing"
	"time"

	"github.com/authgate/authgate/auth"
)

// TestConcurrencyFollowsSettings: an account's concurrency limit and its
// 429 body are its settings', and a reload (SetAccess) changes both while
// the slots held stay held.
func TestConcurrencyFollowsSettings(t *testing.T) {
	r := &Registry{Period: time.Minute}
	a := r.Get("alice", 10, auth.Settings{Concurrency: 1})
	slot, _, busy := a.Acquire()
	if busy != nil {
		t.Fatal("the first request was refused")
	}
	if _, _, busy := a.Acquire(); busy == nil {
		t.Fatal("a second request was admitted under concurrency=1")
	}
	if b := string(a.Access().BodyBusy); !strings.Contains(b, "limit 1 requests") || !strings.Contains(b, `"code":"concurrency_limit_exceeded"`) {
		t.Fatalf("429 body %s", b)
	}
	a.SetAccess(auth.Settings{Concurrency: 2})
	second, _, busy := a.Acquire()
	if busy != nil || a.InFlight() != 2 || !strings.Contains(string(a.Access().BodyBusy), "limit 2 requests") {
		t.Fatalf("after raising to 2: refused %s, in flight %d, body %s", busy, a.InFlight(), a.Access().BodyBusy)
	}
	a.SetAccess(auth.Settings{})
	if _, _, busy := a.Acquire(); busy != nil || a.Access().BodyBusy != nil {
		t.Fatal("without concurrency= a request was refused, or a 429 body kept")
	}
	slot.Release()
	slot.Release() // a second release does nothing
	second.Release()
	if n := a.InFlight(); n != 1 {
		t.Fatalf("in flight %d after two releases of three, want 1", n)
	}
	if s, _, busy := NewShared("auth-disabled").Acquire(); busy != nil || s != (Slot{}) {
		t.Fatal("a shared pseudo key_id got a counted slot or a refusal")
	}
}

// TestTokenLimitsFollowReload: a key_id's token limits are its tpm= and
// tpd=, else the defaults; a reload that sets or clears them changes
// TokenLimited and the limiter, which keeps its counts. (A limit that
// was off when a request was admitted did not count it: tokens spent
// before tpd= is set do not count toward the day.)
func TestTokenLimitsFollowReload(t *testing.T) {
	r := &Registry{Period: time.Minute}
	if err := r.OpenTokens(time.Minute, ""); err != nil {
		t.Fatal(err)
	}
	a := r.Get("alice", 10, auth.Settings{})
	if a.TokenLimited() {
		t.Fatal("limited without tpm=, tpd= or a default")
	}
	keys := func(s auth.Settings) *auth.KeySet {
		ks, warns := auth.NewKeySet([]auth.Entry{{Line: 1, KeyID: "alice", Digest: [32]byte{1}, Settings: s}})
		if len(warns) > 0 {
			t.Fatal(warns)
		}
		return ks
	}
	r.Sync(keys(auth.Settings{TPM: 50}), 10)
	if !a.TokenLimited() || a.Tokens.Limits().TPM != 50 {
		t.Fatalf("after tpm=50: limited %v, %+v", a.TokenLimited(), a.Tokens.Limits())
	}
	adm, res := a.Tokens.Admit(time.Now(), 30)
	if !res.Allowed() {
		t.Fatal(res)
	}
	adm.Finish(30)
	r.DefaultTPD = 1000
	r.Sync(keys(auth.Settings{}), 10)
	if l := a.Tokens.Limits(); !a.TokenLimited() || l.TPM != 0 || l.TPD != 1000 {
		t.Fatalf("after clearing tpm= with a TPD default: %+v", l)
	}
	if u := a.Tokens.UsageAt(time.Now()); u.WindowUsed != 30 {
		t.Fatalf("the window's 30 tokens were lost across the reload: %+v", u)
	}
}
