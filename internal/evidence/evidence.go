package evidence

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/bounce-milter/bounce-milter/internal/bounce"
)

// Evidence strings are "<kind>:<detail>". The ladder order, strongest
// first, is the order of these prefixes.
const (
	AnalysisEvidenceStore = "store" // the original's id is in our sent store (added by the caller)
	AnalysisEvidenceDKIM  = "dkim"  // the returned original carries our valid DKIM signature
	AnalysisEvidenceRelay = "relay" // our relay appears in the original's Received lines
)

// EvidenceOptions configures CollectEvidence.
type EvidenceOptions struct {
	OurDomains []string // DKIM d= domains that prove we sent it (subdomains included)
	OurRelays  []string // host names or IPs of our outbound relays (subdomains included)
	// LookupTXT resolves DKIM key records; nil means DefaultLookupTXT.
	// Tests replace it with a stub.
	LookupTXT   func(domain string) ([]string, error)
	DKIMTimeout time.Duration // bound on the whole DKIM check; 0 means 3s
}

// DefaultLookupTXT returns a TXT resolver that gives up after timeout.
// go-msgauth's LookupTXT hook takes no context, so the deadline is applied
// here.
func DefaultLookupTXT(timeout time.Duration) func(string) ([]string, error) {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return func(domain string) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		txt, err := net.DefaultResolver.LookupTXT(ctx, domain)
		if err != nil {
			return nil, fmt.Errorf("looking up TXT %s: %w", domain, err)
		}
		return txt, nil
	}
}

// CollectEvidence looks for proof in the returned original that we sent it:
// our DKIM signature verifying, or our relays in its Received lines. It
// returns evidence strings such as "dkim:example.com" and
// "relay:mx1.example.com", strongest first; an empty slice means none.
// Store evidence ("store:<id>") is the caller's to add. A header-only
// original gives no DKIM verdict (its body hash cannot verify), which is not
// a failure, just no evidence.
func CollectEvidence(ctx context.Context, r *bounce.Report, opts EvidenceOptions) []string {
	out := []string{}
	if r == nil {
		return out
	}
	out = append(out, dkimEvidence(ctx, r, opts)...)
	out = append(out, relayEvidence(r, opts.OurRelays)...)
	return out
}

// dkimEvidence verifies the signatures of a full returned original.
func dkimEvidence(ctx context.Context, r *bounce.Report, opts EvidenceOptions) []string {
	if len(r.Original) == 0 || r.OriginalHeadersOnly || len(opts.OurDomains) == 0 {
		return nil
	}
	timeout := opts.DKIMTimeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lookup := opts.LookupTXT
	if lookup == nil {
		lookup = DefaultLookupTXT(timeout)
	}
	// Only keys of our own domains are worth a DNS query: a foreign
	// signature can never be evidence, and skipping it keeps a hostile
	// bounce from making us query arbitrary names.
	guarded := func(domain string) ([]string, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, d, _ := strings.Cut(strings.ToLower(strings.TrimSuffix(domain, ".")), "._domainkey.")
		if !domainMatches(d, opts.OurDomains) {
			return nil, fmt.Errorf("dkim key domain %q is not ours, not looked up", d)
		}
		type res struct {
			txt []string
			err error
		}
		ch := make(chan res, 1)
		go func() {
			txt, err := lookup(domain)
			ch <- res{txt, err}
		}()
		select {
		case v := <-ch:
			return v.txt, v.err
		case <-ctx.Done():
			return nil, fmt.Errorf("dkim key lookup %s: %w", domain, ctx.Err())
		}
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(r.Original), &dkim.VerifyOptions{
		LookupTXT:        guarded,
		MaxVerifications: 5,
	})
	if err != nil && len(vs) == 0 {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, v := range vs {
		if v.Err != nil {
			continue
		}
		d := strings.ToLower(v.Domain)
		if domainMatches(d, opts.OurDomains) && !seen[d] {
			seen[d] = true
			out = append(out, AnalysisEvidenceDKIM+":"+d)
		}
	}
	return out
}

// relayEvidence matches Received hosts of the original against our relays.
func relayEvidence(r *bounce.Report, relays []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, h := range r.ReceivedHosts {
		if domainMatches(h, relays) && !seen[h] {
			seen[h] = true
			out = append(out, AnalysisEvidenceRelay+":"+h)
		}
	}
	return out
}

// domainMatches reports whether name equals one of list or is a subdomain
// of one, comparing whole labels case-insensitively ("evilexample.com" does
// not match "example.com").
func domainMatches(name string, list []string) bool {
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if name == "" {
		return false
	}
	for _, d := range list {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" {
			continue
		}
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}

// AnalysisLadder applies the evidence ladder to the evidence of one message
// (CollectEvidence's plus the caller's "store:" entries): any one rung
// suffices. It returns the evidence that decided, strongest rung first
// (store, then dkim, then relay), and false when there is none, i.e. the
// message is backscatter.
func AnalysisLadder(evidence []string) (decided string, ok bool) {
	for _, rung := range []string{AnalysisEvidenceStore, AnalysisEvidenceDKIM, AnalysisEvidenceRelay} {
		for _, e := range evidence {
			if strings.HasPrefix(e, rung+":") {
				return e, true
			}
		}
	}
	return "", false
}
