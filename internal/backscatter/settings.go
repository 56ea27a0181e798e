package backscatter

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Settings is everything the engine decides by. The configuration file
// (package config) converts into it; the engine never reads a file.
type Settings struct {
	// Domains are our domains by lower-case name, each with its
	// effective settings (the file's top level filled in).
	Domains map[string]Domain
	// Grace is how long after a domain's Since untagged bounces to it are
	// accepted: they can answer mail sent before signing began.
	Grace time.Duration

	// Outbound: which mail is ours to sign.
	TrustedNetworks    []netip.Prefix
	OriginatingDaemons []string // {daemon_name} values (ORIGINATING)
	OptOut             []string // senders never signed (patterns)
	VERPSenders        []string // senders signed with a signed VERP

	// Inbound: how bounces to our domains are judged.
	BounceSenders []string // local parts of non-null bounce senders (mailer-daemon)
	Exempt        []string // recipients never refused (postmaster and abuse always)
	// PassThrough are recipients that are not user mailboxes and are left
	// alone: PostSRSd's SRS0=/SRS1= addresses and the VERP bounce addresses
	// of list managers, which their owners verify themselves.
	PassThrough []string
	// Relays are our outbound relays (host names or IP addresses): the
	// topmost hop of a returned original naming one is evidence.
	Relays       []string
	OnStoreError ErrorAction // untagged bounce, store down (reject mode only)
	Header       string      // the verdict header's name
	// UnrecordedTagBudget is how many bounces a valid tag of which the
	// store has no signing record may receive: a tag found by guessing
	// gets a few, not an unlimited number.
	UnrecordedTagBudget int
	// ReplaySlack is how many bounces a tag may receive beyond the
	// recipients it was signed for.
	ReplaySlack int
}

// Domain is one of our domains with its effective settings.
type Domain struct {
	Name      string // lower case
	Mode      Mode
	Syntax    Syntax
	Delimiter byte // sub-address delimiter
	Lifetime  int  // tag lifetime in days
	Sign      bool // sign outbound mail (inbound checks run either way)
	// Since is when signing began for the domain: until Since + Grace,
	// untagged bounces are accepted.
	Since time.Time
}

// RecordTTL is how long the record of a message signed for the domain
// must be kept: its tags' lifetime plus the one day of skew verification
// allows plus two days for bounces that arrive late.
func (d Domain) RecordTTL() time.Duration { return time.Duration(d.Lifetime+3) * 24 * time.Hour }

// Mode is what happens to an untagged bounce without evidence. The zero
// value means "not set" (follow the top level).
type Mode uint8

// Modes, from the gentlest.
const (
	ModeUnset Mode = iota
	ModeOff
	ModeTag
	ModeQuarantine
	ModeReject
)

var modeNames = []string{"", "off", "tag", "quarantine", "reject"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", m)
}

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames[1:] {
		if strings.EqualFold(s, n) {
			return Mode(i + 1), nil
		}
	}
	return ModeUnset, fmt.Errorf("mode %q: want off, tag, quarantine or reject", s)
}

// UnmarshalText implements encoding.TextUnmarshaler (configuration files).
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	*m = v
	return err
}

// Syntax is the tag syntax.
type Syntax uint8

// Tag syntaxes.
const (
	SyntaxUnset      Syntax = iota
	SyntaxPRVS              // prvs=KDDDHHHHHH=user@domain
	SyntaxSubaddress        // user+prvs=KDDDHHHHHH@domain
)

func (s Syntax) String() string {
	if int(s) < 3 {
		return [...]string{"", "prvs", "subaddress"}[s]
	}
	return fmt.Sprintf("syntax(%d)", s)
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Syntax) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "prvs":
		*s = SyntaxPRVS
	case "subaddress":
		*s = SyntaxSubaddress
	default:
		return fmt.Errorf("syntax %q: want prvs or subaddress", b)
	}
	return nil
}

// ErrorAction is what happens when something fails: the store, or the
// daemon itself.
type ErrorAction uint8

// Error actions.
const (
	ErrorUnset ErrorAction = iota
	ErrorAccept
	ErrorAcceptUnsigned
	ErrorTempfail
	ErrorReject
)

var errorActionNames = []string{"", "accept", "accept-unsigned", "tempfail", "reject"}

func (a ErrorAction) String() string {
	if int(a) < len(errorActionNames) {
		return errorActionNames[a]
	}
	return fmt.Sprintf("action(%d)", a)
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *ErrorAction) UnmarshalText(b []byte) error {
	for i, n := range errorActionNames[1:] {
		if strings.EqualFold(string(b), n) {
			*a = ErrorAction(i + 1)
			return nil
		}
	}
	return fmt.Errorf("action %q: want accept, accept-unsigned, tempfail or reject", b)
}

// DefaultPassThrough are the recipients left alone unless configured
// otherwise: PostSRSd's addresses and the bounce addresses of mailing-list
// managers (Mailman's list-bounces+user=host, majordomo's owner-list,
// list-owner, ezmlm's list-return-, VERP-shaped local parts).
var DefaultPassThrough = []string{"srs0=*", "srs1=*", "*+*=*", "owner-*", "*-owner", "*-bounces", "*-bounces+*", "*-return-*", "*-request"}
