package config

import (
	"sort"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/keyfile"
)

// The configuration converts into each package's own settings; no package
// below cmd reads this one's types.

// Engine returns the decision engine's settings. since gives, per domain,
// when signing began where the file does not say (the daemon records the
// first start that saw the domain).
func (c *Config) Engine(since map[string]time.Time) backscatter.Settings {
	s := backscatter.Settings{
		Domains:             map[string]backscatter.Domain{},
		Grace:               c.Grace.Duration,
		OriginatingDaemons:  c.Outbound.OriginatingDaemons,
		OptOut:              c.Outbound.OptOut,
		VERPSenders:         c.Outbound.VERPSenders,
		BounceSenders:       c.Inbound.BounceSenders,
		Exempt:              c.Inbound.Exempt,
		PassThrough:         c.Inbound.PassThrough,
		Relays:              c.Inbound.Relays,
		OnStoreError:        c.Inbound.OnStoreError,
		Header:              c.Inbound.Header,
		UnrecordedTagBudget: c.Inbound.UnrecordedTagBudget,
		ReplaySlack:         c.Store.Cache().ReplaySlack,
	}
	if s.UnrecordedTagBudget < 0 {
		s.UnrecordedTagBudget = 0 // no limit
	}
	for _, p := range c.Outbound.TrustedNetworks {
		s.TrustedNetworks = append(s.TrustedNetworks, p.Prefix)
	}
	for _, name := range c.DomainNames() {
		eff, _ := c.For(name)
		d := backscatter.Domain{Name: name, Mode: eff.Mode, Syntax: eff.Syntax, Delimiter: eff.Delimiter,
			Lifetime: eff.Lifetime, Sign: eff.Sign, Since: eff.Since}
		if d.Since.IsZero() {
			d.Since = since[name]
		}
		s.Domains[name] = d
	}
	return s
}

// KeySpec names the key files to load (package keyfile).
func (c *Config) KeySpec() keyfile.Spec {
	spec := keyfile.Spec{File: c.KeyFile, Signing: c.SigningKey, Domains: map[string]keyfile.DomainSpec{}}
	names := c.DomainNames()
	sort.Strings(names)
	for _, name := range names {
		d := c.Domains[name]
		if d.KeyFile == "" && d.SigningKey == nil {
			continue
		}
		eff, _ := c.For(name)
		spec.Domains[name] = keyfile.DomainSpec{File: eff.KeyFile, Signing: eff.SigningKey}
	}
	return spec
}

// MaxRecordTTL is the longest any domain's records must be kept: its tag
// lifetime plus three days.
func (c *Config) MaxRecordTTL() time.Duration {
	max := c.Lifetime
	for _, name := range c.DomainNames() {
		if eff, _ := c.For(name); eff.Lifetime > max {
			max = eff.Lifetime
		}
	}
	return time.Duration(max+3) * 24 * time.Hour
}
