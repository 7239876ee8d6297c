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

// steppedRedis is newRedis with the caller's clock (UseCallerClock):
// its decisions are made at the instants the test gives Allow.
func steppedRedis(t *testing.T, url string, window time.Duration) *redis.Limiter {
	t.Helper()
	r := newRedis(t, url, window)
	redis.UseCallerClock(r)
	return r
}

// base is the fixed instant the step tables count from.
var base = time.Unix(1_700_000_000, 0)

// stepper returns f(r, key, limit, offset, wantAllowed, wantRemaining,
// wantReset), which calls r.Allow(key, limit, base+offset) and checks the
// Result.
func stepper(t *testing.T) func(*redis.Limiter, string, int, time.Duration, bool, int, time.Duration) {
	return func(r *redis.Limiter, key string, limit int, offset time.Duration, wantAllowed bool, wantRemaining int, wantReset time.Duration) {
		t.Helper()
		res, err := r.Allow(key, limit, base.Add(offset))
		if err != nil {
			t.Fatalf("Allow(%s, base+%v): %v", key, offset, err)
		}
		want := limiter.Result{Allowed: wantAllowed, Limit: limit, Remaining: wantRemaining, Reset: wantReset}
		if limit <= 0 {
			want.Limit = 0
		}
		if res != want {
			t.Fatalf("Allow(%s, base+%v)\n got %+v\nwant %+v", key, offset, res, want)
		}
	}
}

// The script's window has Window's semantics, stepped through at fixed
// instants: Limit admissions, the counts in the headers, a refusal's Reset
// is when the oldest admission leaves, and a slot frees exactly then, not
// a microsecond (the script's resolution) before. The window is an hour:
// the sets' expiry, which runs on Redis's real clock, cannot end one
// mid-test.
func TestRedisWindowSemantics(t *testing.T) {
	srv := redistest.Start(t)
	const window = time.Hour
	f := stepper(t)
	a := steppedRedis(t, srv.URL(), window)
	b := steppedRedis(t, srv.URL(), window) // a second replica: no local pre-check state
	fresh := func() *redis.Limiter { return steppedRedis(t, srv.URL(), window) }

	f(a, "alice", 2, 0, true, 1, window)                             // empty window: Reset is the window
	f(a, "alice", 2, 10*time.Minute, true, 0, 50*time.Minute)        // Reset: the oldest, at 0, leaves at 60 min
	f(b, "alice", 2, 20*time.Minute, false, 0, 40*time.Minute)       // the other replica sees both
	f(fresh(), "alice", 2, 30*time.Minute, false, 0, 30*time.Minute) // refusals are not recorded
	// Asked through new replicas, so that Redis decides, not a pre-check:
	// still refused a microsecond before the oldest admission leaves...
	f(fresh(), "alice", 2, window-time.Microsecond, false, 0, time.Microsecond)
	// ...and admitted when it has: one slot, so remaining 0, and Reset is
	// when the admission at 10 min leaves.
	f(fresh(), "alice", 2, window, true, 0, 10*time.Minute)
	f(fresh(), "alice", 2, window, false, 0, 10*time.Minute)
	f(fresh(), "alice", 2, window+10*time.Minute, true, 0, 50*time.Minute)

	// Another key_id is independent; limit 0 refuses without a call.
	f(a, "bob", 1, 0, true, 0, window)
	calls := a.Stats().Calls
	f(a, "carol", 0, 0, false, 0, window)
	if a.Stats().Calls != calls {
		t.Fatalf("limit 0 made a round trip")
	}
}

