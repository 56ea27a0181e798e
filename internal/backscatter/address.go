package backscatter

import "strings"

// An envelope address as the milter or the policy service is handed it is
// not always the address Postfix delivers to. Postfix (trivial-rewrite(8),
// with its defaults) reads an address like this:
//
//   - an RFC 5321 source route is dropped: "@relay.test:user@example.com"
//     is stored (and delivered) as "user@example.com" (RFC 5321 section
//     4.1.2 says to ignore the route);
//   - when the domain is local (mydestination, which holds $myhostname
//     and localhost by default; inet_interfaces; proxy_interfaces), it is
//     stripped, and what is left is read again if it still routes:
//     "user@example.com@localhost" is "user@example.com";
//   - swap_bangpath = yes: "example.com!user" is "user@example.com" (the
//     first '!' separates: "a!b!user" is "b!user@a");
//   - allow_percent_hack = yes: "user%example.com" is "user@example.com"
//     (the last '%' separates), so "user%example.com@localhost" reaches
//     user@example.com;
//   - comments are dropped: "alice(x)@example.com(y)" is
//     "alice@example.com";
//   - resolve_dequoted_address = yes: a quoted local part is opened and read for
//     '@', '%' and '!': "\"user@example.com\"@localhost" is
//     "user@example.com".
//
// Deciding on the address as received would let any of these forms reach
// our users unchecked. Which domains are local to Postfix the engine does
// not know, so it follows the chain as if every domain before one of ours
// were local, and decides on the first address of ours it reaches: if
// that domain was not local, Postfix would relay the mail elsewhere (or
// refuse to), and refusing a bounce to such an address costs nobody
// anything. An address it cannot read while one of our domains is in it is
// refused. (The milter also asks Postfix for {rcpt_addr}, the address
// Postfix itself resolved, which covers what Postfix adds, such as
// $myorigin after a bare local part.)

// maxRouteSteps bounds how many routing operators an address may chain
// before it counts as unreadable (Postfix's resolver gives up after 100).
const maxRouteSteps = 20

// envelopeAddress is an address taken apart the way Postfix would.
type envelopeAddress struct {
	Raw    string // as received, without angle brackets
	Stored string // as Postfix stores it in the queue file (source route dropped)
	// Routes are the addresses Postfix may deliver to, in the order it
	// would reach them: Stored first (when it has a domain), then what is
	// left after stripping each domain in turn as if it were local.
	Routes []string
}

// interpretAddress applies Postfix's address rewrites. ok is false when the
// address is not a plausible mailbox at all, or routes through more steps
// than anyone would write.
func interpretAddress(raw string) (a envelopeAddress, ok bool) {
	raw = strings.TrimSpace(raw)
	if len(raw) >= 2 && raw[0] == '<' && raw[len(raw)-1] == '>' {
		raw = raw[1 : len(raw)-1]
	}
	a.Raw = raw
	s := raw
	if strings.IndexByte(s, '(') >= 0 {
		var ok bool
		if s, ok = stripComments(s); !ok {
			return a, false
		}
	}
	// Source route: "@a,@b:local@domain".
	if strings.HasPrefix(s, "@") {
		i := topIndex(s, ':', false)
		if i < 0 {
			return a, false
		}
		s = s[i+1:]
	}
	a.Stored = s
	if s == "" || !balanced(s) {
		return a, false
	}
	for step := 0; ; step++ {
		if step > maxRouteSteps || len(s) > 2*maxAddressLength {
			return a, false
		}
		at := topIndex(s, '@', true)
		if at < 0 {
			// No domain: a routing operator makes one; a bare local part
			// is Postfix's to qualify ($myorigin), unknown here.
			next, routed := unroute(s)
			if !routed {
				return a, true
			}
			s = next
			continue
		}
		a.Routes = append(a.Routes, s)
		// As if the domain were local: strip it and read what is left.
		local := s[:at]
		if topIndex(local, '@', true) >= 0 {
			s = local // "user@example.com@localhost"
			continue
		}
		next, routed := unroute(local)
		if !routed {
			return a, true
		}
		s = next
	}
}

