package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/authgate/authgate/auth"
)

// runKeys is `authgate keys gen|hash|check`.
func runKeys(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: authgate keys gen --id ID | keys hash | keys check FILE\n")
		return exitUsage
	}
	switch args[0] {
	case "gen":
		fs := flag.NewFlagSet("keys gen", flag.ContinueOnError)
		fs.SetOutput(stderr)
		id := fs.String("id", "", "key_id of the new key ([A-Za-z0-9_-]+)")
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		if !auth.ValidKeyID([]byte(*id)) {
			fmt.Fprintf(stderr, "authgate keys gen: --id %q: want one or more of [A-Za-z0-9_-]\n", *id)
			return exitUsage
		}
		key, err := newKey()
		if err != nil {
			fmt.Fprintf(stderr, "authgate keys gen: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "%s:%s\n", *id, key)
		return exitOK
	case "hash":
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(stderr, "authgate keys hash: cannot read stdin: %v\n", err)
			return exitFailure
		}
		key := strings.TrimSpace(line)
		if !auth.ValidKey([]byte(key)) {
			fmt.Fprintln(stderr, "authgate keys hash: the key on stdin is not 16 to 128 of [A-Za-z0-9_-]")
			return exitUsage
		}
		fmt.Fprintln(stdout, auth.HashedKey([]byte(key)))
		return exitOK
	case "check":
		if len(args) != 2 {
			fmt.Fprint(stderr, "usage: authgate keys check FILE\n")
			return exitUsage
		}
		return checkKeysFile(args[1], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "authgate keys: unknown subcommand %q (want gen, hash or check)\n", args[0])
		return exitUsage
	}
}

// newKey returns a new API key: "sk-" and 256 bits from crypto/rand in
// unpadded base64url, 46 characters of [A-Za-z0-9_-].
func newKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cannot read random bytes: %w", err)
	}
	return "sk-" + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// expiryWarning is how far ahead `keys check` warns of a key_id's expiry.
const expiryWarning = 7 * 24 * time.Hour

// checkKeysFile parses path as serve would and prints every problem with
// its line number. It returns 1 if the file cannot be read, has an invalid
// line, or holds no valid key.
func checkKeysFile(path string, stdout, stderr io.Writer) int {
	keys, warnings, err := auth.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitFailure
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "%s: %v\n", path, w)
	}
	expiring := 0
	now := time.Now()
	for _, id := range keys.Identities() {
		e := id.Settings.Expires
		switch {
		case e.IsZero():
		case !now.Before(e):
			fmt.Fprintf(stdout, "%s: warning: key_id %q expired at %s\n", path, id.KeyID, e.Format(time.RFC3339))
			expiring++
		case e.Sub(now) <= expiryWarning:
			fmt.Fprintf(stdout, "%s: warning: key_id %q expires at %s, within %d days\n", path, id.KeyID, e.Format(time.RFC3339), expiryWarning/(24*time.Hour))
			expiring++
		}
	}
	if expiring > 0 {
		fmt.Fprintf(stdout, "%s: %d key_id(s) expired or expiring soon (a warning: the file is valid)\n", path, expiring)
	}
	fmt.Fprintf(stdout, "%s: %d valid key(s) for %d key_id(s), %d problem(s)\n", path, keys.Len(), len(keys.Identities()), len(warnings))
	if len(warnings) > 0 || keys.Len() == 0 {
		return exitFailure
	}
	return exitOK
}
