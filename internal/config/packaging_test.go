package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The configuration the Debian package installs as
// /etc/bounce-milter/bounce-milter.toml documents every key with its
// default. These tests keep it from drifting from this package.
const packagedConfig = "../../packaging/bounce-milter.toml"

var (
	// "#key = value": a setting shown with its default.
	commentedSetting = regexp.MustCompile(`^#([a-z_]+ = .*)$`)
	// "#key = ", "# key = " or "key = ": any mention of a key.
	anyKey = regexp.MustCompile(`^#? ?([a-z_]+) = `)
	// "[section]", "# [domains."x"]".
	anySection = regexp.MustCompile(`^#? ?\[([^\]]+)\]`)
)

func readPackaged(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// As installed: it parses, names the package's paths, and has no domain
// (nothing is signed or refused until the admin adds one).
func TestPackagedConfigParses(t *testing.T) {
	c, err := Parse(readPackaged(t), packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/bounce-milter" || c.KeyFile != "/etc/bounce-milter/keys" {
		t.Errorf("data_dir %q key_file %q", c.DataDir, c.KeyFile)
	}
	if c.Listen.Milter.String() != "unix:/var/spool/postfix/bounce-milter/milter.sock" || c.Listen.Socketmap.String() != "unix:/var/spool/postfix/bounce-milter/socketmap.sock" {
		t.Errorf("listen: milter %q socketmap %q", c.Listen.Milter, c.Listen.Socketmap)
	}
	if len(c.Domains) != 0 {
		t.Errorf("the packaged config has domains %v; it must have none", c.DomainNames())
	}
}

// Removing the "#" of every "#key = value" line changes nothing: the
// defaults written in the file are the defaults of the code.
func TestPackagedConfigDefaultsAreTheDefaults(t *testing.T) {
	data := readPackaged(t)
	var out []string
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if m := commentedSetting.FindStringSubmatch(line); m != nil {
			line = m[1]
			n++
		}
		out = append(out, line)
	}
	if n < 20 {
		t.Fatalf("only %d commented settings found", n)
	}
	asIs, err := Parse(data, packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	uncommented, err := Parse([]byte(strings.Join(out, "\n")), packagedConfig+" (uncommented)")
	if err != nil {
		t.Fatalf("a commented default is not a valid setting: %v", err)
	}
	for _, c := range []*Config{asIs, uncommented} {
		for _, s := range []*[]string{&c.Outbound.OptOut, &c.Outbound.VERPSenders, &c.Inbound.Exempt, &c.Inbound.Relays} {
			if len(*s) == 0 {
				*s = nil
			}
		}
		if len(c.Outbound.TrustedNetworks) == 0 {
			c.Outbound.TrustedNetworks = nil
		}
		if len(c.Store.Redis.Addrs) == 0 {
			c.Store.Redis.Addrs = nil
		}
	}
	// [store] is compared as the cache package sees it, defaults applied:
	// an unset duration and its default written out are the same setting.
	if a, u := asIs.Store.Cache(), uncommented.Store.Cache(); !reflect.DeepEqual(a, u) {
		t.Errorf("a commented [store] default differs from the code's default:\n as is:       %+v\n uncommented: %+v", a, u)
	}
	uncommented.Store = asIs.Store
	if !reflect.DeepEqual(asIs, uncommented) {
		t.Errorf("a commented default differs from the code's default:\n as is:       %+v\n uncommented: %+v", *asIs, *uncommented)
	}
	// And the code's defaults are what the file says for the keys it
	// leaves commented.
	def := Default("/var/lib/bounce-milter")
	def.KeyFile = "/etc/bounce-milter/keys"
	def.Listen.Socketmap = asIs.Listen.Socketmap
	def.Listen.Milter = asIs.Listen.Milter // the default depends on whether Postfix is installed
	if !reflect.DeepEqual(def, asIs) {
		t.Errorf("packaged config differs from Default beyond data_dir, key_file, listen:\n default: %+v\n file:    %+v", *def, *asIs)
	}
}

// Every key the decoder knows is mentioned in the file, in its section.
func TestPackagedConfigMentionsEveryKey(t *testing.T) {
	mentioned := map[string]bool{}
	section := ""
	for _, line := range strings.Split(string(readPackaged(t)), "\n") {
		if m := anySection.FindStringSubmatch(line); m != nil {
			section = m[1]
			if strings.HasPrefix(section, "domains.") {
				section = "domains.*"
			}
			continue
		}
		if m := anyKey.FindStringSubmatch(line); m != nil {
			key := m[1]
			if section != "" {
				key = section + "." + key
			}
			mentioned[key] = true
		}
	}
	var want []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			ft := f.Type
			switch {
			case ft.Kind() == reflect.Map:
				walk(prefix+name+".*.", ft.Elem())
			case ft.Kind() == reflect.Struct && ft.NumField() > 1 && f.Tag.Get("toml") != "" && ft.Field(0).Tag.Get("toml") != "":
				walk(prefix+name+".", ft)
			default:
				want = append(want, prefix+name)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
	if len(want) < 30 {
		t.Fatalf("only %d keys found in Config: %v", len(want), want)
	}
	for _, k := range want {
		if !mentioned[k] {
			t.Errorf("%s does not document the key %q", packagedConfig, k)
		}
	}
	for k := range mentioned {
		if !slices.Contains(want, k) {
			t.Errorf("%s mentions %q, which is not a key", packagedConfig, k)
		}
	}
}
