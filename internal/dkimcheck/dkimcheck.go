// Package dkimcheck verifies the DKIM signatures of an original that a
// bounce returns (RFC 6376), for the engine's evidence ladder: our valid
// signature on the original shows we sent it. It does DNS lookups, which is
// why it lives outside the pure decision engine: the adapters call it and
// hand the engine the results.
//
// Only keys of our own domains are looked up (the caller says which d=
// domains are ours): a foreign signature can never be evidence, and a
// hostile bounce must not make us query arbitrary names. A header-only
// original (text/rfc822-headers) gives no verdict at all, because the
// body hash is checked first (go-msgauth), which is not a failure.
package dkimcheck

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
)

// Checker verifies returned originals.
type Checker struct {
	// LookupTXT resolves DKIM key records; nil means the system resolver
	// with Timeout. Tests replace it.
	LookupTXT func(domain string) ([]string, error)
	// Timeout bounds one whole check (default 3 s).
	Timeout time.Duration
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

// Verify checks the signatures of original (the whole returned message)
// whose d= domain ours accepts, and returns them, valid or not. It returns
// nil when there is nothing to check.
func (c Checker) Verify(ctx context.Context, original []byte, ours func(domain string) bool) []backscatter.DKIMSignature {
	if len(original) == 0 || ours == nil {
		return nil
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lookup := c.LookupTXT
	if lookup == nil {
		lookup = DefaultLookupTXT(timeout)
	}
	guarded := func(name string) ([]string, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, d, _ := strings.Cut(strings.ToLower(strings.TrimSuffix(name, ".")), "._domainkey.")
		if !ours(d) {
			return nil, fmt.Errorf("dkim key domain %q is not ours, not looked up", d)
		}
		type res struct {
			txt []string
			err error
		}
		ch := make(chan res, 1)
		go func() {
			txt, err := lookup(name)
			ch <- res{txt, err}
		}()
		select {
		case v := <-ch:
			return v.txt, v.err
		case <-ctx.Done():
			return nil, fmt.Errorf("dkim key lookup %s: %w", name, ctx.Err())
		}
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(original), &dkim.VerifyOptions{
		LookupTXT:        guarded,
		MaxVerifications: 5,
	})
	if err != nil && len(vs) == 0 {
		return nil
	}
	date := originalDate(original)
	var out []backscatter.DKIMSignature
	for _, v := range vs {
		d := strings.ToLower(v.Domain)
		if !ours(d) {
			continue
		}
		s := backscatter.DKIMSignature{Domain: d, Valid: v.Err == nil, Signed: v.Time}
		if slices.ContainsFunc(v.HeaderKeys, func(k string) bool { return strings.EqualFold(k, "Date") }) {
			s.Date = date
		}
		out = append(out, s)
	}
	return out
}

// originalDate reads the original's Date header.
func originalDate(original []byte) time.Time {
	m, err := mail.ReadMessage(bytes.NewReader(original))
	if err != nil {
		return time.Time{}
	}
	t, err := m.Header.Date()
	if err != nil {
		return time.Time{}
	}
	return t
}
