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
	slot, res := a.Conc.Acquire()
	if !res.Allowed() {
		t.Fatal("the first request was refused")
	}
	if _, res := a.Conc.Acquire(); res.Allowed() {
		t.Fatal("a second request was admitted under concurrency=1")
	}
	if b := string(a.Access().BodyBusy); !strings.Contains(b, "limit 1 requests") || !strings.Contains(b, `"code":"concurrency_limit_exceeded"`) {
		t.Fatalf("429 body %s", b)
	}
	a.SetAccess(auth.Settings{Concurrency: 2})
	second, res := a.Conc.Acquire()
	if !res.Allowed() || a.Conc.InFlight() != 2 || !strings.Contains(string(a.Access().BodyBusy), "limit 2 requests") {
		t.Fatalf("after raising to 2: admitted %v, in flight %d, body %s", res.Allowed(), a.Conc.InFlight(), a.Access().BodyBusy)
	}
	a.SetAccess(auth.Settings{})
	if _, res := a.Conc.Acquire(); !res.Allowed() || a.Access().BodyBusy != nil {
		t.Fatal("without concurrency= a request was refused, or a 429 body kept")
	}
	slot.Release()
	second.Release()
	if n := a.Conc.InFlight(); n != 1 {
		t.Fatalf("in flight %d after two releases of three, want 1", n)
	}
}
