package main

import (
	"os"
	"runtime"
)

// smallMachineProcs picks how many CPUs run the daemon's Go code when the
// operator has not said (GOMAXPROCS unset): on a machine with at most two
// CPUs, one. bounce-milter shares its machine with Postfix, whose smtpd and
// cleanup processes do most of the work per message; with two Ps the Go
// scheduler spins an idle thread looking for work after each short packet,
// and those spins take the other CPU from Postfix. Measured through a real
// Postfix on 2 vCPUs (bench/milter-throughput.sh, BENCH_ENV=GOMAXPROCS=1
// against the default), the daemon's CPU per message fell by 10-20% in every
// scenario and Postfix's throughput with the milter rose. On larger machines
// the runtime's default (the CPUs available to the process, cgroup limits
// included) is kept: nothing was measured there that would justify less.
func smallMachineProcs() {
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) <= 2 {
		runtime.GOMAXPROCS(1)
	}
}
