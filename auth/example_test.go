package auth_test

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/authgate/authgate/auth"
)

func ExampleParse() {
	file := `# key_id:api_key [settings]
alice:sk-alice-0123456789abcdef rpm=600
alice:sk-alice-rotated-0123456789
bob:` + auth.HashedKey([]byte("sk-bob-0123456789abcdef")) + `
carol sk-carol-0123456789abcdef
dave:sk-alice-0123456789abcdef
`
	keys, warnings, err := auth.Parse(strings.NewReader(file))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range warnings {
		fmt.Println("warning:", w)
	}
	fmt.Println(keys.Len(), "keys for", keys.NumIdentities(), "key_ids")
	for _, key := range []string{"sk-alice-rotated-0123456789", "sk-bob-0123456789abcdef", "sk-carol-0123456789abcdef"} {
		if id := keys.Lookup([]byte(key)); id != nil {
			fmt.Printf("%s rpm=%d\n", id.KeyID, id.Settings.RPM)
		} else {
			fmt.Println("unknown key")
		}
	}
	// Output:
	// warning: line 5: missing ':'
	// warning: line 6: duplicate key for key_id "dave" (already used by key_id "alice" on line 2)
	// 3 keys for 2 key_ids
	// alice rpm=600
	// bob rpm=0
	// unknown key
}

func ExampleParseAuthorization() {
	keys, _ := auth.NewKeySet([]auth.Entry{{Line: 1, KeyID: "alice", Digest: sha256Of("sk-alice-0123456789abcdef")}})
	for _, h := range []string{"", "Bearer", "Bearer sk-short", "Bearer sk-other-0123456789abcdef", "bearer sk-alice-0123456789abcdef"} {
		key, reason := auth.ParseAuthorization([]byte(h))
		var id *auth.Identity
		if reason == auth.ReasonOK {
			if id = keys.Lookup(key); id == nil {
				reason = auth.ReasonUnknown
			}
		}
		if reason != auth.ReasonOK {
			fmt.Printf("%q: 401 %s (%s)\n", h, reason.Message(), reason)
			continue
		}
		fmt.Printf("%q: key_id %s\n", h, id.KeyID)
	}
	// Output:
	// "": 401 Missing Authorization header (missing)
	// "Bearer": 401 Empty Authorization header (empty)
	// "Bearer sk-short": 401 Invalid API key format (bad_format)
	// "Bearer sk-other-0123456789abcdef": 401 Invalid API key (unknown)
	// "bearer sk-alice-0123456789abcdef": key_id alice
}

func sha256Of(key string) [32]byte {
	return sha256.Sum256([]byte(key))
}
