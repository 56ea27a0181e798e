package bounce

import (
	"net/mail"
	"net/netip"
	"strings"
	"time"
)

// Hop is one Received header field of a returned original (RFC 5321
// section 4.4), taken apart as far as the field is reliable:
//
//	Received: from HELO (NAME [IP]) by BY ...          Postfix, Sendmail
//	Received: from NAME ([IP] helo=HELO) by BY ...     Exim
//
// Which part is trustworthy depends on who wrote the line: the receiving
// MTA writes NAME and IP from the TCP connection (NAME being a reverse
// lookup it made), while HELO is whatever the client said. Every line of a
// returned original can have been forged by whoever sent the original,
// except the ones added after it left the sender; see package backscatter
// for how relay evidence uses the topmost hop only.
type Hop struct {
	Helo string     // the name the client gave (lower case), "" when unknown
	Name string     // the client's name as the receiving MTA resolved it (lower case), "" when unknown
	IP   netip.Addr // the client's address, invalid when absent
	By   string     // the receiving host (lower case)
}

// maxHops bounds the hops kept per original.
const maxHops = 32

// parseHops takes Received values (topmost first) apart.
func parseHops(values []string) []Hop {
	var out []Hop
	for _, v := range values {
		if len(out) == maxHops {
			break
		}
		if h, ok := parseHop(v); ok {
			out = append(out, h)
		}
	}
	return out
}

// parseHop reads one Received value. It returns false when the value has
// neither a from nor a by clause.
func parseHop(v string) (Hop, bool) {
	var h Hop
	s := strings.TrimSpace(unfoldValue(v))
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "from ") || strings.HasPrefix(lower, "from\t") {
		rest := strings.TrimSpace(s[5:])
		first, after := cutToken(rest)
		first = strings.ToLower(strings.TrimSuffix(first, "."))
		after = strings.TrimSpace(after)
		// Several comments may follow (qmail: "(HELO x) ([ip])").
		var comment string
		for strings.HasPrefix(after, "(") {
			var c string
			c, after = matchParen(after)
			comment += " " + c
			after = strings.TrimSpace(after)
		}
		h.Helo = first
		if ip, ok := bracketIP(first); ok {
			h.IP, h.Helo = ip, ""
		}
		if comment != "" {
			name, ip, helo := readTCPInfo(comment)
			if ip.IsValid() {
				h.IP = ip
			}
			if helo != "" {
				// Exim: "from NAME ([IP] helo=HELO)": the first token is
				// the name Exim looked up, the HELO is in the comment.
				h.Name, h.Helo = h.Helo, helo
			} else if name != "" {
				h.Name = name
			}
		}
		s = after
		lower = strings.ToLower(s)
	}
	if i := indexWord(lower, "by"); i >= 0 {
		by, _ := cutToken(strings.TrimSpace(s[i+2:]))
		h.By = strings.ToLower(strings.TrimSuffix(by, "."))
	}
	if h.Helo == "" && h.Name == "" && !h.IP.IsValid() && h.By == "" {
		return Hop{}, false
	}
	if h.Name == "unknown" {
		h.Name = ""
	}
	return h, true
}

// readTCPInfo reads the comment after the from name: "NAME [IP]",
// "[IP]", "[IP] helo=HELO", "HELO=x", "IP".
func readTCPInfo(c string) (name string, ip netip.Addr, helo string) {
	toks := strings.FieldsFunc(c, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' || r == ')' || r == '(' })
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		lt := strings.ToLower(tok)
		switch {
		case (lt == "helo" || lt == "ehlo") && i+1 < len(toks):
			// qmail, Courier: "(HELO name)".
			i++
			helo = strings.TrimSuffix(strings.ToLower(toks[i]), ".")
		case strings.HasPrefix(lt, "helo="):
			helo = strings.TrimSuffix(lt[5:], ".")
		case strings.HasPrefix(tok, "["):
			if a, ok := bracketIP(tok); ok && !ip.IsValid() {
				ip = a
			}
		default:
			if a, err := netip.ParseAddr(tok); err == nil && !ip.IsValid() {
				ip = a
				continue
			}
			if name == "" && !ip.IsValid() && hostLike(strings.TrimSuffix(lt, ".")) {
				name = strings.TrimSuffix(lt, ".")
			}
		}
	}
	return name, ip, helo
}

// bracketIP reads "[192.0.2.1]" or "[IPv6:2001:db8::1]".
func bracketIP(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if len(s) > 5 && strings.EqualFold(s[:5], "ipv6:") {
		s = s[5:]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func cutToken(s string) (tok, rest string) {
	i := strings.IndexAny(s, " \t(;")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// matchParen returns the content of the parenthesised comment s starts
// with, and what follows it.
func matchParen(s string) (inner, rest string) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return s[1:i], s[i+1:]
			}
		}
	}
	return s[1:], ""
}

// indexWord finds word as a whole word in s (lower case) outside comments.
func indexWord(s, word string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
			continue
		case ')':
			if depth > 0 {
				depth--
			}
			continue
		}
		if depth > 0 || !strings.HasPrefix(s[i:], word) {
			continue
		}
		if (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') && i+len(word) < len(s) && (s[i+len(word)] == ' ' || s[i+len(word)] == '\t') {
			return i
		}
	}
	return -1
}

// parseDate reads a Date header value; zero when absent or unreadable.
func parseDate(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return time.Time{}
	}
	return t
}
