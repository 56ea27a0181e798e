package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/config"
)

func TestPostfixConfigDeployments(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args         []string
		want, absent []string
	}{
		{nil, []string{
			"# bounce-milter deployment: milter and socketmap; sign-only milter on submission\n",
			"-o smtpd_milters=unix:",
			"smtpd_milters = unix:",
			"recipient_canonical_maps = pipemap:{" + tagFilterMap + ", socketmap:unix:",
			"mail to anyone else never waits for it",
			"milter_default_action = accept\n",
			"-o milter_default_action=tempfail\n",
			"-o milter_macro_daemon_name=ORIGINATING\n",
		}, []string{"check_policy_service", "recipient_canonical_maps = regexp:", "defers ALL", "mail still flows"}},
		{[]string{"--socketmap", "off"}, []string{
			"# bounce-milter deployment: milter only, regexp map; sign-only milter on submission\n",
			"recipient_canonical_maps = regexp:" + RegexpMapPath + "\n",
			"postfix-config --regexp-map > " + RegexpMapPath,
		}, []string{"socketmap:", "check_policy_service"}},
		{[]string{"--policy", "inet:127.0.0.1:8893"}, []string{
			"reject_unauth_destination, check_policy_service { inet:127.0.0.1:8893, default_action=DUNNO }, reject_unlisted_recipient\n",
			"smtpd_policy_service_default_action = DUNNO\n",
			"the milter decides untagged bounces",
		}, []string{"smtpd_data_restrictions =", "smtpd_end_of_data_restrictions ="}},
		{[]string{"--policy", "unix:/run/bm/policy", "--milter", "off", "--socketmap", "off"}, []string{
			"# bounce-milter deployment: policy service only, regexp map (no milter)\n",
			"smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, check_policy_service { unix:/run/bm/policy, default_action=DUNNO }, reject_unlisted_recipient\n",
			"smtpd_data_restrictions = check_policy_service { unix:/run/bm/policy, default_action=DUNNO }\n",
			"smtpd_end_of_data_restrictions = check_policy_service { unix:/run/bm/policy, default_action=DUNNO }\n",
			"recipient_canonical_maps = regexp:",
			"nothing signs outbound mail here",
		}, []string{"smtpd_milters"}},
		{[]string{"--domains", "example.com", "--grace", "10d"}, []string{
			"#   example.com: mode reject from ",
			"(grace period: untagged bounces without evidence accepted until then)",
		}, nil},
	} {
		out, errOut, code := runCLI(t, append([]string{"postfix-config", "--data-dir", dir}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: no %q in\n%s", tc.args, w, out)
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(out, a) {
				t.Errorf("%v: %q should not be in\n%s", tc.args, a, out)
			}
		}
	}
}

// The regexp map strips every tag form of our domains, and nothing else.
// (Postfix's regexp tables are POSIX extended expressions matched without
// case; these patterns mean the same in Go's syntax.)
func TestRegexpMap(t *testing.T) {
	e := backscatter.New(backscatter.Settings{Domains: map[string]backscatter.Domain{
		"example.com": {}, "sub.example": {Delimiter: '-'},
	}}, nil)
	m := regexpMap(e, RegexpMapPath)
	type rule struct {
		re   *regexp.Regexp
		repl string
	}
	var rules []rule
	for _, line := range strings.Split(m, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pat, repl, ok := strings.Cut(line, "\t")
		if !ok || !strings.HasPrefix(pat, "/") || !strings.HasSuffix(pat, "/") {
			t.Fatalf("bad line %q", line)
		}
		rules = append(rules, rule{regexp.MustCompile("(?i)" + pat[1:len(pat)-1]), repl})
	}
	lookup := func(addr string) string {
		for _, r := range rules {
			if sm := r.re.FindStringSubmatchIndex(addr); sm != nil {
				return string(r.re.ExpandString(nil, strings.NewReplacer("${1}", "$1", "${2}", "$2").Replace(r.repl), addr, sm))
			}
		}
		return ""
	}
	for in, want := range map[string]string{
		"prvs=1234abcdef=alice@example.com":                "alice@example.com",
		"PRVS=1234ABCDEF=alice@EXAMPLE.COM":                "alice@EXAMPLE.COM",
		"alice+prvs=1234abcdef@example.com":                "alice@example.com",
		"alice-prvs=1234abcdef@sub.example":                "alice@sub.example",
		"vrp=1234abcdef0123456789=mfrgg=alice@example.com": "alice@example.com",
		"prvs=1234abcdef=bob@other.example":                "",
		"prvs=234d5777c=alice@example.com":                 "",
		"alice@example.com":                                "",
		"prvs=1234abcdef=alice@example.com.evil.test":      "",
		"alice+prvs=1234abcdef@sub.example":                "",
	} {
		if got := lookup(in); got != want {
			t.Errorf("%s -> %q, want %q", in, got, want)
		}
	}
}

