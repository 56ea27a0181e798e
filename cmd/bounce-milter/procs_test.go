package main

import (
	"runtime"
	"testing"
)

func TestSmallMachineProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tc := range []struct {
		env   string
		procs int
		want  int
		why   string
	}{
		{"", 1, 1, "one CPU stays one"},
		{"", 2, 1, "two CPUs: one for the daemon, one for Postfix"},
		{"", 4, 4, "larger machines keep the runtime's default"},
		{"2", 2, 2, "the operator's GOMAXPROCS wins"},
	} {
		t.Setenv("GOMAXPROCS", tc.env)
		runtime.GOMAXPROCS(tc.procs)
		smallMachineProcs()
		if got := runtime.GOMAXPROCS(0); got != tc.want {
			t.Errorf("GOMAXPROCS=%q on %d CPUs: got %d, want %d (%s)", tc.env, tc.procs, got, tc.want, tc.why)
		}
	}
}
