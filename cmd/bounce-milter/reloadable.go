package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/bounce"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/keyfile"
	"github.com/bounce-milter/bounce-milter/internal/milter"
	"github.com/bounce-milter/bounce-milter/internal/policy"
	"github.com/bounce-milter/bounce-milter/internal/safeio"
)

// reloadable is everything built from one configuration that a reload can
// change: the engine (domains, modes, keys, exemptions, relays, tag
// lifetimes and so the records' TTL), and the settings of every service
// derived from it. A reload builds a whole new one, and only when that
// succeeds swaps it into every service at once (services.apply); a
// message in flight finishes with the reloadable it began with. What a
// reload does not change (listen addresses, the store, the data
// directory, logging) is listed in package config's documentation.
type reloadable struct {
	cfg    *config.Config
	engine *backscatter.Engine
	milter milter.Settings
	policy policy.Settings
}

// buildReloadable loads the key files and the signing dates and builds the
// engine and the services' settings from cfg.
func buildReloadable(cfg *config.Config, now time.Time) (*reloadable, error) {
	ring, err := keyfile.Ring(cfg.KeySpec())
	if err != nil {
		return nil, err
	}
	since, err := signingSince(cfg, now)
	if err != nil {
		return nil, err
	}
	e := backscatter.New(cfg.Engine(since), ring)
	lim := bounce.DefaultLimits()
	lim.MaxBytes = int64(cfg.Inbound.MaxMessageBytes)
	return &reloadable{
		cfg:    cfg,
		engine: e,
		milter: milter.Settings{
			Engine:          e,
			Limits:          lim,
			StripInMilter:   cfg.Inbound.StripTags == "milter",
			OnError:         cfg.Inbound.OnError,
			OutboundOnError: cfg.Outbound.OnError,
		},
		policy: policy.Settings{Engine: e, OnError: cfg.Inbound.OnError},
	}, nil
}

// signingSince returns when signing began per domain where the config
// does not say: the date recorded in the data directory the first time the
// domain was seen (recorded now for new domains, atomically).
func signingSince(cfg *config.Config, now time.Time) (map[string]time.Time, error) {
	path := filepath.Join(cfg.DataDir, "domains-since.json")
	recorded := map[string]time.Time{}
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &recorded); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	changed := false
	for _, d := range cfg.DomainNames() {
		if eff, _ := cfg.For(d); !eff.Since.IsZero() {
			continue
		}
		if _, ok := recorded[d]; !ok {
			recorded[d], changed = now.UTC(), true
		}
	}
	if changed {
		data, _ := json.MarshalIndent(recorded, "", "  ")
		if err := safeio.WriteFile(path, append(data, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("recording domains: %w", err)
		}
	}
	return recorded, nil
}

// readSince is signingSince without recording anything (postfix-config):
// a domain not recorded yet begins at now, as it would at serve's start.
func readSince(cfg *config.Config, now time.Time) map[string]time.Time {
	recorded := map[string]time.Time{}
	if data, err := os.ReadFile(filepath.Join(cfg.DataDir, "domains-since.json")); err == nil {
		_ = json.Unmarshal(data, &recorded)
	}
	for _, d := range cfg.DomainNames() {
		if _, ok := recorded[d]; !ok {
			recorded[d] = now.UTC()
		}
	}
	return recorded
}
