package main

import (
	"bytes"
	"runtime"
	"testing"
)

// The version line carries what -ldflags -X set (make build, make deb, make
// rpm), and the Go version the binary was built with.
func TestVersionPrintsVersionCommitAndGo(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "1.2.3+4.gabcdef0", "abcdef0123456789abcdef0123456789abcdef01"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errb.String())
		}
		want := "bounce-milter 1.2.3+4.gabcdef0 (commit abcdef0123456789abcdef0123456789abcdef01, " + runtime.Version() + ")\n"
		if out.String() != want {
			t.Errorf("%v:\n got %q\nwant %q", args, out.String(), want)
		}
	}
	// Without -X: the VCS revision when the build recorded one, else unknown.
	commit = ""
	if c := commitString(); c == "" {
		t.Error("commitString is empty without -X")
	}
}
