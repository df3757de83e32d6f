package transport

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/dindops/dindops/tasks"
)

// host is the tasks.Host view of a Conn, with or without become.
type host struct {
	c      *Conn
	become bool
}

// Host returns the tasks.Host view of c. With become, every command, file
// read and the privileged step of every file write runs as
// Config.BecomeUser through "sudo -n" (never prompting: a sudo that wants a
// password fails at once with *BecomeError). When the login user already is
// the become user, sudo is not used.
func (c *Conn) Host(become bool) tasks.Host {
	return &host{c: c, become: become && c.cfg.User != c.cfg.BecomeUser}
}

// Run implements tasks.Host. The command line sent is tasks.ShellJoin of the
// argv, prefixed by "sudo -n -u USER --" with become. Output keeps at most
// Config.OutputLimit bytes at the head and at the tail of each stream, with a
// note of what was left out between them. When ctx is done, the command is
// sent SIGTERM and its session closed, and Run returns ctx's error at once
// (within 2s even if the host does not answer); OpenSSH refuses signals to
// sessions of root logins, so there a cancelled command may run on until it
// ends or writes to its closed output. Errors: the context's,
// *UnreachableError, *BecomeError, *CommandError.
func (h *host) Run(ctx context.Context, cmd tasks.Cmd) (tasks.Output, error) {
	if len(cmd.Args) == 0 {
		return tasks.Output{}, fmt.Errorf("%s: empty command", h.c.name)
	}
	return h.run(ctx, cmd.Args, cmd.Stdin, cmd.SensitiveStdin, execOpts{display: cmd.String()})
}

// run runs args (escalated with sudo when h.become) and recognises sudo's
// own failures: a password prompt refused by -n, requiretty (retried once
// with a pty when there is no input to send), sudo missing.
func (h *host) run(ctx context.Context, args []string, stdin []byte, sensitive bool, o execOpts) (tasks.Output, error) {
	c := h.c
	if len(args) > 0 && args[0] == "docker" {
		c.dockerCommands.Add(1)
	}
	attrs := []any{"cmd", o.display, "stdin", describeStdin(stdin, sensitive)}
	if !h.become {
		c.log.Debug("run", attrs...)
		return c.exec(ctx, tasks.ShellJoin(args), stdin, o)
	}
	if c.cfg.BecomePassword != "" {
		c.log.Debug("run", append(attrs, "become", c.cfg.BecomeUser, "sudo", "password")...)
		return h.runWithPassword(ctx, args, stdin, o)
	}
	line := tasks.ShellJoin(append([]string{"sudo", "-n", "-u", c.cfg.BecomeUser, "--"}, args...))
	c.log.Debug("run", append(attrs, "become", c.cfg.BecomeUser)...)
	if c.needPTY.Load() {
		if stdin != nil {
			return tasks.Output{}, h.becomeError("requiretty", nil)
		}
		return h.runPTY(ctx, line, o)
	}
	out, err := c.exec(ctx, line, stdin, o)
	if err != nil {
		return out, err
	}
	switch reason := sudoFailure(out.ExitCode, out.Stderr); reason {
	case "":
		return out, nil
	case "requiretty":
		if stdin != nil {
			return tasks.Output{}, h.becomeError(reason, out.Stderr)
		}
		c.needPTY.Store(true)
		c.log.Info("sudo requires a tty (requiretty): retrying with a pty, and using one for every become command on this host", "cmd", o.display)
		return h.runPTY(ctx, line, o)
	default:
		return tasks.Output{}, h.becomeError(reason, out.Stderr)
	}
}

