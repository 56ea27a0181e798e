package bounce

import (
	"net/netip"
	"strings"
)

// What a refusal's diagnostic says about our sending host: the block
// lists it names (Blocklists) and the address of the client it refused
// (ClientAddr), which is ours, since the refusal answers our mail. The
// alerts (package alerts) group refusals of our mail by that host.
//
// Both read free text written by the remote site, so they are lenient
// and bounded: at most maxDiagScan bytes are read, at most maxLists names
// returned, and a name must look like what it claims to be (a DNS zone
// after a phrase that announces a list, a URL host or a word of a
// well-known list's operator).

const (
	maxDiagScan = 4096
	maxLists    = 4
)

// listCues announce the list a host is on; the DNS zone that follows is
// the list's name ("blocked using zen.spamhaus.org").
var listCues = []string{
	"blocked using ", "listed in ", "listed at ", "listed on ", "listed by ", "listed with ",
	"blacklisted by ", "blacklisted in ", "blacklisted at ", "blacklisted on ",
	"blocklisted by ", "blocklisted in ", "blocklisted at ", "blocklisted on ",
	"found in ", "found on ", "dnsbl ", "dnsbl: ", "rbl ", "rbl: ", "rbl=", "rbl-",
	"blocked by ", "rejected using ",
}

// listOperators are words naming well-known list operators, with the
// name reported for them when the diagnostic names no zone of theirs.
var listOperators = []struct{ word, name string }{
	{"spamhaus", "spamhaus"}, {"spamcop", "spamcop"}, {"sorbs", "sorbs"}, {"barracuda", "barracuda"},
	{"uceprotect", "uceprotect"}, {"abuseat", "cbl.abuseat.org"}, {"mailspike", "mailspike"},
	{"psbl", "psbl"}, {"spamrats", "spamrats"}, {"invaluement", "invaluement"}, {"hostkarma", "hostkarma"},
	{"backscatterer", "backscatterer"}, {"nordspam", "nordspam"}, {"0spam", "0spam"},
	{"uribl", "uribl"}, {"surbl", "surbl"}, {"senderscore", "senderscore"}, {"spameatingmonkey", "spameatingmonkey"},
}

// Blocklists returns the block lists a refusal's diagnostic names, lower
// case, without duplicates, in order of appearance (at most 4): DNS zones
// after a phrase such as "blocked using" or "listed in", hosts of URLs
// that name a list operator, the operators' own names ("listed in
// Spamhaus") and Microsoft's block list codes ("(S3150)").
func Blocklists(diag string) []string {
	if len(diag) > maxDiagScan {
		diag = diag[:maxDiagScan]
	}
	low := strings.ToLower(diag)
	var out []string
	add := func(n string) {
		if n == "" || len(out) >= maxLists {
			return
		}
		for _, x := range out {
			if x == n || strings.HasSuffix(x, "."+n) || strings.Contains(x, n) && !strings.Contains(n, ".") {
				return
			}
		}
		out = append(out, n)
	}
	for _, cue := range listCues {
		for from := 0; len(out) < maxLists; {
			i := strings.Index(low[from:], cue)
			if i < 0 {
				break
			}
			at := from + i + len(cue)
			from = at
			tok := zoneToken(low[at:])
			if !looksZone(tok) {
				continue
			}
			if cue == "blocked by " && operatorOf(tok) == "" {
				// "blocked by mx1.example.net": a host, not a list,
				// unless a known operator's.
				continue
			}
			add(tok)
		}
	}
	for from := 0; len(out) < maxLists; {
		i := strings.Index(low[from:], "://")
		if i < 0 {
			break
		}
		at := from + i + 3
		from = at
		host := zoneToken(low[at:])
		if op := operatorOf(host); op != "" && looksZone(host) {
			add(registered(host))
		}
	}
	for _, op := range listOperators {
		if wordAt(low, op.word) >= 0 {
			add(op.name)
		}
	}
	// Outlook.com and Office 365: "part of their network is on our block
	// list (S3150)".
	if i := strings.Index(low, "block list (s"); i >= 0 {
		code := low[i+len("block list (s"):]
		n := 0
		for n < len(code) && n < 6 && code[n] >= '0' && code[n] <= '9' {
			n++
		}
		if n >= 3 && n < len(code) && code[n] == ')' {
			add("microsoft s" + code[:n])
		}
	}
	return out
}

// zoneToken is the DNS-name-like token at the start of s: letters,
// digits, dots and hyphens, trailing dots removed.
func zoneToken(s string) string {
	s = strings.TrimLeft(s, " \t\"'<([")
	n := 0
	for n < len(s) && n < 253 {
		c := s[n]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' {
			n++
			continue
		}
		break
	}
	return strings.Trim(s[:n], ".-")
}

// looksZone reports whether s is a plausible DNS zone: at least two
// labels, a top-level label of letters, and not an IP address.
func looksZone(s string) bool {
	if len(s) < 4 || !strings.Contains(s, ".") {
		return false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if tld[i] < 'a' || tld[i] > 'z' {
			return false
		}
	}
	return true
}

func operatorOf(host string) string {
	for _, op := range listOperators {
		if strings.Contains(host, op.word) {
			return op.name
		}
	}
	return ""
}

// registered is a host's last two labels (www.spamhaus.org: spamhaus.org).
func registered(host string) string {
	labels := strings.Split(host, ".")
	if len(labels) <= 2 {
		return host
	}
	return strings.Join(labels[len(labels)-2:], ".")
}