// A refused key_id is refused locally until its slot can free, without a
// round trip, and asks Redis again from that instant on; a changed limit
// asks Redis again at once.
func TestRedisLocalPrecheck(t *testing.T) {
	srv := redistest.Start(t)
	f := stepper(t)
	r := steppedRedis(t, srv.URL(), time.Minute)
	f(r, "alice", 1, 0, true, 0, time.Minute)
	f(r, "alice", 1, 20*time.Second, false, 0, 40*time.Second)
	st := r.Stats()
	for i := range 100 {
		at := 20*time.Second + time.Duration(i)*100*time.Millisecond
		f(r, "alice", 1, at, false, 0, time.Minute-at)
	}
	f(r, "alice", 1, time.Minute-time.Microsecond, false, 0, time.Microsecond)
	if got := r.Stats(); got.Calls != st.Calls || got.Prechecked != st.Prechecked+101 {
		t.Fatalf("stats %+v after 101 refusals from %+v: want no calls, 101 pre-checked", got, st)
	}
	// The instant the slot frees, Redis is asked again, and admits.
	f(r, "alice", 1, time.Minute, true, 0, time.Minute)
	if got := r.Stats(); got.Calls != st.Calls+1 {
		t.Fatalf("stats %+v at the end of the pre-check: want one call", got)
	}
	// Refused again, then a raised limit (a reload) goes to Redis and is
	// admitted.
	f(r, "alice", 1, time.Minute+time.Second, false, 0, time.Minute-time.Second)
	f(r, "alice", 2, time.Minute+2*time.Second, true, 0, time.Minute-2*time.Second)
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

// An outage: a killed Redis fails decisions with ErrUnavailable without
// waiting for the timeout, Err reports it, decisions while it is down make
// no round trip, and after a restart the limiter reconnects by itself.
func TestRedisOutageAndRecovery(t *testing.T) {
	srv := redistest.Start(t)
	// A timeout of a minute, so that a decision that waited for it cannot
	// be mistaken for one that failed on the dead connection.
	const timeout = time.Minute
	r, err := redis.New(redis.Config{URL: srv.URL(), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	allow(t, r, "alice", 10)

	srv.Kill()
	start := time.Now()
	_, err = r.Allow("alice", 10, time.Now())
	if !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("Allow with Redis down: %v, want ErrUnavailable", err)
	}
	// A bound far from any machine's speed: the call did not wait for
	// the timeout.
	if d := time.Since(start); d >= timeout {
		t.Fatalf("failed decision took %v, the whole timeout", d)
	}
	if !errors.Is(r.Err(), redis.ErrUnavailable) {
		t.Fatalf("Err() = %v while down", r.Err())
	}
	// While down, decisions fail without a round trip.
	st := r.Stats()
	for i := 0; i < 100; i++ {
		if _, err := r.Allow("bob", 10, time.Now()); !errors.Is(err, redis.ErrUnavailable) {
			t.Fatalf("decision while down: %v, want ErrUnavailable", err)
		}
	}
	if got := r.Stats(); got.Calls != st.Calls {
		t.Fatalf("100 decisions while down made %d round trips", got.Calls-st.Calls)
	}

	srv.Restart()
	eventually(t, "the limiter reconnects", func() bool { return r.Err() == nil })
	if res := allow(t, r, "alice", 10); !res.Allowed || res.Remaining != 9 {
		t.Fatalf("after restart (empty Redis): %+v, want admitted, remaining 9", res)
	}
}

// A hung Redis (SIGSTOP) costs a decision the timeout, not more; the next
// ones fail without a round trip; it recovers when Redis resumes.
func TestRedisHungTimesOut(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = 50 * time.Millisecond
	r, err := redis.New(redis.Config{URL: srv.URL(), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	allow(t, r, "alice", 10)

	srv.Pause()
	defer srv.Resume()
	start := time.Now()
	_, err = r.Allow("alice", 10, time.Now())
	took := time.Since(start)
	if !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("Allow with Redis hung: %v", err)
	}
	t.Logf("decision against a hung Redis failed after %v (timeout %v)", took, timeout)
	// Only the timeout ends the wait on a stopped Redis, so it cannot end
	// sooner. The upper bound is loose on purpose, the one bound a
	// duration allows: below the 2 s after which rueidis would declare
	// the connection dead by itself (ConnWriteTimeout), so that the
	// timeout, not that, is what ended the wait.
	if took < timeout || took >= 2*time.Second {
		t.Fatalf("decision against a hung Redis took %v, want the timeout (%v) and less than 2 s", took, timeout)
	}
	st := r.Stats()
	if _, err = r.Allow("bob", 10, time.Now()); !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("decision while down: %v, want ErrUnavailable", err)
	}
	if got := r.Stats(); got.Calls != st.Calls {
		t.Fatal("a decision while down made a round trip")
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
