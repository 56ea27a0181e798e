package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return o.String(), e.String(), code
}

func TestKeygenSignVerifyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	var lines []string
	for _, k := range []string{"1", "4"} {
		out, errOut, code := runCLI(t, "keygen", "--keynum", k)
		if code != 0 || !strings.HasPrefix(out, k+" ") || len(strings.TrimSpace(out)) != 2+64 {
			t.Fatalf("keygen: %q %q %d", out, errOut, code)
		}
		lines = append(lines, out)
	}
	if lines[0] == lines[1] {
		t.Fatal("keygen repeated a secret")
	}
	if err := os.WriteFile(keys, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "sign", "--key-file", keys, "--date", "2026-11-26", "Alice@Example.com")
	tagged := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(tagged, "prvs=4") || !strings.HasSuffix(tagged, "=Alice@Example.com") {
		t.Fatalf("sign: %q %q %d", out, errOut, code)
	}
	// Flags after the address work too.
	out2, _, _ := runCLI(t, "sign", "Alice@Example.com", "--key-file", keys, "--date", "2026-11-26")
	if out2 != out {
		t.Fatalf("sign with flags last: %q, want %q", out2, out)
	}
	for _, tc := range []struct {
		date, addr string
		code       int
		stdout     string
		reason     string
	}{
		{"2026-11-26", tagged, 0, "Alice@Example.com", ""},
		{"2026-12-03", tagged, 0, "Alice@Example.com", ""},
		{"2026-12-04", tagged, 1, "", "expired"},
		{"2026-11-26", strings.Replace(tagged, "=Alice@", "=Bob@", 1), 1, "", "bad-signature"},
		{"2026-11-26", "prvs=9" + tagged[6:], 1, "", "unknown-key"},
		{"2026-11-26", "Alice@Example.com", 1, "", "not-tagged"},
		{"2026-11-26", "not an address", 2, "", ""},
	} {
		out, errOut, code := runCLI(t, "verify", "--key-file", keys, "--date", tc.date, tc.addr)
		if code != tc.code || strings.TrimSpace(out) != tc.stdout || (tc.reason != "" && !strings.HasPrefix(errOut, tc.reason+"\n")) {
			t.Errorf("verify %s on %s: code %d stdout %q stderr %q; want %d %q %q", tc.addr, tc.date, code, out, errOut, tc.code, tc.stdout, tc.reason)
		}
	}
	// Signing key 1 explicitly still verifies: all listed keys verify.
	out, _, _ = runCLI(t, "sign", "--key-file", keys, "--keynum", "1", "a@example.org")
	if _, _, code := runCLI(t, "verify", "--key-file", keys, strings.TrimSpace(out)); code != 0 {
		t.Fatalf("key 1 tag does not verify")
	}
	// A readable key file is refused.
	if err := os.Chmod(keys, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "sign", "--key-file", keys, "a@example.org"); code != 2 || !strings.Contains(errOut, "group or others") {
		t.Fatalf("0644 key file: %q %d", errOut, code)
	}
}

func TestUsageAndHelp(t *testing.T) {
	if _, _, code := runCLI(t); code != 2 {
		t.Fatal("no command: want exit 2")
	}
	if _, _, code := runCLI(t, "frobnicate"); code != 2 {
		t.Fatal("unknown command: want exit 2")
	}
	for name := range commands {
		out, errOut, code := runCLI(t, name, "--help")
		if code != 0 || !strings.Contains(strings.ToLower(out), "usage: bounce-milter "+name) {
			t.Errorf("%s --help: code %d, stdout %q, stderr %q", name, code, out, errOut)
		}
	}
	for _, cmd := range []string{"sign", "verify"} {
		if _, errOut, code := runCLI(t, cmd, "--key-file", "/nonexistent", "a@example.com", "b@example.com"); code != 2 || !strings.Contains(errOut, "exactly one ADDRESS") {
			t.Fatalf("%s with two addresses: code %d, %q", cmd, code, errOut)
		}
	}
	if _, _, code := runCLI(t, "sign", "--no-such-flag"); code != 2 {
		t.Fatal("bad flag: want exit 2")
	}
	if _, _, code := runCLI(t, "verify", "--key-file", "/nonexistent", "prvs=0123cfcd40=a@b"); code != 2 {
		t.Fatal("missing key file: want exit 2")
	}
}

func TestStrip(t *testing.T) {
	out, _, code := runCLI(t, "strip", "prvs=0123cfcd40=user@example.com", "btv1==x==u@example.net", "u+prvs=0123cfcd40@example.org", "plain@example.com")
	want := "user@example.com\nu@example.net\nu@example.org\nplain@example.com\n"
	if code != 0 || out != want {
		t.Fatalf("strip: %q %d", out, code)
	}
	if _, _, code := runCLI(t, "strip", "nonsense"); code != 1 {
		t.Fatal("strip of a non-address: want exit 1")
	}
}
