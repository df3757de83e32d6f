// Package measure runs one command and reports what it cost: wall time, CPU
// seconds of its whole process tree and peak memory.
//
// CPU comes from the kernel's accounting (getrusage RUSAGE_CHILDREN before and
// after), so it covers every process the command started, including the ones
// that outlive it: this process is made a child subreaper
// (PR_SET_CHILD_SUBREAPER, see prctl(2)), so orphans such as OpenSSH's
// ControlPersist masters are re-parented to it; after the command exits they
// are stopped (SIGTERM) and reaped, which adds their CPU time too. Run must not
// overlap with other child processes of this program.
package measure

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Sample is the cost of one run.
type Sample struct {
	Wall time.Duration `json:"wall_ns"`
	// User and Sys are the CPU time of the whole process tree, orphans
	// included.
	User time.Duration `json:"user_ns"`
	Sys  time.Duration `json:"sys_ns"`
	// MaxRSS is the peak resident set of the largest single process of the
	// tree the command waited for (wait4's ru_maxrss, as reported by
	// peakrss), in bytes: for a one-process tool, the controller's peak
	// memory. It is never below peakrss's own (about 2.5 MiB).
	MaxRSS int64 `json:"max_rss_bytes"`
	// TreeRSS is the largest sum of the resident sets of all processes of
	// the tree, sampled every SampleInterval (shared pages count once per
	// process), in bytes.
	TreeRSS int64 `json:"tree_rss_bytes"`
	// ExitCode is the command's exit status (-1 when killed by a signal).
	ExitCode int `json:"exit_code"`
}

// CPU is user plus system time.
func (s Sample) CPU() time.Duration { return s.User + s.Sys }

// SampleInterval is how often the tree's memory is sampled.
const SampleInterval = 100 * time.Millisecond

// BecomeSubreaper makes this process the reaper of its orphaned
// descendants. Call it once, before the first Run.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// Runner measures commands.
type Runner struct {
	// PeakRSS is the bench/cmd/peakrss program, which starts each command
	// and reports its peak memory (see there why that is not read here).
	PeakRSS string
}

// Run starts cmd through the peakrss program, waits for it to exit, then
// stops and reaps whatever it left running, and returns the cost. A
// non-zero exit is not an error: it is in Sample.ExitCode. The context
// bounds the whole run (cmd should be made with exec.CommandContext for the
// command itself to be killed).
func (r Runner) Run(ctx context.Context, cmd *exec.Cmd) (Sample, error) {
	rssFile, err := os.CreateTemp("", "bench-rss")
	if err != nil {
		return Sample{}, err
	}
	rssFile.Close()
	defer os.Remove(rssFile.Name())
	cmd.Args = append([]string{r.PeakRSS, "-o", rssFile.Name(), "--", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = r.PeakRSS

	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_CHILDREN, &before); err != nil {
		return Sample{}, fmt.Errorf("getrusage: %w", err)
	}
	self := os.Getpid()
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var max int64
		t := time.NewTicker(SampleInterval)
		defer t.Stop()
		for {
			if rss := treeRSS(self); rss > max {
				max = rss
			}
			select {
			case <-done:
				peak <- max
				return
			case <-t.C:
			}
		}
	}()

	start := time.Now()
	err = cmd.Start()
	if err != nil {
		close(done)
		<-peak
		return Sample{}, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	waitErr := cmd.Wait()
	wall := time.Since(start)
	close(done)
	s := Sample{Wall: wall, TreeRSS: <-peak, ExitCode: cmd.ProcessState.ExitCode()}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return s, fmt.Errorf("wait for %s: %w", cmd.Path, waitErr)
	}
	if b, err := os.ReadFile(rssFile.Name()); err == nil {
		kib, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		s.MaxRSS = kib * 1024
	}
	if err := reapOrphans(ctx, self); err != nil {
		return s, err
	}
	if err := unix.Getrusage(unix.RUSAGE_CHILDREN, &after); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.User = tv(after.Utime) - tv(before.Utime)
	s.Sys = tv(after.Stime) - tv(before.Stime)
	return s, ctx.Err()
}

func tv(t unix.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

// reapOrphans stops the children this process inherited as subreaper and
// waits for them, so that their CPU time is accounted.
func reapOrphans(ctx context.Context, self int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		kids := children(self)
		if len(kids) == 0 {
			return nil
		}
		sig := unix.SIGTERM
		if time.Now().After(deadline) {
			sig = unix.SIGKILL
		}
		for _, pid := range kids {
			_ = unix.Kill(pid, sig)
		}
		for _, pid := range kids {
			var ws unix.WaitStatus
			for {
				got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
				if err != nil || got == pid {
					break // reaped, or not our child any more
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if time.Now().After(deadline) {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// children lists the child processes of pid (all its threads' children).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

var pageSize = int64(os.Getpagesize())

// treeRSS sums the resident sets of all descendants of pid.
func treeRSS(pid int) int64 {
	var sum int64
	stack := children(pid)
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", p))
		if err == nil {
			if f := strings.Fields(string(b)); len(f) > 1 {
				if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					sum += n * pageSize
				}
			}
		}
		stack = append(stack, children(p)...)
	}
	return sum
}