// Postfix before 3.7 has no inline regexp tables: the socketmap alone, and
// the comment says what that costs.
func TestPostfixLinesOldPostfix(t *testing.T) {
	cfg, err := config.Parse([]byte("data_dir = \"/nonexistent\"\n[listen]\nmilter = \"unix:/run/bm/m.sock\"\nsocketmap = \"unix:/run/bm/sm.sock\"\n"), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	e := backscatter.New(cfg.Engine(nil), nil)
	out := postfixLines(cfg, e, time.Now(), RegexpMapPath, postfixInfo{version: "3.5.18", inlineRegexp: false})
	for _, w := range []string{"recipient_canonical_maps = socketmap:unix:", "Postfix 3.5.18 asks this map about every recipient", "defers ALL incoming mail"} {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in\n%s", w, out)
		}
	}
	if strings.Contains(out, "pipemap") {
		t.Errorf("pipemap for Postfix 3.5:\n%s", out)
	}
	for v, want := range map[string]bool{"3.7.11": true, "3.7": true, "3.10-20250101": true, "4.0.1": true, "3.6.4": false, "2.11.3": false, "": true, "x": true} {
		if got := postfixAtLeast(v, 3, 7); got != want {
			t.Errorf("postfixAtLeast(%q, 3, 7) = %v", v, got)
		}
	}
}

// The filter in front of the socketmap passes every tag the engine makes,
// in every syntax and case, and nothing that carries no tag: whatever the
// socketmap could strip reaches it, and untagged mail never asks it.
func TestTagFilterMap(t *testing.T) {
	spec := strings.ReplaceAll(tagFilterMap, "$$", "$")
	m := regexp.MustCompile(`^regexp:\{\{/(.*)/ \$\{1\}\}\}$`).FindStringSubmatch(spec)
	if m == nil {
		t.Fatalf("tagFilterMap %q is not one inline regexp rule returning ${1}", tagFilterMap)
	}
	re := regexp.MustCompile("(?i)" + m[1])
	secret := []byte("filter-secret")
	now := time.Now()
	var tagged []string
	for _, addr := range []string{"alice@example.com", "a.b-c+d@sub.example", "x@y.z"} {
		p, err := backscatter.SignPRVS(addr, secret, 3, now, 7)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := backscatter.SignPRVSSubaddress(addr, '-', secret, 3, now, 7)
		if err != nil {
			t.Fatal(err)
		}
		v, err := backscatter.SignVERP(addr, "list@remote.example", secret, 3, now, 7)
		if err != nil {
			t.Fatal(err)
		}
		tagged = append(tagged, p, strings.ToUpper(p), sub, v, strings.ToUpper(v))
	}
	for _, a := range tagged {
		sm := re.FindStringSubmatch(a)
		if sm == nil || sm[1] != a {
			t.Errorf("%s: not passed on unchanged (%q)", a, sm)
		}
	}
	for _, a := range []string{"alice@example.com", "alice+news@example.com", "srs0=abcd=xy=remote.example=bob@example.com",
		"prv@example.com", "vrpx@example.com", "postmaster", "bounce-123@lists.example"} {
		if re.MatchString(a) {
			t.Errorf("%s: passed on to the socketmap", a)
		}
	}
}
