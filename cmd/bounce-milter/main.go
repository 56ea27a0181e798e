// Command bounce-milter stops backscatter for Postfix: it signs our
// outbound envelope senders (BATV prvs or signed VERP), and rejects bounces
// and auto-replies to our domains that do not answer mail we sent. One
// binary runs the milter, the policy-delegation service and the socketmap,
// and carries the tools to sign, verify, strip and check by hand.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// command is one subcommand: it gets its arguments (without its name) and
// returns the process exit code: 0 done, 1 a negative answer or failure, 2
// a usage error.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"serve":          {"run the milter, socketmap and policy service", cmdServe},
		"keygen":         {"print a new key line for a key file", cmdKeygen},
		"sign":           {"print an address with a prvs (or signed VERP) tag", cmdSign},
		"verify":         {"check a tagged address and print it untagged", cmdVerify},
		"strip":          {"print an address without any tag, ours or foreign", cmdStrip},
		"check":          {"analyse messages: bounce kind, returned original, evidence", cmdCheck},
		"postfix-config": {"print the Postfix main.cf and master.cf lines", cmdPostfixConfig},
		"events":         {"print bounce events: which of our senders' mail bounced, and why", cmdEvents},
		"suppressions":   {"print recipients that hard-bounced repeatedly", cmdSuppressions},
		"alerts":         {"list or clear the alerts: forged domains, compromised accounts, refused mail, key trouble", cmdAlerts},
		"version":        {"print the version", cmdVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run([]string{"--help"}, stdout, stderr)
			}
		}
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		return cmdVersion(nil, stdout, stderr)
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "bounce-milter: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "bounce-milter stops backscatter for Postfix (BATV prvs tags, signed VERP, bounce analysis).")
	fmt.Fprintln(w, "\nUsage: bounce-milter COMMAND [options] [arguments]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-15s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'bounce-milter COMMAND --help' for a command's options.")
	fmt.Fprintln(w, "Start with no configuration: bounce-milter serve")
}

// newFlags makes a subcommand's flag set; usageLine is printed by --help
// above the options.
func newFlags(name, usageLine, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: bounce-milter %s\n\n%s\n", usageLine, about)
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintln(out, "\nOptions:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseArgs parses flags anywhere among the arguments (the flag package
// stops at the first non-flag) and returns the positional ones. done is set
// when the caller should return code at once (--help: 0, bad flag: 2).
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) (pos []string, code int, done bool) {
	// Help asked for goes to stdout, once (the flag package would print it
	// to its error output first).
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil, 0, true
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fs.Usage()
				return nil, 0, true
			}
			return nil, 2, true
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0, false
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), 0, false
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// version and commit are set at build time with -ldflags "-X
// main.version=... -X main.commit=..." (make build, make deb, make rpm);
// the module version or VCS revision stands in otherwise.
var version, commit = "", ""

// commitString is the commit the binary was built from, or "unknown".
func commitString() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + dirty
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "version", "Prints the version of bounce-milter, the commit and the Go version it was built with.", stderr)
	if _, code, done := parseArgs(fs, args, stdout); done {
		return code
	}
	bi, _ := debug.ReadBuildInfo()
	goVer := "unknown"
	if bi != nil {
		goVer = bi.GoVersion
	}
	fmt.Fprintf(stdout, "bounce-milter %s (commit %s, %s)\n", versionString(), commitString(), strings.TrimSpace(goVer))
	return 0
}
