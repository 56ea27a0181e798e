package cache

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ParseRedisURL parses the URL forms accepted by `serve --redis URL` and
// [store.redis] url:
//
//	redis://[user:pass@]host[:port][/db]
//	rediss://[user:pass@]host[:port][/db]                        TLS
//	redis-sentinel://[user:pass@]host[:port][,host[:port]...]/master[?db=N]
//	rediss-sentinel://...                                         TLS
//	redis-cluster://[user:pass@]host[:port][,host[:port]...]
//	rediss-cluster://...                                          TLS
//
// Why not go-redis's ParseURL, ParseFailoverURL and ParseClusterURL: they
// take one host in the authority and the others as addr= parameters, and
// no sentinel credentials; ours are the forms admins write (one URL with
// every host, as the Redis CLI tools and most clients take them). And this
// package must not import go-redis: the decision engine imports it and
// stays free of I/O libraries. For the forms both accept (redis:// and
// rediss:// with one host), a test in redisstore checks that this parser
// and go-redis's ParseURL agree.
//
// Default ports: 6379, and 26379 for sentinels. For Sentinel the user and
// password are the master's; the sentinels' own credentials can be given as
// query parameters sentinel_username and sentinel_password. User and
// password may be percent-encoded. No other query parameters are accepted.
func ParseRedisURL(raw string) (RedisConfig, error) {
	var rc RedisConfig
	fail := func(format string, a ...any) (RedisConfig, error) {
		return RedisConfig{}, fmt.Errorf("redis URL %q: "+format, append([]any{redact(raw)}, a...)...)
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return fail("missing scheme (want redis://, rediss://, redis-sentinel:// or redis-cluster://)")
	}
	var kind string
	switch strings.ToLower(scheme) {
	case "redis":
		kind = "standalone"
	case "rediss":
		kind, rc.TLS = "standalone", true
	case "redis-sentinel":
		kind = "sentinel"
	case "rediss-sentinel":
		kind, rc.TLS = "sentinel", true
	case "redis-cluster":
		kind = "cluster"
	case "rediss-cluster":
		kind, rc.TLS = "cluster", true
	default:
		return fail("unknown scheme %q", scheme)
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return fail("fragments are not allowed")
	}
	hostPart, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(hostPart, '@'); i >= 0 {
		userinfo := hostPart[:i]
		hostPart = hostPart[i+1:]
		u, p, hasPass := strings.Cut(userinfo, ":")
		var err error
		if rc.Username, err = url.PathUnescape(u); err != nil {
			return fail("bad user name encoding")
		}
		if hasPass {
			if rc.Password, err = url.PathUnescape(p); err != nil {
				return fail("bad password encoding")
			}
		}
	}
	if hostPart == "" {
		return fail("no host")
	}
	defPort := "6379"
	if kind == "sentinel" {
		defPort = "26379"
	}
	hosts := strings.Split(hostPart, ",")
	if kind == "standalone" && len(hosts) > 1 {
		return fail("several hosts need redis-sentinel:// or redis-cluster://")
	}
	for _, h := range hosts {
		a, err := hostPort(h, defPort)
		if err != nil {
			return fail("%v", err)
		}
		rc.Addrs = append(rc.Addrs, a)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return fail("bad query: %v", err)
	}
	switch kind {
	case "standalone":
		rc.DB, err = parseDB(strings.TrimSuffix(path, "/"))
		if err != nil {
			return fail("%v", err)
		}
	case "sentinel":
		rc.MasterName = strings.TrimSuffix(path, "/")
		if rc.MasterName == "" || strings.Contains(rc.MasterName, "/") {
			return fail("sentinel URL needs exactly one master name as its path (…/mymaster)")
		}
		if rc.DB, err = parseDB(q.Get("db")); err != nil {
			return fail("%v", err)
		}
		rc.SentinelUsername = q.Get("sentinel_username")
		rc.SentinelPassword = q.Get("sentinel_password")
	case "cluster":
		if strings.Trim(path, "/") != "" {
			return fail("cluster URL has no path (Cluster has only database 0)")
		}
		rc.Cluster = true
	}
	for k := range q {
		switch {
		case kind == "sentinel" && (k == "db" || k == "sentinel_username" || k == "sentinel_password"):
		default:
			return fail("unknown query parameter %q", k)
		}
	}
	return rc, nil
}

func hostPort(h, defPort string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("empty host in host list")
	}
	host, port := h, defPort
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		var err error
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			host = h[1 : len(h)-1]
		} else if host, port, err = net.SplitHostPort(h); err != nil {
			return "", fmt.Errorf("bad host %q: %v", h, err)
		}
	} else if strings.Contains(h, ":") {
		return "", fmt.Errorf("bad host %q: IPv6 addresses need brackets", h)
	}
	if host == "" {
		return "", fmt.Errorf("empty host name in %q", h)
	}
	if strings.ContainsAny(host, " \t/@?#%") {
		return "", fmt.Errorf("bad host name %q", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port %q in %q", port, h)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

func parseDB(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("bad database number %q", s)
	}
	return n, nil
}

// redact hides the passwords of a URL for error messages.
func redact(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 && strings.Contains(strings.ToLower(raw[i:]), "password") {
		raw = raw[:i] + "?xxxxx"
	}
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	hosts, _, _ := strings.Cut(rest, "/")
	at := strings.LastIndexByte(hosts, '@')
	if at < 0 {
		return raw
	}
	ui := hosts[:at]
	if u, _, ok := strings.Cut(ui, ":"); ok {
		i := strings.Index(raw, ui)
		return raw[:i] + u + ":xxxxx" + raw[i+len(ui):]
	}
	return raw
}
