package tasks

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// Command runs a command on the host: an argv, or a shell script.
//
// A command's effect cannot be predicted, so without a guard it is planned
// as "would run, effect unknown" (action Run) and counts as changed when it
// runs. Guards make it idempotent and let plan tell: with "creates" it is
// skipped when that path exists, with "removes" when that path is missing,
// with "unless" when that command exits 0. A command marked read_only only
// reads (a probe): plan runs it too, and it never counts as a change.
// (The behaviour of ansible.builtin.command's creates/removes, with the check
// mode fault of ansible/ansible#76010 fixed.)
type Command struct {
	// Argv is the command and its arguments, run without a shell.
	Argv []string `yaml:"argv"`
	// Shell is a script for /bin/sh -c; use argv unless you need a shell.
	Shell string `yaml:"shell"`
	// Stdin is sent to the command's standard input.
	Stdin string `yaml:"stdin"`
	// Creates skips the command when this path exists on the host.
	Creates string `yaml:"creates"`
	// Removes skips the command when this path does not exist.
	Removes string `yaml:"removes"`
	// Unless skips the command when this argv exits 0 on the host.
	Unless []string `yaml:"unless"`
	// ReadOnly says the command changes nothing: it runs in plan as well,
	// its failure fails the task, and it is never reported as a change.
	ReadOnly bool `yaml:"read_only"`
}

// Validate implements Validator.
func (c *Command) Validate() error {
	switch {
	case len(c.Argv) == 0 && c.Shell == "":
		return FieldErrorf("argv", "give the command as argv (a list) or shell (a script)")
	case len(c.Argv) > 0 && c.Shell != "":
		return FieldErrorf("shell", "give argv or shell, not both")
	case len(c.Argv) > 0 && c.Argv[0] == "":
		return FieldErrorf("argv", "the program name (argv[0]) is empty")
	}
	for _, p := range []struct{ name, val string }{{"creates", c.Creates}, {"removes", c.Removes}} {
		if p.val != "" && !path.IsAbs(p.val) {
			return FieldErrorf(p.name, "must be an absolute path, got %q", p.val)
		}
	}
	if c.ReadOnly && (c.Creates != "" || c.Removes != "" || len(c.Unless) > 0) {
		return FieldErrorf("read_only", "a read-only command needs no guard (creates, removes, unless)")
	}
	return nil
}

func (c *Command) cmd() Cmd {
	args := c.Argv
	if c.Shell != "" {
		args = []string{"sh", "-c", c.Shell}
	}
	var stdin []byte
	if c.Stdin != "" {
		stdin = []byte(c.Stdin)
	}
	return Cmd{Args: args, Stdin: stdin}
}

// Plan implements Task.
func (c *Command) Plan(ctx context.Context, h Host) ([]Change, error) {
	if c.ReadOnly {
		_, err := ExecCmd(ctx, h, c.cmd())
		return nil, err
	}
	// The guards, all in one round trip.
	var probes []Probe
	if c.Creates != "" {
		probes = append(probes, RunProbe("test", "-e", c.Creates))
	}
	if c.Removes != "" {
		probes = append(probes, RunProbe("test", "-e", c.Removes))
	}
	if len(c.Unless) > 0 {
		probes = append(probes, RunProbe(c.Unless...))
	}
	res, err := RunProbes(ctx, h, probes...)
	if err != nil {
		return nil, err
	}
	if c.Creates != "" {
		if res[0].Output.ExitCode == 0 {
			return nil, Skip("creates: %s exists", c.Creates)
		}
		res = res[1:]
	}
	if c.Removes != "" {
		if res[0].Output.ExitCode != 0 {
			return nil, Skip("removes: %s does not exist", c.Removes)
		}
		res = res[1:]
	}
	if len(c.Unless) > 0 && res[0].Output.ExitCode == 0 {
		return nil, Skip("unless: %s exited 0", ShellJoin(c.Unless))
	}
	// The status column says "will change" (plan) or "changed" (apply);
	// the summary says what is known of the effect, true in both modes.
	summary := "effect unknown"
	if c.Creates != "" {
		summary = fmt.Sprintf("expected to create %s", c.Creates)
	} else if c.Removes != "" {
		summary = fmt.Sprintf("expected to remove %s", c.Removes)
	}
	return []Change{{Action: Run, Resource: "command", Target: c.target(), Summary: summary}}, nil
}

func (c *Command) target() string {
	if c.Shell != "" {
		s := strings.TrimSpace(c.Shell)
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[:i] + " …"
		}
		return "sh -c " + ShellQuote(s)
	}
	return ShellJoin(c.Argv)
}

// Apply implements Task.
func (c *Command) Apply(ctx context.Context, h Host, changes []Change) error {
	if len(changes) == 0 {
		return nil
	}
	_, err := ExecCmd(ctx, h, c.cmd())
	return err
}
