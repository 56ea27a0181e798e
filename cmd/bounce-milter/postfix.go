package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/keyfile"
)

// The Postfix lines for each deployment bounce-milter supports. Every
// deployment keeps recipient validation working (reject_unlisted_recipient
// with relay_recipient_maps, virtual_mailbox_maps or local_recipient_maps)
// for tagged recipients: Postfix counts an address that
// recipient_canonical_maps rewrites as known, so either the socketmap
// (exact: only valid tags are rewritten, and it needs the daemon) or a
// static regexp map (every tag-shaped address of our domains is rewritten;
// the milter or policy service refuses forged tags at RCPT before that
// matters; Postfix needs nothing from the daemon to use it) is part of
// every deployment, unless the milter strips tags itself (strip_tags =
// "milter", for sites without recipient validation).

// RegexpMapPath is where postfix-config suggests the regexp map (in
// Postfix's configuration directory, --postfix-dir).
const RegexpMapPath = "/etc/postfix/bounce-milter-tags.regexp"

// regexpMapName is its file name.
const regexpMapName = "bounce-milter-tags.regexp"

// regexpMap is the static regexp table that strips our tags from
// recipients of our domains (regexp_table(5); lookups are
// case-insensitive).
func regexpMap(e *backscatter.Engine, path string) string {
	var b strings.Builder
	b.WriteString("# bounce-milter: strip tags from recipients of our domains (recipient_canonical_maps).\n" +
		"# Any tag-shaped address is rewritten; forged tags are refused at RCPT by\n" +
		"# bounce-milter before Postfix uses this map. Regenerate after changing domains:\n" +
		"#   bounce-milter postfix-config --regexp-map > " + path + "\n")
	names := e.DomainNames()
	if len(names) == 0 {
		b.WriteString("# (no domains configured)\n")
		return b.String()
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	doms := "(" + strings.Join(quoted, "|") + ")"
	fmt.Fprintf(&b, "/^prvs=[0-9]{4}[0-9a-f]{6}=(.+@%s)$/\t${1}\n", doms)
	fmt.Fprintf(&b, "/^vrp=[0-9]{4}[0-9a-f]{16}=[a-z2-7]+=(.+@%s)$/\t${1}\n", doms)
	delims := map[byte][]string{}
	for _, n := range names {
		d, _ := e.Domain(n)
		delims[d.Delimiter] = append(delims[d.Delimiter], regexp.QuoteMeta(n))
	}
	keys := make([]int, 0, len(delims))
	for d := range delims {
		keys = append(keys, int(d))
	}
	sort.Ints(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "/^(.+)%sprvs=[0-9]{4}[0-9a-f]{6}@(%s)$/\t${1}@${2}\n",
			regexp.QuoteMeta(string(rune(k))), strings.Join(delims[byte(k)], "|"))
	}
	return b.String()
}

// tagFilterMap is an inline regexp table (regexp_table(5), Postfix 3.7)
// that returns a tag-shaped address unchanged and finds nothing for any
// other: in front of the socketmap in a pipemap, it keeps Postfix from
// asking bounce-milter about every recipient (and from waiting for it
// while it is down). It lets through whatever the socketmap could strip:
// "prvs=" anywhere in the local part (prvs=KDDDHHHHHH=user and the
// sub-address form user+prvs=KDDDHHHHHH) and signed VERP (vrp=...);
// regexp tables match case-insensitively. The $ is doubled for main.cf,
// where "$$" is a literal "$"; the pattern needs no "$" anchor (an address
// has no newline, so ".*" reaches its end).
const tagFilterMap = "regexp:{{/^(.*prvs=.*|vrp=.*)/ $${1}}}"

// postfixInfo is what the lines depend on in the Postfix they are for.
type postfixInfo struct {
	version      string // mail_version, or "" when unknown
	inlineRegexp bool   // inline regexp tables (Postfix 3.7 and later)
}

// detectPostfix asks postconf for Postfix's version. Without postconf
// (the lines printed on another machine) it assumes a current Postfix.
func detectPostfix(pfDir string) postfixInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	args := []string{"-h", "mail_version"}
	if pfDir != "" {
		if _, err := os.Stat(filepath.Join(pfDir, "main.cf")); err == nil {
			args = append([]string{"-c", pfDir}, args...)
		}
	}
	out, err := exec.CommandContext(ctx, "postconf", args...).Output()
	if err != nil {
		return postfixInfo{inlineRegexp: true}
	}
	v := strings.TrimSpace(string(out))
	return postfixInfo{version: v, inlineRegexp: postfixAtLeast(v, 3, 7)}
}

