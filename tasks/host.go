// Package tasks holds the task kinds of a dindops playbook and the small
// contract they share: the Host they act on, the Task they implement and the
// Change they report.
//
// A task's Plan only reads the host and returns the changes it would make; its
// Apply makes exactly those changes. Tasks import nothing of the rest of the
// project: the transport, the runner and the renderer depend on this package,
// never the other way round.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Host is what a task needs from a machine. The SSH transport implements it
// for real hosts (with privilege escalation already applied when the play asks
// for become), and tasktest.Host implements it in memory for unit tests.
type Host interface {
	// Run runs one command and waits for it. A non-zero exit status is not an
	// error: it is reported in Output.ExitCode. The error is for everything
	// else (connection lost, context cancelled, the command could not start).
	Run(ctx context.Context, cmd Cmd) (Output, error)
	// ReadFile returns the content and metadata of a regular file. A missing
	// file gives an error that matches fs.ErrNotExist, and also
	// ErrNoParentDir when its directory is missing too (one round trip
	// answers both, so a task that creates the file needs no second one).
	ReadFile(ctx context.Context, path string) (RemoteFile, error)
	// WriteFile replaces path atomically: the content goes to a temporary file
	// in the same directory, gets its owner, group and mode, is checked by
	// opts.Validate when given, and is then renamed over path. On any failure
	// path is left as it was and no temporary file remains.
	WriteFile(ctx context.Context, path string, content []byte, opts WriteOptions) error
}

// Cmd is one command to run on a host.
type Cmd struct {
	// Args is the argv; the transport quotes every element for the remote
	// shell, so no element is ever interpreted by a shell unless Args itself
	// starts with "sh", "-c".
	Args []string
	// Stdin is sent to the command, then closed. Nil means stdin is closed at
	// once, so a command that waits for input gets EOF instead of hanging.
	// Secrets travel here, never in Args (which other users see in ps).
	Stdin []byte
	// SensitiveStdin marks Stdin as a secret: never logged or shown.
	SensitiveStdin bool
}

// String renders the command for logs and errors, shell-quoted.
func (c Cmd) String() string { return ShellJoin(c.Args) }

// Output is what a finished command left behind.
type Output struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// RemoteFile is a regular file read from a host.
type RemoteFile struct {
	Content []byte
	Mode    fs.FileMode // permission bits only
	Owner   string      // user name, or the numeric uid when it has no name
	Group   string      // group name, or the numeric gid when it has no name
}

// WriteOptions says how WriteFile leaves the file.
type WriteOptions struct {
	// Mode is the file's permission bits (0644 when zero).
	Mode fs.FileMode
	// Owner and Group are names or numeric ids; empty keeps the writer's.
	Owner string
	Group string
	// Validate, when set, is run against the temporary file before it
	// replaces path; "%s" in any element is replaced by the temporary file's
	// path. A non-zero exit aborts the write (see ansible.builtin.copy's
	// validate option, which this mirrors).
	Validate []string
	// Sensitive marks the content as a secret, never logged or shown.
	Sensitive bool
}

// ExitError is a command that exited with a non-zero status. Its message stays
// short; the full stderr and the exit code are kept for callers that need them
// (use errors.As, never parse the message).
type ExitError struct {
	Cmd      string
	ExitCode int
	Stdout   []byte
	Stderr   []byte
}

func (e *ExitError) Error() string {
	msg := LastLine(e.Stderr)
	if msg == "" {
		msg = LastLine(e.Stdout)
	}
	if msg == "" {
		return fmt.Sprintf("%s: exit status %d", e.Cmd, e.ExitCode)
	}
	return fmt.Sprintf("%s: exit status %d: %s", e.Cmd, e.ExitCode, msg)
}

// LastLine returns the last non-empty line of b, which is where programs put
// the reason they failed, capped at 300 bytes so one error never floods a
// report.
func LastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			return l
		}
	}
	return ""
}

// Exec runs args on h and returns stdout; a non-zero exit becomes *ExitError.
func Exec(ctx context.Context, h Host, args ...string) ([]byte, error) {
	return ExecCmd(ctx, h, Cmd{Args: args})
}

// ExecCmd is Exec for a full Cmd (with stdin).
func ExecCmd(ctx context.Context, h Host, c Cmd) ([]byte, error) {
	out, err := h.Run(ctx, c)
	if err != nil {
		return nil, err
	}
	if out.ExitCode != 0 {
		return out.Stdout, &ExitError{Cmd: c.String(), ExitCode: out.ExitCode, Stdout: out.Stdout, Stderr: out.Stderr}
	}
	return out.Stdout, nil
}

// ErrNoParentDir is the error Host.ReadFile returns (wrapped in an
// *fs.PathError) for a missing file whose parent directory is missing too.
// It matches fs.ErrNotExist as well.
var ErrNoParentDir = fmt.Errorf("parent directory does not exist: %w", fs.ErrNotExist)

// ReadFileIfExists is ReadFile where a missing file is not an error:
// it returns exists == false instead.
func ReadFileIfExists(ctx context.Context, h Host, path string) (f RemoteFile, exists bool, err error) {
	f, err = h.ReadFile(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return RemoteFile{}, false, nil
	}
	if err != nil {
		return RemoteFile{}, false, err
	}
	return f, true, nil
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%_-+=:,./", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellJoin quotes each of args and joins them with spaces.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}
