package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrNoUpstream is returned by ParseUpstreams for an empty value.
var ErrNoUpstream = errors.New("proxy: no upstream configured")

// ParseUpstreams splits a comma-separated UPSTREAM_URL value into base URLs
// and checks each one: scheme http or https, a host, no query, fragment or
// user info. Blank items are an error, not skipped.
func ParseUpstreams(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, ErrNoUpstream
	}
	parts := strings.Split(s, ",")
	out := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if _, err := parseUpstream(p); err != nil {
			return nil, fmt.Errorf("upstream %d of %d: %w", i+1, len(parts), err)
		}
		out = append(out, p)
	}
	return out, nil
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
