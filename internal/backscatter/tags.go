package backscatter

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Scheme names the kind of tag an address carries.
type Scheme string

// Tag schemes. The first three are ours (they can verify with our keys); the
// foreign ones are recognised only so that an address is never signed twice
// and can be stripped, and never verify.
const (
	SchemeNone                 Scheme = ""
	SchemePRVS                 Scheme = "prvs"         // prvs=KDDDHHHHHH=local@domain
	SchemePRVSSub              Scheme = "prvs-sub"     // local+prvs=KDDDHHHHHH@domain
	SchemeVERP                 Scheme = "verp"         // vrp=KDDDH{16}=RCPT=local@domain (see verp.go)
	SchemeForeignPRVS          Scheme = "foreign-prvs" // Cisco IronPort: prvs=<9 hex>=local@domain
	SchemeBarracuda            Scheme = "btv1"         // btv1==TAG==local@domain
	SchemeSparkPost            Scheme = "msprvs1"      // msprvs1=TAG=local@domain
	SchemeReversedPRVS         Scheme = "prvs-reversed"
	SchemeSRS                  Scheme = "srs" // SRS0=/SRS1=: a forwarded sender, not a tag; never signed or stripped
	maxAddressLength                  = 1024
	defaultSubaddressDelimiter        = '+'
)

// Tag is an address taken apart. Local and Domain are the untagged address
// as received (case preserved).
type Tag struct {
	Raw    string
	Scheme Scheme
	Local  string
	Domain string
	KeyNum int
	Stamp  int    // DDD: expiry day mod 1000
	Hash   []byte // decoded signature bytes
	// VERP only: the recipient the return path was made for.
	Recipient string
}

// Ours reports whether the tag is of a form bounce-milter signs.
func (t Tag) Ours() bool {
	return t.Scheme == SchemePRVS || t.Scheme == SchemePRVSSub || t.Scheme == SchemeVERP
}

// Tagged reports whether the address carries any tag or SRS wrapping, ours
// or foreign: such an address must not be signed again.
func (t Tag) Tagged() bool { return t.Scheme != SchemeNone }

// Untagged is the address without its tag.
func (t Tag) Untagged() string { return t.Local + "@" + t.Domain }

var errNoAt = errors.New("no @ in address")

// splitAddress splits local@domain at the last '@' and checks the parts are
// plausible. It does not unquote: tags are computed over the address text.
func splitAddress(address string) (local, domain string, err error) {
	if len(address) > maxAddressLength {
		return "", "", fmt.Errorf("address longer than %d bytes", maxAddressLength)
	}
	address = strings.TrimSuffix(strings.TrimPrefix(address, "<"), ">")
	at := strings.LastIndexByte(address, '@')
	if at < 0 {
		return "", "", fmt.Errorf("%q: %w", address, errNoAt)
	}
	local, domain = address[:at], address[at+1:]
	if local == "" {
		return "", "", fmt.Errorf("%q: empty local part", address)
	}
	if domain == "" {
		return "", "", fmt.Errorf("%q: empty domain", address)
	}
	for _, c := range []byte(address) {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' {
			return "", "", fmt.Errorf("%q: control character, space or angle bracket in address", address)
		}
	}
	return local, domain, nil
}

// ParseTag takes an address apart: which tag it carries, if any, and the
// untagged address. delim is the sub-address delimiter for the
// local+prvs=... form (0 for '+'). An address without a tag is not an error
// (Scheme is SchemeNone); an address that cannot be an address is.
func ParseTag(address string, delim byte) (Tag, error) {
	local, domain, err := splitAddress(address)
	if err != nil {
		return Tag{}, err
	}
	if delim == 0 {
		delim = defaultSubaddressDelimiter
	}
	t := Tag{Raw: local + "@" + domain, Local: local, Domain: domain}
	lower := strings.ToLower(local)
	switch {
	case strings.HasPrefix(lower, "prvs="):
		rest := local[len("prvs="):]
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return t, nil
		}
		val, core := rest[:eq], rest[eq+1:]
		if core == "" {
			return t, nil
		}
		if len(val) == 10 && isDigits(val[:4]) && isHex(val[4:]) {
			t.Scheme, t.Local = SchemePRVS, core
			t.KeyNum = int(val[0] - '0')
			t.Stamp = atoi3(val[1:4])
			t.Hash, _ = hex.DecodeString(val[4:])
			return t, nil
		}
		if len(val) == 9 && isHex(val) {
			t.Scheme, t.Local = SchemeForeignPRVS, core
			return t, nil
		}
		// Reversed form prvs=local=TAG@domain, seen in the wild.
		if len(core) >= 6 && isHex(core) {
			t.Scheme, t.Local = SchemeReversedPRVS, val
			return t, nil
		}
		if isAlnumDash(val) {
			// Some other prvs-like value: treat as a foreign tag so that it
			// is never signed again.
			t.Scheme, t.Local = SchemeForeignPRVS, core
		}
		return t, nil
	case strings.HasPrefix(lower, "btv1=="):
		rest := local[len("btv1=="):]
		if i := strings.Index(rest, "=="); i >= 0 && rest[i+2:] != "" {
			t.Scheme, t.Local = SchemeBarracuda, rest[i+2:]
		}
		return t, nil
	case strings.HasPrefix(lower, "msprvs1="):
		rest := local[len("msprvs1="):]
		if i := strings.IndexByte(rest, '='); i >= 0 && rest[i+1:] != "" {
			t.Scheme, t.Local = SchemeSparkPost, rest[i+1:]
		}
		return t, nil
	case strings.HasPrefix(lower, "srs0=") || strings.HasPrefix(lower, "srs1="):
		t.Scheme = SchemeSRS
		return t, nil
	case strings.HasPrefix(lower, verpPrefix):
		if v, ok := parseVERPLocal(local); ok {
			v.Raw, v.Domain = t.Raw, domain
			return v, nil
		}
		return t, nil
	}
	// Sub-address form: local<delim>prvs=KDDDHHHHHH
	const subLen = len("prvs=") + 10
	if len(local) > subLen+1 && local[len(local)-subLen-1] == delim {
		s := local[len(local)-subLen:]
		if strings.EqualFold(s[:5], "prvs=") && isDigits(s[5:9]) && isHex(s[9:]) {
			t.Scheme, t.Local = SchemePRVSSub, local[:len(local)-subLen-1]
			t.KeyNum = int(s[5] - '0')
			t.Stamp = atoi3(s[6:9])
			t.Hash, _ = hex.DecodeString(s[9:])
			return t, nil
		}
	}
	return t, nil
}

// Strip returns the address without any tag, ours or foreign. SRS addresses
// are returned unchanged: they are a different address, not a tag.
func Strip(address string, delim byte) (string, error) {
	t, err := ParseTag(address, delim)
	if err != nil {
		return "", err
	}
	if t.Scheme == SchemeSRS {
		return t.Raw, nil
	}
	return t.Untagged(), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if (s[i] < '0' || s[i] > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

func isAlnumDash(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if (s[i] < '0' || s[i] > '9') && (c < 'a' || c > 'z') && s[i] != '-' {
			return false
		}
	}
	return s != ""
}

func atoi3(s string) int {
	return int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
}