// wordAt finds w in s where it is not part of a longer word; -1 if not.
func wordAt(s, w string) int {
	for from := 0; ; {
		i := strings.Index(s[from:], w)
		if i < 0 {
			return -1
		}
		i += from
		before := i == 0 || !isWordByte(s[i-1])
		after := i+len(w) >= len(s) || !isWordByte(s[i+len(w)])
		if before && after {
			return i
		}
		from = i + len(w)
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
}

// clientCues come just before the refused client's address in the texts
// MTAs write ("Client host [192.0.2.1] blocked", "your IP 192.0.2.1",
// "messages from [192.0.2.1] weren't sent").
var clientCues = []string{
	"client host ", "client host: ", "client ", "client ip ", "client ip: ", "client address ", "client=",
	"your ip ", "your ip: ", "your ip address ", "ip address ", "ip address: ", "ip: ", "ip ", "ip=", "sender ip ",
	"sending ip ", "sending ip: ", "connecting ip ", "source ip ", "messages from ", "mail from ip ", "from ip ",
	"/ip/", "query/ip/", "lookup/", "?ip=", "&ip=",
}

// listedAfter are words that follow an address a list names ("192.0.2.1
// is listed", "192.0.2.1 has been blocked").
var listedAfter = []string{" is listed", " listed", " is blocked", " has been blocked", " blocked", " is on", " was blocked", " is blacklisted", " has been blacklisted"}

// ClientAddr returns the address of the SMTP client a refusal names: the
// host that sent our mail to the refusing site. It is the address after a
// phrase such as "Client host" or "your IP", the one before "is listed",
// or Postfix's "<name[address]>: Client host rejected". The remote host
// itself ("host mx.example.net[192.0.2.9] said:") is never taken. The zero
// Addr when the text names none.
func ClientAddr(diag string) netip.Addr {
	if len(diag) > maxDiagScan {
		diag = diag[:maxDiagScan]
	}
	low := strings.ToLower(diag)
	var fallback netip.Addr
	refuses := refusesHost(low)
	for i := 0; i < len(low); {
		start, end, addr, ok := nextAddr(low, i)
		if !ok {
			break
		}
		i = end
		before := low[:start]
		after := low[end:]
		trimmed := strings.TrimRight(before, "[<( ")
		switch {
		case strings.HasSuffix(strings.TrimLeft(after, "]"), " said") || strings.HasPrefix(strings.TrimLeft(after, "]"), " said"):
			// "host NAME[IP] said:": the remote host.
			continue
		case hasAnySuffix(before, clientCues) || hasAnySuffix(trimmed+" ", clientCues) || hasAnySuffix(trimmed, clientCues):
			return addr
		case hasAnyPrefix(strings.TrimLeft(after, "]>)"), listedAfter):
			return addr
		case strings.HasPrefix(after, "]>:") && strings.Contains(after[:min(len(after), 40)], "client host rejected"):
			// Postfix: "<name[IP]>: Client host rejected: ...".
			return addr
		}
		if !fallback.IsValid() && strings.HasSuffix(before, "[") && !strings.HasPrefix(after, "] said") && strings.HasPrefix(after, "]") && refuses {
			// A bare "[IP]" in a refusal of the sending host.
			if len(before) < 2 || !isHostByte(before[len(before)-2]) {
				fallback = addr
			}
		}
	}
	return fallback
}

// refusesHost reports whether a diagnostic speaks of refusing the
// sending host, so that a bare "[address]" in it is likely that host's.
func refusesHost(low string) bool {
	for _, w := range []string{"client", "listed", "blocked", "rbl", "blacklist", "blocklist", "block list", "reputation"} {
		if strings.Contains(low, w) {
			return true
		}
	}
	return false
}

func isHostByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-'
}

func hasAnySuffix(s string, xs []string) bool {
	for _, x := range xs {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}

func hasAnyPrefix(s string, xs []string) bool {
	for _, x := range xs {
		if strings.HasPrefix(s, x) {
			return true
		}
	}
	return false
}

// nextAddr finds the next IPv4 or IPv6 literal in s at or after i: its
// bounds and value.
func nextAddr(s string, i int) (start, end int, addr netip.Addr, ok bool) {
	for i < len(s) {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == ':') {
			i++
			continue
		}
		if i > 0 && (isWordByte(s[i-1]) || s[i-1] == '.' || s[i-1] == ':') {
			// Inside a word or a longer token: skip the token.
			for i < len(s) && (isWordByte(s[i]) || s[i] == '.' || s[i] == ':') {
				i++
			}
			continue
		}
		j := i
		for j < len(s) && j-i < 45 && (s[j] >= '0' && s[j] <= '9' || s[j] >= 'a' && s[j] <= 'f' || s[j] == ':' || s[j] == '.') {
			j++
		}
		tok := strings.TrimRight(s[i:j], ".:")
		if j < len(s) && isWordByte(s[j]) {
			// Part of a word ("deadbeef" in "deadbeefs").
			for j < len(s) && (isWordByte(s[j]) || s[j] == '.' || s[j] == ':') {
				j++
			}
			i = j
			continue
		}
		if a, err := netip.ParseAddr(tok); err == nil && (a.Is4() && strings.Count(tok, ".") == 3 || a.Is6() && strings.Count(tok, ":") >= 2) {
			return i, i + len(tok), a.Unmap(), true
		}
		i = j
	}
	return 0, 0, netip.Addr{}, false
}
