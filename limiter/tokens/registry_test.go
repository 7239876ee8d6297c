package tokens

import (
	"slices"
	"sync"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := NewRegistry(Config{})
	lim := Limits{TPM: 100, TPD: 1000, Concurrency: 2}

	// Concurrent first requests get one Limiter.
	got := make([]*Limiter, 50)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i] = r.Get("alice", lim) })
	}
	wg.Wait()
	for _, l := range got {
		if l != got[0] {
			t.Fatal("concurrent Get made two Limiters for one key_id")
		}
	}
	alice := got[0]
	if r.Get("alice", Limits{TPM: 5}) != alice || alice.Limits() != lim {
		t.Fatal("Get with other limits replaced the Limiter or its limits")
	}
	if _, res := alice.Admit(midnight, 80); !res.Allowed() {
		t.Fatalf("refused: %+v", res)
	}

	// A reload keeps the counts with the new limits.
	r.SetLimits("alice", Limits{TPM: 90, TPD: 1000})
	if _, res := alice.Admit(midnight, 11); res.Kind != Limited || res.Used != 80 || res.Limit != 90 {
		t.Fatalf("after SetLimits: %+v", res)
	}
	r.SetLimits("nobody", lim) // no Limiter: nothing
	bob := r.Get("bob", lim)
	r.Sync(map[string]Limits{"alice": {TPM: 200}})
	if alice.Limits() != (Limits{TPM: 200}) {
		t.Fatalf("Sync did not update alice: %+v", alice.Limits())
	}
	var ids []string
	r.Range(func(id string, l *Limiter) bool {
		ids = append(ids, id)
		return true
	})
	if !slices.Equal(ids, []string{"alice"}) {
		t.Fatalf("after Sync, Range = %v, want [alice]", ids)
	}
	if r.Get("alice", lim) != alice || r.Get("bob", lim) == bob {
		t.Fatal("Sync dropped the key_id it kept, or kept the one it dropped")
	}
}
