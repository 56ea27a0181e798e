package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/policy"
)

// startPolicyService listens on listen.policy and returns the policy
// service, built on the same engine and store as the milter. When the
// milter runs too, the policy service counts nothing and leaves untagged
// bounces to it (one count per message, and the milter reads the body).
func startPolicyService(cfg *config.Config, e *backscatter.Engine, store storeHandle, log *slog.Logger, svc *services) (extraService, error) {
	ln, err := listen(cfg.Listen.Policy, cfg.Listen.SocketMode)
	if err != nil {
		return extraService{}, fmt.Errorf("policy: cannot listen on %s: %w", cfg.Listen.Policy, err)
	}
	opts := []policy.Option{
		policy.WithLogger(log),
		policy.WithStoreTimeout(store.timeout()),
		policy.WithMilter(cfg.Listen.Milter.IsSet()),
		policy.WithObserver(store.observer()),
	}
	p := policy.NewPolicy(e, store.Store(), opts...)
	if cfg.Listen.Milter.IsSet() {
		log.Info("policy service: tags checked at RCPT; counting and untagged bounces left to the milter (serve --milter off for policy only)")
	} else {
		log.Info("policy service without the milter: untagged bounces decided at DATA on the envelope alone; nothing is signed here")
	}
	svc.extra = append(svc.extra, p.SetEngine)
	return extraService{
		name:     "policy " + cfg.Listen.Policy.String(),
		run:      func() error { return p.Serve(ln) },
		shutdown: p.Shutdown,
	}, nil
}

// policyLines are the main.cf lines for the policy service.
func policyLines(cfg *config.Config) string {
	if !cfg.Listen.Policy.IsSet() {
		return ""
	}
	ep := cfg.Listen.Policy.String()
	svc := "check_policy_service { " + ep + ", default_action=DUNNO }"
	var b strings.Builder
	b.WriteString("# Policy delegation: refuse forged, expired, unknown-key and replayed tags at RCPT,\n" +
		"# before DATA. Place check_policy_service after reject_unauth_destination (never\n" +
		"# ask it about relaying) and after permit_mynetworks/permit_sasl_authenticated (our\n" +
		"# users' mail is not a bounce to us).\n")
	fmt.Fprintf(&b, "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, %s\n", svc)
	if cfg.Listen.Milter.IsSet() {
		b.WriteString("# With the milter running, untagged bounces are decided by the milter at end of\n" +
			"# message (it reads the body for evidence); smtpd_data_restrictions are not needed.\n")
	} else {
		b.WriteString("# Untagged bounces are decided at DATA, on the envelope only: the policy service\n" +
			"# cannot read the body, so a genuine untagged bounce is refused in mode \"reject\"\n" +
			"# (use mode \"tag\" or \"quarantine\", or run the milter, to keep those).\n")
		fmt.Fprintf(&b, "smtpd_data_restrictions = %s\n", svc)
	}
	b.WriteString("# If the policy service is down or answers too slowly, Postfix carries on as if it\n" +
		"# said DUNNO (the default is \"451 4.3.5\", which defers all mail). The per-service\n" +
		"# default_action above needs Postfix 3.0; this is the global one.\n")
	b.WriteString("smtpd_policy_service_default_action = DUNNO\n")
	if !cfg.Listen.Milter.IsSet() {
		b.WriteString("# Policy only: nothing signs outbound mail here (a policy service cannot change the\n" +
			"# sender). Sign on the outbound relays with the milter and the same key file, and\n" +
			"# keep the socketmap (recipient_canonical_maps) so that tagged recipients are\n" +
			"# stripped and pass reject_unlisted_recipient.\n")
	}
	return b.String()
}
