package dialer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is Redis's port, used when a URL names none.
const DefaultPort = "6379"

// ParseURL reads redis://[user[:password]@]host[:port][/db], or rediss://
// for TLS. A bare host:port is taken as redis://host:port. Characters that
// URLs reserve (such as @, /, # and %) must be percent-encoded in the user
// name and password. Errors never repeat the password.
func ParseURL(raw string) (Options, error) {
	var o Options
	if !strings.Contains(raw, "://") {
		raw = "redis://" + raw
	}
	// An unencoded / ? or # in a password would make the parser cut the URL
	// there and quote the password's pieces as host, port or database.
	_, rest, _ := strings.Cut(raw, "://")
	hasUser := strings.Contains(rest, "@")
	if at := strings.LastIndex(rest, "@"); at >= 0 && strings.ContainsAny(rest[:at], "/?#") {
		return o, fmt.Errorf("bad redis URL %s: the user name or password holds an unencoded / ? or #: percent-encode it (%%2F %%3F %%23)", redactRaw(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, and its reason may quote the
		// password: say why in words of our own.
		var ue *url.Error
		why := "malformed URL"
		if errors.As(err, &ue) && !hasUser {
			why = ue.Err.Error()
		} else if hasUser {
			why = "malformed URL (percent-encode @ / ? # % in the user name and password)"
		}
		return o, fmt.Errorf("bad redis URL %s: %s", redactRaw(raw), why)
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		o.TLS = &TLS{}
	default:
		return o, fmt.Errorf("bad redis URL %s: scheme %q is neither redis:// nor rediss://", redactRaw(raw), u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return o, fmt.Errorf("bad redis URL %s: no host", redactRaw(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return o, fmt.Errorf("bad redis URL %s: query and fragment are not supported (TLS and timeouts are options; percent-encode a # in a password)", redactRaw(raw))
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return o, fmt.Errorf("bad redis URL %s: no host", redactRaw(raw))
	}
	if port == "" {
		port = DefaultPort
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return o, fmt.Errorf("bad redis URL %s: port %q is not a number from 1 to 65535", redactRaw(raw), port)
	}
	o.Addr = net.JoinHostPort(host, port)
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return o, fmt.Errorf("bad redis URL %s: database %q is not a number", redactRaw(raw), db)
		}
		o.DB = n
	}
	return o, nil
}

// redactRaw hides the user information of a URL that could not be parsed.
func redactRaw(raw string) string {
	rest, ok := strings.CutPrefix(raw, "redis://")
	scheme := "redis://"
	if !ok {
		if i := strings.Index(raw, "://"); i >= 0 {
			scheme, rest = raw[:i+3], raw[i+3:]
		}
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "***@" + rest[i+1:]
	}
	return strconv.Quote(scheme + rest)
}

// URL renders the options as a URL with the password hidden, for logs and
// status: redis://user:***@host:port/db.
func (o Options) URL() string {
	var b strings.Builder
	if o.TLS != nil {
		b.WriteString("rediss://")
	} else {
		b.WriteString("redis://")
	}
	if o.Username != "" || o.Password != "" {
		b.WriteString(url.User(o.Username).String())
		if o.Password != "" {
			b.WriteString(":***")
		}
		b.WriteByte('@')
	}
	b.WriteString(o.Addr)
	if o.DB != 0 {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(o.DB))
	}
	return b.String()
}

// String is URL, so that printing Options never shows the password.
func (o Options) String() string { return o.URL() }

// GoString keeps %#v from printing the password too.
func (o Options) GoString() string { return "dialer.Options(" + o.URL() + ")" }

// LogValue keeps slog from printing the password.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.URL()) }
