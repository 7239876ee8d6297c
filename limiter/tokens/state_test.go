package tokens

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"
)

// admitFinish admits n tokens for keyID at at and finishes with actual;
// it fails the test if the request is refused.
func admitFinish(t *testing.T, l *Limiter, at time.Time, n, actual int64) {
	t.Helper()
	a, r := l.Admit(at, n)
	if !r.Allowed() {
		t.Fatalf("Admit(%v, %d) refused: %+v", at, n, r)
	}
	a.Finish(actual)
}

// loadTotals returns LoadState(dir, at)'s tokens by key_id.
func loadTotals(t *testing.T, dir string, at time.Time) map[string]int64 {
	t.Helper()
	s, err := LoadState(dir, at)
	if err != nil {
		t.Fatalf("LoadState: %v", err)
	}
	totals := map[string]int64{}
	for id, e := range s.Keys {
		totals[id] = e.Tokens
	}
	return totals
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	at := midnight.Add(-6 * time.Hour) // 2026-11-27 18:00
	lim := Limits{TPD: 1000}
	r := NewRegistry(Config{})
	admitFinish(t, r.Get("alice", lim), at, 300, 250)
	bob, _ := r.Get("bob", lim).Admit(at, 100) // in flight: counts its reservation
	admitFinish(t, r.Get("carol", Limits{TPM: 1000}), at, 10, 10)
	r.Get("dave", lim) // no request: no entry

	s := r.State(at)
	want := map[string]DayTotal{"alice": {"2026-11-27", 250}, "bob": {"2026-11-27", 100}}
	if !maps.Equal(s.Keys, want) {
		t.Fatalf("State = %v, want %v", s.Keys, want)
	}
	if err := s.WriteFile(dir); err != nil {
		t.Fatal(err)
	}
	s.Keys["erin"] = DayTotal{"2026-11-27", 1} // written twice: the rename replaces the file
	if err := s.WriteFile(dir); err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 || files[0].Name() != StateFile {
		t.Fatalf("directory holds %v, want only %s", files, StateFile)
	}

	if got, want := loadTotals(t, dir, midnight.Add(-time.Nanosecond)), map[string]int64{"alice": 250, "bob": 100, "erin": 1}; !maps.Equal(got, want) {
		t.Fatalf("loaded on the same day: %v, want %v", got, want)
	}
	if got := loadTotals(t, dir, midnight); len(got) != 0 {
		t.Fatalf("loaded on the next day: %v, want nothing", got)
	}

	// A registry started from the state counts from the totals, and saves
	// them even for key_ids that have made no request yet.
	loaded, err := LoadState(dir, at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r2 := NewRegistry(Config{State: loaded})
	if got := r2.State(at.Add(time.Hour)); !maps.Equal(got.Keys, s.Keys) {
		t.Fatalf("restarted State = %v, want %v", got.Keys, s.Keys)
	}
	alice := r2.Get("alice", lim)
	if _, res := alice.Admit(at.Add(time.Hour), 751); res.Kind != Limited || res.Used != 250 {
		t.Fatalf("after restart: %+v, want Limited with 250 used", res)
	}
	admitFinish(t, alice, at.Add(time.Hour), 750, 750)
	if got := r2.State(at.Add(time.Hour)).Keys["alice"]; got.Tokens != 1000 {
		t.Fatalf("alice after restart and 750 more: %v", got)
	}
	// A reload that drops erin forgets her restored total.
	r2.Sync(map[string]Limits{"alice": lim, "bob": lim})
	if _, ok := r2.State(at.Add(time.Hour)).Keys["erin"]; ok {
		t.Fatal("a dropped key_id's restored total is still saved")
	}
	bob.Finish(100)
}

func TestLoadStateErrors(t *testing.T) {
	at := midnight.Add(-time.Hour)
	if s, err := LoadState(t.TempDir(), at); err != nil || s.Keys == nil || len(s.Keys) != 0 {
		t.Fatalf("no file: %v, %v; want an empty State", s, err)
	}
	if _, err := LoadState(filepath.Join(t.TempDir(), "missing"), at); err != nil {
		t.Fatalf("no directory: %v; want an empty State", err)
	}
	f := func(content string, wantErr bool) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadState(dir, at)
		if (err != nil) != wantErr {
			t.Fatalf("LoadState(%s) = %v, want error %v", content, err, wantErr)
		}
	}
	f(`{"version":1,"keys":{"a":{"date":"2026-11-27","tokens":5},"b":{"date":"2026-11-26","tokens":9}}}`, false)
	f(`{"version":1,"keys":{}}`, false)
	f(`{"version":1}`, false)
	f(``, true)
	f(`{"version":1,"keys":{"a":{"date":"2026-11-27","tokens":5}`, true) // cut short
	f(`{"version":2,"keys":{}}`, true)
	f(`{"keys":{}}`, true)
	f(`{"version":1,"keys":{"a":{"date":"27/11/2026","tokens":5}}}`, true)
	f(`{"version":1,"keys":{"a":{"date":"2026-11-27","tokens":-5}}}`, true)
	f(`{"version":1,"keys":{"a":{"date":"2026-11-27","tokens":"5"}}}`, true)

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, StateFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(dir, at); err == nil {
		t.Fatal("LoadState of a directory succeeded")
	}
}

