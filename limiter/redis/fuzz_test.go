package redis

import (
	"strings"
	"testing"
)

// FuzzCheckURL: REDIS_URL's check never panics, and its error never
// shows the password of the URL's user info (read crudely, as a person
// would: between "://user:" and "@"), whether or not the URL parses.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379/0",
		"rediss://user:hunter2secret@redis.internal:6380/3",
		"redis://:hunter2secret@[::1",
		"redis://:hunter2secret@host/notadb",
		"redis://:hunter2%zzsecret@host",
		"redis://:hunter2secret@ho st",
		"redis://:p@h/1/2",
		"redis://:p@h/?db=x",
		"redis://:p@h/?dial_timeout=zz",
		"http://:hunter2secret@host",
		"redis:///0",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckURL(s)
		if err == nil {
			return
		}
		_, rest, ok := strings.Cut(s, "://")
		if !ok {
			return
		}
		userinfo, _, ok := strings.Cut(rest, "@")
		if !ok {
			return
		}
		_, pw, ok := strings.Cut(userinfo, ":")
		if ok && len(pw) >= 8 && strings.Contains(err.Error(), pw) {
			t.Fatalf("error shows the password %q: %q", pw, err)
		}
	})
}
