package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/keyfile"
)

func cmdKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("keygen", "keygen [--keynum K]",
		"Prints a new key line \"K SECRET\" (32 random bytes from the system's CSPRNG, hex-encoded)\n"+
			"to append to a key file (mode 0600). The last key in a file signs; all verify.", stderr)
	keyNum := fs.Int("keynum", 0, "key number `K`, 0-9")
	if _, code, done := parseArgs(fs, args, stdout); done {
		return code
	}
	if *keyNum < 0 || *keyNum > 9 {
		fmt.Fprintf(stderr, "keygen: --keynum %d: want a digit 0-9\n", *keyNum)
		return 2
	}
	line, err := newKeyLine(*keyNum)
	if err != nil {
		fmt.Fprintf(stderr, "keygen: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	return 0
}

func newKeyLine(keyNum int) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return fmt.Sprintf("%d %s", keyNum, hex.EncodeToString(b[:])), nil
}

// tagFlags are the options sign and verify share.
type tagFlags struct {
	keyFile  *string
	date     *string
	lifetime *int
	delim    *string
}

func addTagFlags(fs interface {
	String(string, string, string) *string
	Int(string, int, string) *int
}) tagFlags {
	return tagFlags{
		keyFile:  fs.String("key-file", "", "key `file` (\"K SECRET\" lines, mode 0600); required"),
		date:     fs.String("date", "", "act as on `YYYY-MM-DD` (UTC) instead of today"),
		lifetime: fs.Int("lifetime", backscatter.DefaultLifetime, "tag lifetime in `days` (1-30)"),
		delim:    fs.String("delimiter", "+", "sub-address delimiter for the user+prvs=...@domain form"),
	}
}

// load checks what sign and verify share: one ADDRESS, the date, the
// lifetime, the delimiter, and the key file, which it loads.
func (t tagFlags) load(cmd string, pos []string, stderr io.Writer) (*backscatter.KeySet, time.Time, byte, bool) {
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "%s: want exactly one ADDRESS\n", cmd)
		return nil, time.Time{}, 0, false
	}
	if *t.keyFile == "" {
		fmt.Fprintf(stderr, "%s: --key-file is required\n", cmd)
		return nil, time.Time{}, 0, false
	}
	now := time.Now().UTC()
	if *t.date != "" {
		d, err := time.Parse(time.DateOnly, *t.date)
		if err != nil {
			fmt.Fprintf(stderr, "%s: --date %q: want YYYY-MM-DD\n", cmd, *t.date)
			return nil, time.Time{}, 0, false
		}
		now = d
	}
	if *t.lifetime < 1 || *t.lifetime > backscatter.MaxLifetime {
		fmt.Fprintf(stderr, "%s: --lifetime %d: want 1-%d days\n", cmd, *t.lifetime, backscatter.MaxLifetime)
		return nil, time.Time{}, 0, false
	}
	if len(*t.delim) != 1 {
		fmt.Fprintf(stderr, "%s: --delimiter %q: want one character\n", cmd, *t.delim)
		return nil, time.Time{}, 0, false
	}
	ks, err := keyfile.LoadForTool(*t.keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, time.Time{}, 0, false
	}
	return ks, now, (*t.delim)[0], true
}

