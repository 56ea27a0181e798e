package main

import (
	"fmt"
	"io"
)

func notYet(name string) func([]string, io.Writer, io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int {
		fs := newFlags(name, name, "Not built yet.", stderr)
		if _, code, done := parseArgs(fs, args, stdout); done {
			return code
		}
		fmt.Fprintf(stderr, "%s: not built yet\n", name)
		return 1
	}
}

var (
	cmdServe         = notYet("serve")
	cmdCheck         = notYet("check")
	cmdPostfixConfig = notYet("postfix-config")
)
