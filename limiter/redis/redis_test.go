package redis_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authgate/authgate/internal/redistest"
	"github.com/authgate/authgate/limiter"
	"github.com/authgate/authgate/limiter/redis"
)

func newRedis(t *testing.T, url string, window time.Duration) *redis.Limiter {
	t.Helper()
	// A long timeout: a loaded machine's slow round trip is not an outage
	// (the tests that want one kill or stop Redis).
	r, err := redis.New(redis.Config{URL: url, Window: window, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

func allow(t *testing.T, r *redis.Limiter, key string, limit int) limiter.Result {
	t.Helper()
	res, err := r.Allow(key, limit, time.Now())
	if err != nil {
		t.Fatalf("Allow(%s): %v", key, err)
	}
	return res
}

// eventually polls cond every 20 ms until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The script's window has Window's semantics: Limit admissions, the
// counts in the headers, a refusal's Reset is when the oldest admission
// leaves, and a slot frees exactly then, not before. The window is short
// (2 s) instead of the 60 s of production, and the checks leave slack for
// a loaded machine on the side they can err.
func TestRedisWindowSemantics(t *testing.T) {
	srv := redistest.Start(t)
	const window = 2 * time.Second
	a := newRedis(t, srv.URL(), window)
	b := newRedis(t, srv.URL(), window) // a second replica: no local pre-check state

	first := time.Now()
	for i, want := range []int{1, 0} {
		res := allow(t, a, "alice", 2)
		if !res.Allowed || res.Limit != 2 || res.Remaining != want {
			t.Fatalf("request %d: %+v, want admitted with remaining %d", i+1, res, want)
		}
		if res.Reset <= 0 || res.Reset > window {
			t.Fatalf("request %d: reset %v, want in (0, %v]", i+1, res.Reset, window)
		}
	}
	res := allow(t, b, "alice", 2)
	if res.Allowed || res.Remaining != 0 || res.Limit != 2 {
		t.Fatalf("third request: %+v, want refused", res)
	}
	// Reset is the oldest admission's remaining time in the window.
	if lo, hi := window-time.Since(first)-50*time.Millisecond, window; res.Reset < lo || res.Reset > hi {
		t.Fatalf("refusal's reset %v, want in [%v, %v]", res.Reset, lo, hi)
	}
	// Refusals are not recorded: still refused just before the oldest
	// admission leaves (asked through replica b, so Redis decides)...
	time.Sleep(time.Until(first.Add(window * 3 / 4)))
	b2 := newRedis(t, srv.URL(), window)
	if res := allow(t, b2, "alice", 2); res.Allowed {
		t.Fatalf("at 3/4 of the window: admitted %+v, want refused", res)
	}
	// ...and admitted once it has left: one slot, so remaining 0.
	time.Sleep(time.Until(first.Add(window + 100*time.Millisecond)))
	b3 := newRedis(t, srv.URL(), window)
	if res := allow(t, b3, "alice", 2); !res.Allowed {
		t.Fatalf("after the window: %+v, want admitted", res)
	}

	// Another key_id is independent; limit 0 refuses without a call.
	if res := allow(t, a, "bob", 1); !res.Allowed || res.Remaining != 0 || res.Reset <= window-500*time.Millisecond {
		t.Fatalf("bob: %+v, want admitted with reset about %v", res, window)
	}
	calls := a.Stats().Calls
	if res := allow(t, a, "carol", 0); res.Allowed || res.Limit != 0 || res.Reset != window {
		t.Fatalf("limit 0: %+v", res)
	}
	if a.Stats().Calls != calls {
		t.Fatalf("limit 0 made a round trip")
	}
}

// A refused key_id is refused locally until its slot can free, without a
// round trip; a changed limit asks Redis again.
func TestRedisLocalPrecheck(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL(), time.Minute)
	allow(t, r, "alice", 1)
	if res := allow(t, r, "alice", 1); res.Allowed {
		t.Fatalf("second request admitted")
	}
	st := r.Stats()
	for i := 0; i < 100; i++ {
		res := allow(t, r, "alice", 1)
		if res.Allowed || res.Remaining != 0 || res.Reset <= 0 || res.Reset > time.Minute {
			t.Fatalf("pre-checked refusal %d: %+v", i, res)
		}
	}
	if got := r.Stats(); got.Calls != st.Calls || got.Prechecked != st.Prechecked+100 {
		t.Fatalf("stats %+v after 100 refusals from %+v: want no calls, 100 pre-checked", got, st)
	}
	// A raised limit (a reload) goes to Redis and is admitted.
	if res := allow(t, r, "alice", 2); !res.Allowed || res.Remaining != 0 {
		t.Fatalf("after raising the limit: %+v, want admitted with remaining 0", res)
	}
}

// Replicas share one window: three limiters (three connections, as three
// processes would have), 300 concurrent requests for one key_id with limit
// 50: exactly 50 are admitted, each with a distinct remaining count.
func TestRedisExactAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	var replicas []*redis.Limiter
	for i := 0; i < 3; i++ {
		replicas = append(replicas, newRedis(t, srv.URL(), time.Minute))
	}
	const limit, perReplica = 50, 100
	var (
		mu        sync.Mutex
		admitted  int
		remaining = map[int]bool{}
		wg        sync.WaitGroup
		start     = make(chan struct{})
	)
	for i, r := range replicas {
		for j := 0; j < perReplica; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Replica clocks may disagree: Redis's clock decides.
				now := time.Now().Add(time.Duration(i) * time.Hour)
				res, err := r.Allow("shared", limit, now)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					mu.Lock()
					admitted++
					remaining[res.Remaining] = true
					mu.Unlock()
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if admitted != limit || len(remaining) != limit {
		t.Fatalf("admitted %d with %d distinct remaining counts, want exactly %d", admitted, len(remaining), limit)
	}
	if out, _ := srv.Do("ZCARD " + redis.DefaultKeyPrefix + "shared"); out != ":50" {
		t.Fatalf("ZCARD = %s, want :50", out)
	}
	if out, _ := srv.Do("PTTL " + redis.DefaultKeyPrefix + "shared"); !strings.HasPrefix(out, ":") || out == ":-1" || out == ":-2" {
		t.Fatalf("PTTL = %s, want an expiry", out)
	}
}

// An outage: a killed Redis fails decisions at once with
// ErrRedisUnavailable, Err reports it, and after a restart the limiter
// reconnects by itself.
func TestRedisOutageAndRecovery(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL(), time.Minute)
	allow(t, r, "alice", 10)

	srv.Kill()
	start := time.Now()
	_, err := r.Allow("alice", 10, time.Now())
	if !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("Allow with Redis down: %v, want ErrRedisUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("failed decision took %v", d)
	}
	if !errors.Is(r.Err(), redis.ErrUnavailable) {
		t.Fatalf("Err() = %v while down", r.Err())
	}
	// While down, decisions fail without waiting.
	start = time.Now()
	for i := 0; i < 100; i++ {
		if _, err := r.Allow("bob", 10, time.Now()); err == nil {
			t.Fatal("decision while down succeeded")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("100 decisions while down took %v", d)
	}

	srv.Restart()
	eventually(t, "the limiter reconnects", func() bool { return r.Err() == nil })
	if res := allow(t, r, "alice", 10); !res.Allowed || res.Remaining != 9 {
		t.Fatalf("after restart (empty Redis): %+v, want admitted, remaining 9", res)
	}
}

// A hung Redis (SIGSTOP) costs a request at most the timeout; the next
// ones fail at once; it recovers when Redis resumes.
func TestRedisHungTimesOut(t *testing.T) {
	srv := redistest.Start(t)
	r, err := redis.New(redis.Config{URL: srv.URL(), Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	allow(t, r, "alice", 10)

	srv.Pause()
	start := time.Now()
	_, err = r.Allow("alice", 10, time.Now())
	took := time.Since(start)
	if !errors.Is(err, redis.ErrUnavailable) {
		srv.Resume()
		t.Fatalf("Allow with Redis hung: %v", err)
	}
	t.Logf("decision against a hung Redis failed after %v (timeout 50ms)", took)
	if took > 500*time.Millisecond {
		srv.Resume()
		t.Fatalf("decision against a hung Redis took %v, timeout is 50ms", took)
	}
	start = time.Now()
	_, err = r.Allow("bob", 10, time.Now())
	if err == nil || time.Since(start) > 20*time.Millisecond {
		srv.Resume()
		t.Fatalf("decision while down: err %v after %v, want an immediate error", err, time.Since(start))
	}
	srv.Resume()
	eventually(t, "the limiter recovers after Redis resumes", func() bool { return r.Err() == nil })
	allow(t, r, "alice", 10)
}

// A Redis not reachable at start is not an error: the limiter starts down
// and connects when Redis comes.
func TestRedisDownAtStart(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	r := newRedis(t, srv.URL(), time.Minute)
	if r.Err() == nil {
		t.Fatal("Err() = nil with Redis down")
	}
	srv.Restart()
	eventually(t, "the limiter connects", func() bool { return r.Err() == nil })
	allow(t, r, "alice", 1)
}

// Bad URLs and a wrong password are errors that never show the password.
func TestRedisConfigErrors(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "right-password")
	host := srv.Addr
	for _, url := range []string{
		"",
		"http://:hunter2secret@" + host,
		"redis://:hunter2secret@" + host + "/notadb",
		"redis://:hunter2secret@[::1",
		"redis://:hunter2secret@" + host + "/1/2",
		"redis:///0",
	} {
		_, err := redis.New(redis.Config{URL: url})
		if err == nil {
			t.Errorf("New(%q): no error", url)
			continue
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("New(%q): error shows the password: %v", url, err)
		}
	}
	_, err := redis.New(redis.Config{URL: "redis://:hunter2secret@" + host})
	if err == nil || strings.Contains(err.Error(), "hunter2secret") || !strings.Contains(err.Error(), host) {
		t.Fatalf("wrong password: %v, want an error naming %s without the password", err, host)
	}
	r := newRedis(t, "redis://:right-password@"+host+"/3", time.Minute)
	allow(t, r, "alice", 1)
	if out, _ := srv.Do("AUTH right-password", "SELECT 3", "EXISTS "+redis.DefaultKeyPrefix+"alice"); out != ":1" {
		t.Fatalf("alice's window in database 3: EXISTS = %s, want :1", out)
	}
	if strings.Contains(r.String(), "right-password") {
		t.Fatalf("String() shows the password: %s", r)
	}
}
