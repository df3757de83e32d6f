// Command dindops turns Linux build servers into GitLab CI runners with
// Docker-in-Docker over SSH, on a whole fleet at once: `dindops plan` shows
// what would change, `dindops apply` makes it so.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dindops/dindops/internal/interrupt"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, documented in docs/rollout.md.
const (
	exitOK         = 0
	exitHostFailed = 1   // a host failed or was unreachable
	exitUsage      = 2   // bad usage or bad input (inventory, playbook, vars)
	exitChanges    = 2   // plan --detailed-exitcode: changes are pending
	exitStopped    = 3   // apply: the rollout stopped early (max_fail_percentage, a whole batch failed)
	exitInterrupt  = 130 // interrupted: 128 + the signal (130 SIGINT, 143 SIGTERM)
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	st := interrupt.Watch(context.Background(), sigs)
	go func() {
		<-st.Stopping()
		fmt.Fprintf(os.Stderr, "\n%s: no new step starts; the steps in progress get %s to finish or undo their change. Interrupt again to stop at once.\n", st.Signal(), st.Grace())
	}()
	stopProfile := startProfile(os.Getenv, os.Stderr)
	code := run(st.Context(), os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	st.Stop()
	os.Exit(code)
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error // nil: nothing more to print
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// run is the whole program with its streams passed in, so tests can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCommand(stdout, stderr)
	cmd.SetArgs(args)
	executed, err := cmd.ExecuteContextC(ctx)
	code := exitOK
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", ee.err)
		}
		code = ee.code
	default:
		// cobra's own errors: unknown command or flag, wrong arguments.
		fmt.Fprintf(stderr, "Error: %v\nRun '%s --help' for usage.\n", err, executed.CommandPath())
		code = exitUsage
		if detailedExitCode(args) {
			code = exitHostFailed // with --detailed-exitcode, 2 means "changes pending"
		}
	}
	if st := interrupt.FromContext(ctx); st != nil && st.Signal() != nil && code != exitOK {
		return st.ExitCode() // 130 for SIGINT, 143 for SIGTERM
	}
	if ctx.Err() != nil && code != exitOK {
		return exitInterrupt
	}
	return code
}

// detailedExitCode reports whether args ask for plan's detailed exit codes,
// read before cobra's parsing so that usage errors honour it too.
func detailedExitCode(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--detailed-exitcode" || a == "--detailed-exitcode=true" {
			return true
		}
	}
	return false
}
