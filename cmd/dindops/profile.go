package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// profileEnv names a file to write a CPU profile of the whole run to (go
// tool pprof reads it), for finding what bounds a run: see
// docs/benchmarks.md. It is an environment variable, not a flag, because
// it is for developers and benchmarks, not for use.
const profileEnv = "DINDOPS_CPUPROFILE"

// startProfile starts the CPU profile that profileEnv asks for, if any, and
// returns what stops it and writes the file. Failures are reported on
// stderr and do not stop the run.
func startProfile(getenv func(string) string, stderr io.Writer) (stop func()) {
	path := getenv(profileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", profileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", profileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", profileEnv, err)
		}
	}
}
