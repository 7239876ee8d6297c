package upstreamspec

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrNoUpstream is returned by ParseUpstreams for an empty value.
var ErrNoUpstream = errors.New("proxy: no upstream configured")

// ParseUpstreams splits a comma-separated UPSTREAM_URL value into its
// items and checks each one: a base URL (scheme http or https, a host, no
// query, fragment or user info), optionally followed by options separated
// by whitespace, name=value as in the keys file. The options are
// models=ID|ID…, the models the upstream serves
// (docs/configuration.md#models-and-routing), and stream-options=off for
// a server that refuses a request with stream_options, which the gateway
// then does not add (docs/http.md#token-metering).
// Blank items are an error, not skipped. The items are returned trimmed,
// options included, as the proxy's Config.Upstreams takes them.
func ParseUpstreams(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, ErrNoUpstream
	}
	parts := strings.Split(s, ",")
	out := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if _, err := ParseItem(p); err != nil {
			return nil, fmt.Errorf("upstream %d of %d: %w", i+1, len(parts), err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Item is one parsed item of the upstream list.
type Item struct {
	URL              *url.URL
	Raw              string   // the URL as written: the upstream's name
	Models           []string // declared models, in the order written
	Declared         bool     // models= was given
	NoStreamOptions  bool     // stream-options=off
	streamOptionsSet bool
}

// MaxModelID is the longest model id accepted, declared, aliased or
// discovered.
const MaxModelID = 256

// ParseItem parses one item of the upstream list, as ParseUpstreams
// returns it: a base URL, then options. Its errors never show a password,
// nor an option's value other than a model id.
func ParseItem(s string) (Item, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return Item{}, errors.New("empty upstream URL")
	}
	u, err := parseUpstream(fields[0])
	if err != nil {
		return Item{}, err
	}
	it := Item{URL: u, Raw: fields[0]}
	for _, opt := range fields[1:] {
		name, value, ok := strings.Cut(opt, "=")
		switch {
		case !ok:
			return it, fmt.Errorf("upstream URL %q: an option is not name=value", u.Redacted())
		case name == "stream-options":
			if it.streamOptionsSet {
				return it, fmt.Errorf("upstream URL %q: option stream-options given twice", u.Redacted())
			}
			if value != "off" && value != "on" {
				return it, fmt.Errorf("upstream URL %q: stream-options=: want off or on", u.Redacted())
			}
			it.streamOptionsSet, it.NoStreamOptions = true, value == "off"
			continue
		case name != "models":
			if isOptionName(name) {
				return it, fmt.Errorf("upstream URL %q: unknown option %q (the options are models= and stream-options=)", u.Redacted(), name)
			}
			return it, fmt.Errorf("upstream URL %q: unknown option (the options are models= and stream-options=)", u.Redacted())
		case it.Declared:
			return it, fmt.Errorf("upstream URL %q: option models given twice", u.Redacted())
		}
		it.Declared = true
		seen := map[string]bool{}
		for id := range strings.SplitSeq(value, "|") {
			if err := CheckModelID(id); err != nil {
				return it, fmt.Errorf("upstream URL %q: models=: %w", u.Redacted(), err)
			}
			if seen[id] {
				return it, fmt.Errorf("upstream URL %q: models=: model %q listed twice", u.Redacted(), id)
			}
			seen[id] = true
			it.Models = append(it.Models, id)
		}
	}
	return it, nil
}

// isOptionName reports whether s looks like an option's name, and may be
// quoted in an error: a secret pasted in the wrong place may not.
func isOptionName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// CheckModelID checks a declared model id or an alias: 1 to MaxModelID
// bytes of UTF-8, no whitespace or control character, and none of the
// separators , | =.
func CheckModelID(id string) error {
	switch {
	case id == "":
		return errors.New("empty model id")
	case len(id) > MaxModelID:
		return fmt.Errorf("model id over %d bytes", MaxModelID)
	case !utf8.ValidString(id):
		return errors.New("model id is not valid UTF-8")
	case strings.ContainsAny(id, ",|="):
		return fmt.Errorf("model id %q holds one of , | =", id)
	case strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("model id %q holds a space or a control character", id)
	}
	return nil
}

// ParseAliases parses a MODEL_ALIASES value for the proxy's
// Config.Aliases: comma-separated alias=model pairs, whitespace around
// each part trimmed (docs/configuration.md#models-and-routing). An empty
// or blank s is no alias. The error names the item at fault: one blank or
// without =, a name that is not a model id (CheckModelID), an alias given
// twice, or one whose model is itself an alias.
func ParseAliases(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	m := make(map[string]string, len(parts))
	for i, p := range parts {
		alias, target, ok := strings.Cut(p, "=")
		alias, target = strings.TrimSpace(alias), strings.TrimSpace(target)
		if !ok {
			return nil, fmt.Errorf("alias %d of %d: want alias=model", i+1, len(parts))
		}
		if _, dup := m[alias]; dup {
			return nil, fmt.Errorf("alias %d of %d: %q given twice", i+1, len(parts), alias)
		}
		m[alias] = target
		if err := checkAlias(alias, target); err != nil {
			return nil, fmt.Errorf("alias %d of %d: %w", i+1, len(parts), err)
		}
	}
	if err := CheckAliases(m); err != nil {
		return nil, err
	}
	return m, nil
}

// checkAlias checks one alias and its target.
func checkAlias(alias, target string) error {
	if err := CheckModelID(alias); err != nil {
		return fmt.Errorf("alias: %w", err)
	}
	if err := CheckModelID(target); err != nil {
		return fmt.Errorf("alias %q: %w", alias, err)
	}
	if alias == target {
		return fmt.Errorf("alias %q names itself", alias)
	}
	return nil
}

// CheckAliases checks every alias of m, and that none names another:
// what ParseAliases checks, for aliases it did not read.
func CheckAliases(m map[string]string) error {
	for alias, target := range m {
		if err := checkAlias(alias, target); err != nil {
			return err
		}
		if _, ok := m[target]; ok {
			return fmt.Errorf("alias %q names %q, itself an alias", alias, target)
		}
	}
	return nil
}

// parseUpstream validates one upstream base URL. Its errors show the URL
// without any password.
func parseUpstream(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("empty upstream URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL, password included
		}
		return nil, fmt.Errorf("cannot parse upstream URL: %w", err)
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("upstream URL %q: scheme must be http or https", shown)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("upstream URL %q: missing host", shown)
	case u.User != nil:
		return nil, fmt.Errorf("upstream URL %q: user info is not allowed; use UPSTREAM_API_KEY", shown)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("upstream URL %q: query and fragment are not allowed", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("upstream URL %q: port must be 1 to 65535", shown)
		}
	}
	return u, nil
}
