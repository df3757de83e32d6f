// Command peakrss runs a command and writes the peak resident set size of
// the command's process tree (wait4's ru_maxrss, in KiB) to a file. The
// benchmark starts every tool through it because a child's ru_maxrss counts
// the memory of whoever started it: Go starts processes with
// clone(CLONE_VM|CLONE_VFORK), so at exec the kernel records the parent's
// peak as the child's (setmax_mm_hiwater_rss in exec_mmap). Started by this
// small program, a tool's peak is max(its own, this program's ~2 MiB),
// instead of max(its own, the benchmark harness's ~20 MiB).
//
//	peakrss -o FILE -- COMMAND [ARG...]
//
// Standard input, output and error are the command's; SIGINT and SIGTERM
// are passed on; the exit status is the command's (128+N for signal N).
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) < 4 || args[0] != "-o" || args[2] != "--" {
		fmt.Fprintln(os.Stderr, "usage: peakrss -o FILE -- COMMAND [ARG...]")
		return 2
	}
	out, argv := args[1], args[3:]
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		return 127
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		return 127
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		if err := os.WriteFile(out, fmt.Appendf(nil, "%d\n", ru.Maxrss), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "peakrss:", err)
			return 127
		}
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}
