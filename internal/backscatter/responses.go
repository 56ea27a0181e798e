package backscatter

import (
	"net/netip"
	"strings"
)

// Responses is what the alerts in force (package alerts) ask of the
// decisions, as a site configured it ([alerts] responses, all off by
// default): a read-only snapshot, replaced whole when the alerts change,
// which the adapters hand to the engine with each message. The engine
// only reads it; a nil *Responses asks nothing.
type Responses struct {
	// Hold lists our senders (lower case, untagged) whose mail is deferred
	// until an admin clears their alert; NoSign those whose mail leaves
	// unsigned while their alert lasts, so that the bounces of what a
	// compromised account sends are refused like backscatter.
	Hold, NoSign map[string]bool
	// Strict lists our domains (lower case) whose untagged bounces without
	// evidence are judged as in the flood (strict) state while the domain
	// is being forged: as if every recipient of the domain were over
	// [store.flood] recipient_limit.
	Strict map[string]bool
}

// Empty reports whether r asks nothing.
func (r *Responses) Empty() bool {
	return r == nil || len(r.Hold)+len(r.NoSign)+len(r.Strict) == 0
}

// StrictDomain reports whether untagged bounces to domain are judged as
// in a flood.
func (r *Responses) StrictDomain(domain string) bool {
	return r != nil && len(r.Strict) > 0 && r.Strict[normDomain(domain)]
}

// Outbound says what becomes of our user's mail from sender: "" (signed as
// usual), ReasonAlertHold (deferred) or ReasonAlertNoSign (sent
// unsigned). The sender is compared untagged, without case and, failing
// that, without its sub-address extension.
func (r *Responses) Outbound(sender string) Reason {
	if r == nil || len(r.Hold)+len(r.NoSign) == 0 {
		return ""
	}
	s := strings.ToLower(strings.TrimSpace(sender))
	if t, err := ParseTag(s, 0); err == nil && t.Tagged() {
		s = strings.ToLower(t.Untagged())
	}
	forms := []string{s}
	if at := strings.LastIndexByte(s, '@'); at > 0 {
		if plus := strings.IndexByte(s[:at], '+'); plus > 0 {
			forms = append(forms, s[:plus]+s[at:])
		}
	}
	for _, f := range forms {
		if r.Hold[f] {
			return ReasonAlertHold
		}
	}
	for _, f := range forms {
		if r.NoSign[f] {
			return ReasonAlertNoSign
		}
	}
	return ""
}

// HostOurs reports whether a host name or address is one of ours: an
// outbound relay ([inbound] relays) or a name under one of our domains.
// The bounce events use it to find our sending host in a returned
// original's Received hops.
func (e *Engine) HostOurs(host string) bool {
	host = normDomain(strings.Trim(host, "[]"))
	if host == "" {
		return false
	}
	if e.relays[host] {
		return true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return e.relayIPs[a.Unmap()]
	}
	return e.dkimDomainOurs(host)
}