func cmdSign(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("sign", "sign --key-file F [--keynum K] [--date YYYY-MM-DD] [--lifetime DAYS] [--subaddress | --verp RCPT] ADDRESS",
		"Prints ADDRESS with a prvs tag: prvs=KDDDHHHHHH=local@domain, the same as Exim's ${prvs}.\n"+
			"With --subaddress: local+prvs=KDDDHHHHHH@domain. With --verp RCPT: the signed VERP\n"+
			"return path for mail to RCPT.", stderr)
	tf := addTagFlags(fs)
	keyNum := fs.Int("keynum", -1, "sign with key `K` (default: the file's signing key, its last)")
	sub := fs.Bool("subaddress", false, "use the sub-address form")
	verp := fs.String("verp", "", "make a signed VERP return path for `recipient`")
	pos, code, done := parseArgs(fs, args, stdout)
	if done {
		return code
	}
	ks, now, delim, ok := tf.load("sign", pos, stderr)
	if !ok {
		return 2
	}
	k := ks.Signing
	if *keyNum >= 0 {
		k = *keyNum
	}
	secret, ok := ks.Secret(k)
	if !ok {
		fmt.Fprintf(stderr, "sign: key %d is not in %s (it has %v)\n", k, *tf.keyFile, ks.Numbers())
		return 2
	}
	if t, err := backscatter.ParseTag(pos[0], delim); err == nil && t.Tagged() {
		fmt.Fprintf(stderr, "sign: %s already carries a tag (%s); strip it first\n", pos[0], t.Scheme)
		return 1
	}
	var out string
	var err error
	switch {
	case *verp != "":
		out, err = backscatter.SignVERP(pos[0], *verp, secret, k, now, *tf.lifetime)
	case *sub:
		out, err = backscatter.SignPRVSSubaddress(pos[0], delim, secret, k, now, *tf.lifetime)
	default:
		out, err = backscatter.SignPRVS(pos[0], secret, k, now, *tf.lifetime)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sign: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, out)
	return 0
}

func cmdVerify(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("verify", "verify --key-file F [--date YYYY-MM-DD] [--lifetime DAYS] ADDRESS",
		"Checks a tagged ADDRESS (prvs, sub-address prvs or signed VERP). Valid: prints the address\n"+
			"without its tag and exits 0. Not valid: prints the reason (bad-signature, expired,\n"+
			"unknown-key, not-tagged, foreign-tag) on stderr and exits 1. Usage errors exit 2.", stderr)
	tf := addTagFlags(fs)
	pos, code, done := parseArgs(fs, args, stdout)
	if done {
		return code
	}
	ks, now, delim, ok := tf.load("verify", pos, stderr)
	if !ok {
		return 2
	}
	tag, err := backscatter.ParseTag(pos[0], delim)
	if err != nil {
		fmt.Fprintf(stderr, "verify: %v\n", err)
		return 2
	}
	lookup := func(_ string, k int) ([]byte, bool) { return ks.Secret(k) }
	v, err := backscatter.VerifyTag(tag, lookup, now, *tf.lifetime)
	if err != nil {
		var te *backscatter.TagError
		if errors.As(err, &te) {
			fmt.Fprintf(stderr, "%s\n", te.Reason)
			if te.Detail != "" {
				fmt.Fprintf(stderr, "verify: %s: %s\n", pos[0], te.Detail)
			}
			return 1
		}
		fmt.Fprintf(stderr, "verify: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, v.Untagged)
	if v.Recipient != "" {
		fmt.Fprintf(stderr, "verify: signed VERP for recipient %s, key %d\n", v.Recipient, v.KeyNum)
	}
	return 0
}

func cmdStrip(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("strip", "strip [--delimiter C] ADDRESS...",
		"Prints each ADDRESS without any tag, ours or foreign (prvs, sub-address prvs, signed VERP,\n"+
			"btv1, msprvs1, 9-digit prvs). SRS addresses are printed unchanged. No key is needed.", stderr)
	delim := fs.String("delimiter", "+", "sub-address delimiter")
	pos, code, done := parseArgs(fs, args, stdout)
	if done {
		return code
	}
	if len(pos) == 0 || len(*delim) != 1 {
		fmt.Fprintln(stderr, "strip: want one or more ADDRESS and a one-character --delimiter")
		return 2
	}
	rc := 0
	for _, a := range pos {
		s, err := backscatter.Strip(strings.TrimSpace(a), (*delim)[0])
		if err != nil {
			fmt.Fprintf(stderr, "strip: %v\n", err)
			rc = 1
			continue
		}
		fmt.Fprintln(stdout, s)
	}
	return rc
}
