package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
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
	// sudo, when set, watches sudo's password prompt and the start marker
	// (on stderr, or stdout with a pty): the password is written on stdin
	// at the first prompt only, and stdin is sent once the command started.
	sudo *sudoWatch
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
	sess, release, err := c.newSession(ctx, o.display, false)
	if err != nil {
		return tasks.Output{}, err
	}
	defer release()
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
	if w := o.sudo; w != nil {
		if o.pty {
			w.out, sess.Stdout = stdout, w
		} else {
			w.out, sess.Stderr = stderr, w
		}
	}
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
	waited := make(chan error, 1)
	done := make(chan struct{})
	go func() { err := sess.Wait(); close(done); waited <- err }()
	// A command that exits without reading its input makes the write fail;
	// that is its business, and the exit status tells.
	go func() {
		if o.sudo != nil && !o.sudo.answer(in, sess, done, c.cfg.ConnectTimeout) {
			return
		}
		if stdin != nil {
			_, _ = in.Write(stdin)
		}
		_ = in.Close()
	}()

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
	if o.sudo != nil && !o.sudo.hasStarted() {
		return out, nil // sudo never ran the command: the caller says why
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

// sudoWatch follows one output stream of a "sudo -S -p PROMPT" command whose
// command first prints a start marker line: it counts sudo's prompts, keeps
// what sudo printed before the start (its messages, for errors; prompts
// removed), and passes everything after the marker on to out.
type sudoWatch struct {
	prompt, start []byte
	password      []byte
	out           io.Writer

	mu       sync.Mutex
	buf      []byte // not yet scanned for markers (at most a marker's length)
	pre      []byte // sudo's own output before the start
	prompts  int
	started  bool
	timedOut bool
	changed  chan struct{} // signalled (non-blocking) on every prompt and the start
}

func newSudoWatch(prompt, start, password string) *sudoWatch {
	return &sudoWatch{prompt: []byte(prompt), start: []byte(start), password: []byte(password), changed: make(chan struct{}, 1)}
}

// maxSudoOutput bounds what is kept of sudo's own messages.
const maxSudoOutput = 64 << 10

func (w *sudoWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	for {
		if i := bytes.Index(w.buf, w.start); i >= 0 {
			w.keep(w.buf[:i])
			rest := w.buf[i+len(w.start):]
			rest = bytes.TrimPrefix(rest, []byte("\r"))
			rest = bytes.TrimPrefix(rest, []byte("\n"))
			w.buf, w.started = nil, true
			w.signal()
			w.mu.Unlock()
			if len(rest) > 0 {
				_, _ = w.out.Write(rest)
			}
			return len(p), nil
		}
		i := bytes.Index(w.buf, w.prompt)
		if i < 0 {
			break
		}
		w.keep(w.buf[:i])
		w.buf = w.buf[i+len(w.prompt):]
		w.prompts++
		w.signal()
	}
	// Keep only what may be the beginning of a marker unscanned.
	if hold := max(len(w.prompt), len(w.start)) - 1; len(w.buf) > hold {
		w.keep(w.buf[:len(w.buf)-hold])
		w.buf = append([]byte(nil), w.buf[len(w.buf)-hold:]...)
	}
	w.mu.Unlock()
	return len(p), nil
}

func (w *sudoWatch) keep(b []byte) {
	if room := maxSudoOutput - len(w.pre); room > 0 {
		w.pre = append(w.pre, b[:min(room, len(b))]...)
	}
}

func (w *sudoWatch) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// answer writes the password at sudo's first prompt and returns true once
// the command started (its stdin may then be sent). It returns false, having
// closed the session, when sudo prompts again (the password was rejected:
// it is never sent twice) or neither prompts nor starts the command within
// wait, and when the session ends first.
func (w *sudoWatch) answer(stdin io.WriteCloser, sess interface{ Close() error }, done <-chan struct{}, wait time.Duration) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	sent := false
	for {
		w.mu.Lock()
		prompts, started := w.prompts, w.started
		w.mu.Unlock()
		switch {
		case started:
			return true
		case prompts > 1:
			// Rejected. Under a pty, closing stdin is no end of input for
			// sudo, which would wait for the next try: end the session.
			_ = stdin.Close()
			_ = sess.Close()
			return false
		case prompts == 1 && !sent:
			sent = true
			_, _ = stdin.Write(append(append([]byte(nil), w.password...), '\n'))
			timer.Reset(wait)
		}
		select {
		case <-w.changed:
		case <-done:
			return false
		case <-timer.C:
			w.mu.Lock()
			w.timedOut = true
			w.mu.Unlock()
			_ = stdin.Close()
			_ = sess.Close()
			return false
		}
	}
}

func (w *sudoWatch) hasStarted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.started
}

// result returns what sudo printed before the start, how often it prompted,
// and whether it was given up on for saying nothing.
func (w *sudoWatch) result() (pre []byte, prompts int, timedOut bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append(append([]byte(nil), w.pre...), w.buf...), w.prompts, w.timedOut
}
