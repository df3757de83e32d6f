package transport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dindops/dindops/tasks"
	"golang.org/x/crypto/ssh"
)

// execOpts tunes one remote command.
type execOpts struct {
	// display names the command in logs and errors (the caller's argv,
	// without the sudo prefix).
	display string
	// pty asks for a pseudo-terminal (for sudo's requiretty). Its output
	// arrives merged on stdout, untranslated (no CR added).
	pty bool
	// whole keeps all of stdout (up to maxFileSize) instead of head and tail.
	whole bool
}

// exec runs the shell command line in a new session and waits for it.
//
// stdin is written then closed; nil closes it at once. stdout and stderr are
// drained concurrently into bounded buffers. A non-zero exit is reported in
// Output.ExitCode. Errors: the context's (after signalling the command and
// closing its session), *UnreachableError when the connection is lost,
// *CommandError for a signal or a missing exit status.
func (c *Conn) exec(ctx context.Context, line string, stdin []byte, o execOpts) (tasks.Output, error) {
	if err := ctx.Err(); err != nil {
		return tasks.Output{}, fmt.Errorf("%s: %w", o.display, err)
	}
	if err := c.lostError("starting " + o.display); err != nil {
		return tasks.Output{}, err
	}
	select {
	case c.sessions <- struct{}{}:
		defer func() { <-c.sessions }()
	case <-ctx.Done():
		return tasks.Output{}, fmt.Errorf("%s: %w", o.display, ctx.Err())
	}

	c.commands.Add(1)
	sess, err := c.client.NewSession()
	if err != nil {
		if lerr := c.lostError("opening a session for " + o.display); lerr != nil {
			return tasks.Output{}, lerr
		}
		return tasks.Output{}, fmt.Errorf("%s: open session: %w", o.display, err)
	}
	defer sess.Close()

	if o.pty {
		modes := ssh.TerminalModes{ssh.ECHO: 0, ssh.ONLCR: 0, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}
		if err := sess.RequestPty("dumb", 40, 200, modes); err != nil {
			return tasks.Output{}, fmt.Errorf("%s: request pty: %w", o.display, err)
		}
	}
	limit := c.cfg.OutputLimit
	if o.whole {
		limit = -1
	}
	stdout, stderr := newCapture(limit), newCapture(c.cfg.OutputLimit)
	sess.Stdout, sess.Stderr = stdout, stderr
	in, err := sess.StdinPipe()
	if err != nil {
		return tasks.Output{}, fmt.Errorf("%s: %w", o.display, err)
	}
	if err := sess.Start(line); err != nil {
		if lerr := c.lostError("starting " + o.display); lerr != nil {
			return tasks.Output{}, lerr
		}
		return tasks.Output{}, fmt.Errorf("%s: start: %w", o.display, err)
	}
	// A command that exits without reading its input makes the write fail;
	// that is its business, and the exit status tells.
	go func() {
		if stdin != nil {
			_, _ = in.Write(stdin)
		}
		_ = in.Close()
	}()

	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGTERM)
		_ = sess.Close()
		select {
		case <-waited:
		case <-time.After(cancelGrace):
		}
		c.log.Debug("cancelled", "cmd", o.display, "err", ctx.Err())
		return tasks.Output{}, fmt.Errorf("%s: %w", o.display, ctx.Err())
	}

	out := tasks.Output{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if stdout.truncated() && o.whole {
		return out, fmt.Errorf("%s: output larger than %d bytes", o.display, maxFileSize)
	}
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &exitErr) && exitErr.Signal() == "":
		out.ExitCode = exitErr.ExitStatus()
		return out, nil
	}
	if exitErr == nil {
		// Without an exit status, the session may have ended a moment
		// before the connection is known dead.
		select {
		case <-c.dead:
		case <-time.After(500 * time.Millisecond):
		}
	}
	if lerr := c.lostError("running " + o.display); lerr != nil {
		return tasks.Output{}, lerr
	}
	cmdErr := &CommandError{Host: c.name, Cmd: o.display, Stdout: out.Stdout, Stderr: out.Stderr, Err: err}
	if exitErr != nil {
		cmdErr.Signal = exitErr.Signal()
	}
	return out, cmdErr
}