// TestSaver runs in a synctest bubble, whose clock starts at 2000-01-01
// 00:00 UTC and moves only when every goroutine waits.
func TestSaver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		r := NewRegistry(Config{})
		s := NewSaver(dir, r, time.Second)
		alice := r.Get("alice", Limits{TPD: 1_000_000})
		tick := func() {
			time.Sleep(time.Second)
			synctest.Wait() // the Saver has written
		}
		admitFinish(t, alice, time.Now(), 100, 100)
		tick()
		if got := loadTotals(t, dir, time.Now()); got["alice"] != 100 {
			t.Fatalf("after a second: %v, want alice 100", got)
		}

		// A crash now loses what came after the last save, nothing before.
		admitFinish(t, alice, time.Now(), 50, 50)
		if got := loadTotals(t, dir, time.Now()); got["alice"] != 100 {
			t.Fatalf("between saves: %v, want alice 100", got)
		}
		tick()
		if got := loadTotals(t, dir, time.Now()); got["alice"] != 150 {
			t.Fatalf("after the next save: %v, want alice 150", got)
		}

		// Unchanged: not written again.
		if err := os.Remove(filepath.Join(dir, StateFile)); err != nil {
			t.Fatal(err)
		}
		tick()
		if _, err := os.Stat(filepath.Join(dir, StateFile)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("an unchanged State was written again: %v", err)
		}

		// Close saves what came since, a reservation in flight included.
		a, _ := alice.Admit(time.Now(), 25)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := loadTotals(t, dir, time.Now()); got["alice"] != 175 {
			t.Fatalf("after Close: %v, want alice 175", got)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		a.Finish(25)
	})
}

// TestSaverMidnight: the first save of a day drops yesterday's totals.
func TestSaverMidnight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		r := NewRegistry(Config{})
		s := NewSaver(dir, r, 0) // default: every second
		defer s.Close()
		time.Sleep(24*time.Hour - 2*time.Second)
		admitFinish(t, r.Get("alice", Limits{TPD: 10}), time.Now(), 10, 10)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := loadTotals(t, dir, time.Now()); got["alice"] != 10 {
			t.Fatalf("before midnight: %v, want alice 10", got)
		}
		time.Sleep(time.Second) // 00:00 on 2000-01-02
		synctest.Wait()
		raw, err := os.ReadFile(filepath.Join(dir, StateFile))
		if err != nil || string(raw) != `{"version":1,"keys":{}}` {
			t.Fatalf("after midnight the file holds %s (%v), want no key", raw, err)
		}
	})
}

func TestSaverError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRegistry(Config{})
		s := NewSaver(filepath.Join(t.TempDir(), "missing"), r, time.Second)
		time.Sleep(time.Second)
		synctest.Wait()
		if err := s.Err(); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Err = %v, want the missing directory's", err)
		}
		if err := s.Close(); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Close = %v, want the missing directory's", err)
		}
	})
}