// postfixAtLeast reports whether version (mail_version, e.g. "3.7.11" or
// "3.10-20250101") is at least major.minor; an unreadable one counts as
// current.
func postfixAtLeast(version string, major, minor int) bool {
	var ma, mi int
	if n, _ := fmt.Sscanf(version, "%d.%d", &ma, &mi); n < 2 {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// postfixLines are the main.cf and master.cf lines for cfg.
func postfixLines(cfg *config.Config, e *backscatter.Engine, now time.Time, mapPath string, pf postfixInfo) string {
	var b strings.Builder
	milterOn, smOn, policyOn := cfg.Listen.Milter.IsSet(), cfg.Listen.Socketmap.IsSet(), cfg.Listen.Policy.IsSet()
	var deployment string
	switch {
	case milterOn && policyOn && smOn:
		deployment = "milter, policy service and socketmap"
	case milterOn && policyOn:
		deployment = "milter and policy service, regexp map"
	case milterOn && smOn:
		deployment = "milter and socketmap"
	case milterOn:
		deployment = "milter only, regexp map"
	case policyOn && smOn:
		deployment = "policy service and socketmap (no milter)"
	case policyOn:
		deployment = "policy service only, regexp map (no milter)"
	case smOn:
		deployment = "socketmap only"
	}
	signOn := cfg.Listen.Sign.IsSet()
	if signOn {
		deployment += "; sign-only milter on submission"
	}
	fmt.Fprintf(&b, "# bounce-milter deployment: %s\n", deployment)
	b.WriteString("# --- main.cf (postconf -e '...' each line, then postfix reload) ---\n")
	signer := cfg.Listen.Milter
	if signOn {
		signer = cfg.Listen.Sign
	}
	if milterOn {
		b.WriteString("# Mail from SMTP clients: sign our users' senders, check bounces to us.\n")
		fmt.Fprintf(&b, "smtpd_milters = %s\n", config.PostfixEndpoint(cfg.Listen.Milter))
	}
	if milterOn || signOn {
		b.WriteString("# Mail from sendmail(1)/pickup: signed, never rejected.\n")
		fmt.Fprintf(&b, "non_smtpd_milters = %s\n", config.PostfixEndpoint(signer))
		b.WriteString("# At the MX: if bounce-milter is down, the milter step is skipped and mail\n" +
			"# flows unchecked and unsigned (the submission service below waits instead).\n")
		b.WriteString("milter_default_action = accept\n")
		b.WriteString("milter_protocol = 6\n")
	}
	switch {
	case smOn && pf.inlineRegexp:
		b.WriteString("# Strip valid tags before delivery; lets tagged recipients pass\n" +
			"# reject_unlisted_recipient and repairs Postfix's own bounces to tagged senders.\n" +
			"# The inline regexp in front (Postfix 3.7 or later) passes only tag-shaped\n" +
			"# recipients on to bounce-milter: mail to anyone else never waits for it.\n" +
			"# While bounce-milter is down, mail to tagged recipients (bounces) is deferred\n" +
			"# (4xx, retried by the senders; nothing is lost).\n")
		fmt.Fprintf(&b, "recipient_canonical_maps = pipemap:{%s, socketmap:%s:unbatv}\n", tagFilterMap, config.PostfixEndpoint(cfg.Listen.Socketmap))
		b.WriteString("recipient_canonical_classes = envelope_recipient\n")
	case smOn:
		fmt.Fprintf(&b, "# Strip valid tags before delivery; lets tagged recipients pass\n"+
			"# reject_unlisted_recipient and repairs Postfix's own bounces to tagged senders.\n"+
			"# Postfix %s asks this map about every recipient (Postfix 3.7 and later take an\n"+
			"# inline regexp in front that passes only tags on): while bounce-milter is down\n"+
			"# it cannot answer and Postfix defers ALL incoming mail (4xx, retried by the\n"+
			"# senders; nothing is lost). To keep mail flowing then, run serve --socketmap off\n"+
			"# and use the static regexp map that postfix-config prints instead.\n", pf.version)
		fmt.Fprintf(&b, "recipient_canonical_maps = socketmap:%s:unbatv\n", config.PostfixEndpoint(cfg.Listen.Socketmap))
		b.WriteString("recipient_canonical_classes = envelope_recipient\n")
	case cfg.Inbound.StripTags == "postfix":
		b.WriteString("# Strip tags before delivery with a static map (Postfix needs nothing from\n" +
			"# bounce-milter for it, so mail flows while bounce-milter is down); also lets\n" +
			"# tagged recipients pass reject_unlisted_recipient and repairs Postfix's own\n" +
			"# bounces to tagged senders. Create the map first:\n" +
			"#   bounce-milter postfix-config --regexp-map > " + mapPath + "\n")
		fmt.Fprintf(&b, "recipient_canonical_maps = regexp:%s\n", mapPath)
		b.WriteString("recipient_canonical_classes = envelope_recipient\n")
	default:
		b.WriteString("# strip_tags = \"milter\": the milter strips valid tags itself. Tagged recipients\n" +
			"# must then pass recipient validation on their own (no reject_unlisted_recipient,\n" +
			"# or tags in the recipient maps), and Postfix's own bounces to tagged senders\n" +
			"# keep the tag.\n")
	}
	b.WriteString(policyLines(cfg))
	b.WriteString("\n# --- master.cf: mark mail of your users on submission as ours; while\n" +
		"# bounce-milter is down, their mail waits (4xx) rather than leave unsigned ---\n")
	b.WriteString("submission inet n - y - - smtpd\n  -o syslog_name=postfix/submission\n  -o smtpd_tls_security_level=encrypt\n" +
		"  -o smtpd_sasl_auth_enable=yes\n  -o milter_macro_daemon_name=ORIGINATING\n  -o milter_default_action=tempfail\n")
	if signOn {
		fmt.Fprintf(&b, "  -o smtpd_milters=%s\n", config.PostfixEndpoint(cfg.Listen.Sign))
	} else if !milterOn {
		b.WriteString("# (No milter here signs: sign on the outbound relays, or set listen.sign.)\n")
	}
	if st := e.Status(now); len(st) > 0 {
		b.WriteString("\n# Our domains (what bounce-milter does for each):\n")
		for _, s := range st {
			fmt.Fprintf(&b, "#   %s\n", s.Describe())
		}
	}
	return b.String()
}

// policyLines are the main.cf lines for the policy service.
func policyLines(cfg *config.Config) string {
	if !cfg.Listen.Policy.IsSet() {
		return ""
	}
	ep := config.PostfixEndpoint(cfg.Listen.Policy)
	svc := "check_policy_service { " + ep + ", default_action=DUNNO }"
	var b strings.Builder
	b.WriteString("# Policy delegation: refuse forged, expired, unknown-key and replayed tags at RCPT,\n" +
		"# before DATA. Place check_policy_service after reject_unauth_destination (never\n" +
		"# ask it about relaying) and after permit_mynetworks/permit_sasl_authenticated (our\n" +
		"# users' mail is not a bounce to us), before reject_unlisted_recipient.\n")
	fmt.Fprintf(&b, "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, %s, reject_unlisted_recipient\n", svc)
	if cfg.Listen.Milter.IsSet() {
		b.WriteString("# With the milter running, the milter decides untagged bounces at end of\n" +
			"# message (it reads the body for evidence) and counts bounces; smtpd_data_restrictions\n" +
			"# and smtpd_end_of_data_restrictions are not needed.\n")
	} else {
		b.WriteString("# Without the milter the policy service cannot read the body: it marks untagged\n" +
			"# bounces (X-Bounce-Check: neutral ... not checked), never refuses them, and counts\n" +
			"# bounces to valid tags at END-OF-MESSAGE (callouts and refused mail count nothing).\n")
		fmt.Fprintf(&b, "smtpd_data_restrictions = %s\n", svc)
		fmt.Fprintf(&b, "smtpd_end_of_data_restrictions = %s\n", svc)
	}
	b.WriteString("# If the policy service is down or answers too slowly, Postfix carries on as if it\n" +
		"# said DUNNO (the default is \"451 4.3.5\", which defers all mail). The per-service\n" +
		"# default_action above needs Postfix 3.0; this is the global one.\n")
	b.WriteString("smtpd_policy_service_default_action = DUNNO\n")
	if !cfg.Listen.Milter.IsSet() && !cfg.Listen.Sign.IsSet() {
		b.WriteString("# Policy only: nothing signs outbound mail here (a policy service cannot change the\n" +
			"# sender). Sign on the outbound relays with the milter, the same key file and the\n" +
			"# same store.\n")
	}
	return b.String()
}

func cmdPostfixConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("postfix-config", "postfix-config [--config FILE] [--milter ADDR] [--socketmap ADDR] [--policy ADDR] [--regexp-map]",
		"Prints the Postfix main.cf and master.cf lines for the configuration that serve would run,\n"+
			"with a comment on each, and what runs for each domain. --regexp-map prints the static\n"+
			"regexp map (recipient_canonical_maps) that strips tags when the socketmap is off.", stderr)
	sf := addServeFlags(fs)
	regexpOnly := fs.Bool("regexp-map", false, "print only the regexp map ("+regexpMapName+" in the Postfix directory)")
	pfDir := fs.String("postfix-dir", "/etc/postfix", "Postfix's configuration `directory` (postfix -c DIR), for the regexp map's path")
	if _, code, done := parseArgs(fs, args, stdout); done {
		return code
	}
	cfg, err := sf.loadConfig()
	if err != nil {
		fmt.Fprintf(stderr, "postfix-config: %v\n", err)
		return 2
	}
	// The engine without keys: the lines need the domains and modes only
	// (and the signing dates already recorded; nothing is written).
	ring, err := keyfile.RingForTool(cfg.KeySpec())
	if err != nil {
		ring = nil // the lines do not need the keys; the status then says "no signing key"
	}
	e := backscatter.New(cfg.Engine(readSince(cfg, time.Now())), ring)
	mapPath := filepath.Join(*pfDir, regexpMapName)
	if *regexpOnly {
		fmt.Fprint(stdout, regexpMap(e, mapPath))
		return 0
	}
	fmt.Fprint(stdout, postfixLines(cfg, e, time.Now(), mapPath, detectPostfix(*pfDir)))
	return 0
}
