// Command docgen writes the package files that are made from the source
// tree rather than kept in it:
//
//   - copyright: the Debian machine-readable copyright file (DEP-5, format
//     1.0) of the package. Its hand-written part (packaging/copyright.in:
//     bounce-milter itself, the test corpora) is completed with one
//     paragraph per Go module compiled into the binary, with the module's
//     licence identified from its licence files in the module cache and its
//     NOTICE, as go-licenses would report them.
//   - changelog: the Debian-format changelog (usr/share/doc/PKG/changelog.gz
//     of a native package) made from CHANGELOG.md.
//
// `make deb` and `make rpm` run it. It lives in a module of its own so that
// its licence classifier is not a dependency of bounce-milter. Its output
// depends only on its input (no clock, no paths), so packages built twice
// from one commit are identical.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: docgen copyright|changelog [flags]")
		return 2
	}
	switch args[0] {
	case "copyright":
		return cmdCopyright(args[1:], stdout, stderr)
	case "changelog":
		return cmdChangelog(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "docgen: unknown command %q (copyright, changelog)\n", args[0])
	return 2
}

func cmdCopyright(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("copyright", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "the bounce-milter source tree (where go list runs)")
	tmpl := fs.String("template", "packaging/copyright.in", "the hand-written part, with a line "+modulesMarker+" where the modules go (relative to -root)")
	pkg := fs.String("pkg", "./cmd/bounce-milter", "the package whose dependencies are listed")
	goos := fs.String("goos", "linux", "GOOS of the packaged binary (dependencies differ per platform)")
	goarch := fs.String("goarch", "amd64", "GOARCH of the packaged binary")
	out := fs.String("o", "", "write here instead of stdout")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return 2
	}
	template, err := os.ReadFile(resolve(*root, *tmpl))
	if err != nil {
		fmt.Fprintln(stderr, "docgen:", err)
		return 1
	}
	deps, err := listDeps(*root, *pkg, *goos, *goarch)
	if err != nil {
		fmt.Fprintln(stderr, "docgen:", err)
		return 1
	}
	cl, err := newClassifier()
	if err != nil {
		fmt.Fprintln(stderr, "docgen:", err)
		return 1
	}
	mods, err := describeModules(deps, cl)
	if err != nil {
		fmt.Fprintln(stderr, "docgen:", err)
		return 1
	}
	text, err := renderCopyright(string(template), mods)
	if err != nil {
		fmt.Fprintln(stderr, "docgen:", err)
		return 1
	}
	return write(*out, text, stdout, stderr)
}

func cmdChangelog(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("changelog", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "CHANGELOG.md", "the changelog in Markdown")
	pkgName := fs.String("package", "bounce-milter", "the package name")
	version := fs.String("version", "", "the version being built: it heads the changelog with the unreleased changes unless CHANGELOG.md has a section for it")
	epoch := fs.Int64("date", 0, "the build's date for the unreleased entry, in seconds since 1970 (SOURCE_DATE_EPOCH)")
	maintainer := fs.String("maintainer", "", `who signs the entries, "Name <address>"`)
	out := fs.String("o", "", "write here instead of stdout")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return 2
	}
	if *version == "" || *maintainer == "" {
		fmt.Fprintln(stderr, "docgen changelog: -version and -maintainer are required")
		return 2
	}
	md, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintln(stderr, "docgen:", err)
		return 1
	}
	releases, err := parseChangelog(string(md))
	if err != nil {
		fmt.Fprintf(stderr, "docgen: %s: %v\n", *in, err)
		return 1
	}
	text, err := debianChangelog(releases, *pkgName, *version, *maintainer, *epoch)
	if err != nil {
		fmt.Fprintf(stderr, "docgen: %s: %v\n", *in, err)
		return 1
	}
	return write(*out, text, stdout, stderr)
}

// resolve makes a path given relative to the source tree usable from here.
func resolve(root, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(root, path)
}

func write(path, text string, stdout, stderr io.Writer) int {
	if path == "" {
		if _, err := io.WriteString(stdout, text); err != nil {
			fmt.Fprintln(stderr, "docgen:", err)
			return 1
		}
		return 0
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		fmt.Fprintln(stderr, "docgen:", err)
		return 1
	}
	return 0
}
