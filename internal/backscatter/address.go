package backscatter

import "strings"

// An envelope address as the milter or the policy service is handed it is
// not always the address Postfix delivers to. Postfix, with its defaults:
//
//   - drops an RFC 5321 source route: "@relay.test:user@example.com" is
//     stored (and delivered) as "user@example.com" (RFC 5321 section 4.1.2
//     says to ignore the route);
//   - swap_bangpath = yes: "example.com!user" is "user@example.com";
//   - allow_percent_hack = yes: "user%example.com@localhost", with localhost
//     a local domain, is "user@example.com".
//
// Deciding on the address as received would let any of these forms reach
// our users unchecked, so the engine decides on what Postfix will deliver
// to (Delivered), and refuses an address it cannot interpret when one of
// our domains is in it.

// envelopeAddress is an address taken apart the way Postfix would.
type envelopeAddress struct {
	Raw    string // as received, without angle brackets
	Stored string // as Postfix stores it in the queue file (source route dropped)
	// Delivered is the address Postfix delivers to after the bang-path and
	// percent rewrites; equal to Stored when neither applies.
	Delivered string
}

// interpretAddress applies Postfix's default address rewrites. ok is false
// when the address is not a plausible mailbox at all.
func interpretAddress(raw string) (a envelopeAddress, ok bool) {
	raw = strings.TrimSpace(raw)
	if len(raw) >= 2 && raw[0] == '<' && raw[len(raw)-1] == '>' {
		raw = raw[1 : len(raw)-1]
	}
	a.Raw = raw
	s := raw
	// Source route: "@a,@b:local@domain".
	if strings.HasPrefix(s, "@") {
		i := strings.IndexByte(s, ':')
		if i < 0 {
			return a, false
		}
		s = s[i+1:]
	}
	a.Stored = s
	a.Delivered = s
	at := strings.LastIndexByte(s, '@')
	local, domain := s, ""
	if at >= 0 {
		local, domain = s[:at], s[at+1:]
	}
	// Bang path: "host!user" (or "a!b!user": the first host is the next
	// hop; Postfix rewrites it to "b!user@a").
	if at < 0 && strings.IndexByte(local, '!') > 0 {
		i := strings.IndexByte(local, '!')
		host, rest := local[:i], local[i+1:]
		if host == "" || rest == "" {
			return a, false
		}
		a.Delivered = rest + "@" + host
		local, domain = rest, host
		if strings.IndexByte(rest, '!') >= 0 {
			// A longer path routes through host: Postfix relays it there.
			return a, true
		}
	}
	// Percent hack: "user%domain@local" (the last '%' separates).
	// (A bare local part gets $myorigin appended by Postfix; nothing of
	// ours can be told from it, and the caller finds no domain.)
	if pct := strings.LastIndexByte(local, '%'); pct > 0 && pct < len(local)-1 {
		a.Delivered = local[:pct] + "@" + local[pct+1:]
	}
	_ = domain
	return a, true
}

// mentionsDomain reports whether one of our domains appears in an address
// we cannot interpret, as a whole label sequence after '@', '%', '!' or at
// the start.
func mentionsDomain(raw string, ours func(domain string) bool) bool {
	lower := strings.ToLower(raw)
	for i := 0; i < len(lower); i++ {
		switch lower[i] {
		case '@', '%', '!', '"', '<', ':', ',', ' ':
		default:
			continue
		}
		rest := lower[i+1:]
		end := strings.IndexAny(rest, "@%!\"<>:, ;()")
		if end < 0 {
			end = len(rest)
		}
		if d := strings.TrimSuffix(rest[:end], "."); d != "" && ours(d) {
			return true
		}
	}
	// "example.com!user": the domain at the start.
	if i := strings.IndexAny(lower, "!"); i > 0 && ours(lower[:i]) {
		return true
	}
	return false
}
