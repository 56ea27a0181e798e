package main

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// The man page (packaging/man/bounce-milter.8.md, installed as
// bounce-milter(8)) describes every command and every serve option.
func TestManPageCoversCommandsAndOptions(t *testing.T) {
	data, err := os.ReadFile("../../packaging/man/bounce-milter.8.md")
	if err != nil {
		t.Fatal(err)
	}
	man := string(data)
	section := func(name string) string {
		_, rest, ok := strings.Cut(man, "\n# "+name+"\n")
		if !ok {
			t.Fatalf("man page has no %s section", name)
		}
		if end := strings.Index(rest, "\n# "); end >= 0 {
			rest = rest[:end]
		}
		return rest
	}
	cmds, synopsis := section("COMMANDS"), section("SYNOPSIS")
	for name := range commands {
		if !strings.Contains(cmds, "\n**"+name+"**\n") {
			t.Errorf("COMMANDS does not describe %q", name)
		}
		if !strings.Contains(synopsis, "**bounce-milter "+name+"**") {
			t.Errorf("SYNOPSIS lacks %q", name)
		}
	}
	opts := section("SERVE OPTIONS")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addServeFlags(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(opts, "**--"+f.Name+"**") {
			t.Errorf("SERVE OPTIONS does not describe --%s", f.Name)
		}
	})
	if n < 10 {
		t.Fatalf("only %d serve flags", n)
	}
	for _, s := range []string{"SIGHUP", "SIGTERM", "EXIT STATUS", "/etc/bounce-milter/keys"} {
		if !strings.Contains(man, s) {
			t.Errorf("man page does not mention %s", s)
		}
	}
}