// runWithPassword runs args under "sudo -S" with a random prompt: the
// password goes on stdin only when that prompt appears (once: a second
// prompt means it was rejected, and it is never sent on this connection
// again), and the command first prints a random start marker, after which
// its own stdin is sent. A host with requiretty is retried with a pty, as
// with "sudo -n".
func (h *host) runWithPassword(ctx context.Context, args []string, stdin []byte, o execOpts) (tasks.Output, error) {
	c := h.c
	if c.passRejected.Load() {
		return tasks.Output{}, h.becomeError("wrong password", nil)
	}
	wrap := func(pty bool) string {
		script := `printf '%s\n' "$0" >&2; exec "$@"`
		if pty {
			script = `printf '%s\n' "$0"; exec "$@" </dev/null`
		}
		return tasks.ShellJoin(append([]string{"sudo", "-S", "-p", c.promptMark, "-u", c.cfg.BecomeUser, "--",
			"sh", "-c", script, c.startMark}, args...))
	}
	attempt := func(pty bool) (tasks.Output, string, []byte, error) {
		po := o
		po.pty = pty
		po.sudo = newSudoWatch(c.promptMark, c.startMark, c.cfg.BecomePassword)
		in := stdin
		if pty {
			in = nil
		}
		out, err := c.exec(ctx, wrap(pty), in, po)
		if err != nil || po.sudo.hasStarted() {
			return out, "", nil, err
		}
		pre, prompts, timedOut := po.sudo.result()
		if !pty {
			pre = append(pre, out.Stderr...)
		}
		low := strings.ToLower(string(pre))
		switch {
		case prompts > 1 || strings.Contains(low, "incorrect password") || strings.Contains(low, "sorry, try again"):
			c.passRejected.Store(true)
			return out, "wrong password", pre, nil
		case strings.Contains(low, "must have a tty"):
			return out, "requiretty", pre, nil
		case timedOut:
			return out, "no prompt", pre, nil
		case out.ExitCode == 127 && strings.Contains(low, "not found"):
			return out, "missing", pre, nil
		}
		return out, "failed", pre, nil
	}
	pty := c.needPTY.Load()
	if pty && stdin != nil {
		return tasks.Output{}, h.becomeError("requiretty", nil)
	}
	out, reason, pre, err := attempt(pty)
	if err == nil && reason == "requiretty" && !pty {
		if stdin != nil {
			return tasks.Output{}, h.becomeError(reason, pre)
		}
		c.needPTY.Store(true)
		c.log.Info("sudo requires a tty (requiretty): retrying with a pty, and using one for every become command on this host", "cmd", o.display)
		out, reason, pre, err = attempt(true)
	}
	switch {
	case err != nil:
		return out, err
	case reason == "failed":
		return tasks.Output{}, &BecomeError{User: c.cfg.User, Become: c.cfg.BecomeUser, Host: c.name, Stderr: pre}
	case reason != "":
		return tasks.Output{}, h.becomeError(reason, pre)
	}
	return out, nil
}

// runPTY runs a sudo command line with a pseudo-terminal, its standard input
// taken from /dev/null (a pty never signals end of input). Everything the
// command prints arrives on stdout.
func (h *host) runPTY(ctx context.Context, line string, o execOpts) (tasks.Output, error) {
	o.pty = true
	out, err := h.c.exec(ctx, line+" </dev/null", nil, o)
	if err != nil {
		return out, err
	}
	if reason := sudoFailure(out.ExitCode, out.Stdout); reason != "" {
		return tasks.Output{}, h.becomeError(reason, out.Stdout)
	}
	return out, nil
}

func (h *host) becomeError(reason string, stderr []byte) error {
	return &BecomeError{User: h.c.cfg.User, Become: h.c.cfg.BecomeUser, Host: h.c.name, Reason: reason, Stderr: stderr}
}

// sudoFailure recognises sudo refusing to run a command, from the first
// lines of its error output: "password", "requiretty", "missing" or "".
func sudoFailure(exitCode int, stderr []byte) string {
	if exitCode == 0 {
		return ""
	}
	lines := strings.SplitN(string(bytes.TrimSpace(stderr)), "\n", 4)
	for _, l := range lines[:min(len(lines), 3)] {
		l = strings.TrimSpace(l)
		switch {
		case exitCode == 127 && strings.Contains(l, "sudo") && strings.Contains(l, "not found"):
			return "missing"
		case !strings.HasPrefix(l, "sudo:"):
		case strings.Contains(l, "password is required"), strings.Contains(l, "a terminal is required to read the password"):
			return "password"
		case strings.Contains(l, "must have a tty"):
			return "requiretty"
		}
	}
	return ""
}

// describeStdin says what a command is given on stdin, for logs: a size,
// never the content.
func describeStdin(stdin []byte, sensitive bool) string {
	switch {
	case stdin == nil:
		return "none"
	case sensitive:
		return fmt.Sprintf("%d bytes (sensitive)", len(stdin))
	}
	return fmt.Sprintf("%d bytes", len(stdin))
}
