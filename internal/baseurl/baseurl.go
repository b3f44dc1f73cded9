// Package baseurl turns the node addresses operators type (host:port, :port
// or a URL) into base URLs for sessiond's HTTP API. The command-line tools
// share it so they accept the same addresses.
package baseurl

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrNone is returned by ParseList when the list names no address.
var ErrNone = errors.New("no address given")

// Parse returns a as a base URL without a trailing slash: "host:port" gets
// http://, ":port" means loopback; only http and https, and no user, query
// or fragment.
func Parse(a string) (string, error) {
	a = strings.TrimSpace(a)
	raw := a
	if !strings.Contains(a, "://") {
		raw = "http://" + a
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q: %v", a, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: scheme must be http or https", a)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("%q: want a base URL without user, query or fragment", a)
	case u.Host == "":
		return "", fmt.Errorf("%q: no host", a)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: bad port %q", a, p)
		}
	}
	if u.Hostname() == "" {
		u.Host = "127.0.0.1" + u.Host
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// ParseList parses a comma-separated list, skipping empty entries.
func ParseList(s string) ([]string, error) {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(a) == "" {
			continue
		}
		u, err := Parse(a)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, ErrNone
	}
	return out, nil
}