// unroute applies one routing operator to a local part without a domain:
// a bang path ("host!rest": rest@host), else the percent hack
// ("rest%host": rest@host), else, for a quoted local part, what the quotes
// hide ('@', else '%' as '@', else '!'). routed is false when the local
// part does not route.
func unroute(local string) (string, bool) {
	// An empty part is kept as Postfix keeps it: "!user" routes to the
	// bare "user", "%example.com" to "@example.com" (an empty local part
	// of our domain, which is then refused as unreadable).
	if i := topIndex(local, '!', false); i >= 0 {
		host, rest := local[:i], local[i+1:]
		if host == "" {
			return rest, rest != ""
		}
		return rest + "@" + host, true
	}
	if i := topIndex(local, '%', true); i >= 0 {
		if i == len(local)-1 {
			return local[:i], i > 0
		}
		return local[:i] + "@" + local[i+1:], true
	}
	if inner, ok := unquote(local); ok {
		switch {
		case strings.IndexByte(inner, '@') >= 0:
			return inner, true
		case strings.IndexByte(inner, '%') >= 0:
			i := strings.LastIndexByte(inner, '%')
			return inner[:i] + "@" + inner[i+1:], true
		case strings.IndexByte(inner, '!') >= 0:
			return inner, true
		}
	}
	return local, false
}

// unquote returns the text of a local part that is one quoted string, its
// backslash escapes undone.
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		switch s[i] {
		case '\\':
			i++
			if i >= len(s)-1 {
				return "", false
			}
		case '"':
			return "", false // a quote inside: more than one token
		}
		b.WriteByte(s[i])
	}
	return b.String(), true
}

// stripComments drops RFC 5322 comments ("alice(x)@example.com(y)"), as
// Postfix's address parser does; ok is false for a comment that does not
// end.
func stripComments(s string) (string, bool) {
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && (quoted || depth > 0):
			if i+1 == len(s) {
				return "", false
			}
			if depth == 0 {
				b.WriteByte(ch)
				b.WriteByte(s[i+1])
			}
			i++
			continue
		case quoted:
			quoted = ch != '"'
		case ch == '(':
			depth++
			continue
		case ch == ')' && depth > 0:
			depth--
			continue
		case depth > 0:
			continue
		case ch == '"':
			quoted = true
		}
		b.WriteByte(ch)
	}
	return b.String(), depth == 0 && !quoted
}

// balanced reports whether every quoted string and domain literal in s
// ends: one that does not hides where the address ends.
func balanced(s string) bool {
	quoted, literal := false, false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\\' && (quoted || literal):
			i++
			if i == len(s) {
				return false
			}
		case quoted:
			quoted = ch != '"'
		case literal:
			literal = ch != ']'
		case ch == '"':
			quoted = true
		case ch == '[':
			literal = true
		}
	}
	return !quoted && !literal
}

// topIndex is the index of the first (or last) c in s outside quoted
// strings and domain literals, as Postfix's address tokenizer sees it; -1
// when there is none.
func topIndex(s string, c byte, last bool) int {
	found := -1
	quoted, literal := false, false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\\' && (quoted || literal):
			i++
		case quoted:
			quoted = ch != '"'
		case literal:
			literal = ch != ']'
		case ch == '"':
			quoted = true
		case ch == '[':
			literal = true
		case ch == c:
			if !last {
				return i
			}
			found = i
		}
	}
	return found
}

// mentionsDomain reports whether one of our domains appears in an address
// we cannot interpret, as a whole label sequence between the characters
// that delimit the parts of an address.
func mentionsDomain(raw string, ours func(domain string) bool) bool {
	for _, part := range strings.FieldsFunc(strings.ToLower(raw), func(r rune) bool {
		return strings.ContainsRune("@%!\"<>:,; ()[]\\\t", r)
	}) {
		if d := strings.TrimSuffix(part, "."); d != "" && ours(d) {
			return true
		}
	}
	return false
}
