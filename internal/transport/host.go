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
	attrs := []any{"cmd", o.display, "stdin", describeStdin(stdin, sensitive)}
	if !h.become {
		c.log.Debug("run", attrs...)
		return c.exec(ctx, tasks.ShellJoin(args), stdin, o)
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
		c.log.Debug("sudo requires a tty (requiretty): retrying with a pty", "cmd", o.display)
		return h.runPTY(ctx, line, o)
	default:
		return tasks.Output{}, h.becomeError(reason, out.Stderr)
	}
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
