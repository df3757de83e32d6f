package tasks_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// networkHost fakes `docker network inspect NET` and `docker network create NET`.
func networkHost() *tasktest.Host {
	h := tasktest.New()
	nets := map[string]bool{}
	h.Handle("docker", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		switch strings.Join(args[1:3], " ") {
		case "network inspect":
			if nets[args[3]] {
				return tasks.Output{Stdout: []byte("[{}]")}
			}
			return tasks.Output{ExitCode: 1, Stderr: []byte("Error: No such network: " + args[3])}
		case "network create":
			if h.Frozen() {
				return tasks.Output{ExitCode: 99}
			}
			nets[args[3]] = true
			return tasks.Output{}
		}
		return tasks.Output{ExitCode: 2}
	})
	h.Handle("register-runner", func(*tasktest.Host, []string, []byte) tasks.Output { return tasks.Output{} })
	return h
}

// C33 (ansible/ansible#76010): check mode must not report every command as
// changed. (a) a read-only probe is ok; (b) a guarded create is skipped when
// its guard holds; (c) an unguarded command is "would run, effect unknown".
// For (a) and (b), plan's change count equals apply's.
func TestCommandCheckModeCounts(t *testing.T) {
	ctx := context.Background()
	h := networkHost()

	probe := &tasks.Command{Argv: []string{"docker", "network", "inspect", "NET"}, ReadOnly: true}
	guarded := &tasks.Command{Argv: []string{"docker", "network", "create", "NET"}, Unless: []string{"docker", "network", "inspect", "NET"}}
	unguarded := &tasks.Command{Argv: []string{"register-runner"}}

	// Before NET exists the probe fails (in plan too: it really runs).
	if _, err := probe.Plan(ctx, h); err == nil {
		t.Fatal("probe of a missing network succeeded")
	}
	changes := tasktest.Converge(t, guarded, h)
	if changes[0].Action != tasks.Run {
		t.Fatalf("guarded command change = %+v", changes[0])
	}
	// (a) probe: ok in plan and apply.
	h.Freeze()
	pc, err := probe.Plan(ctx, h)
	if err != nil || len(pc) != 0 {
		t.Fatalf("probe plan = %+v, %v", pc, err)
	}
	// (b) guard holds: skipped, not a change.
	gc, err := guarded.Plan(ctx, h)
	if reason, ok := tasks.IsSkip(err); !ok || len(gc) != 0 || !strings.Contains(reason, "unless: docker network inspect NET exited 0") {
		t.Fatalf("guarded plan = %+v, %v", gc, err)
	}
	// (c) unguarded: would run, effect unknown.
	uc, err := unguarded.Plan(ctx, h)
	if err != nil || len(uc) != 1 || uc[0].Action != tasks.Run || uc[0].Summary != "effect unknown" {
		t.Fatalf("unguarded plan = %+v, %v", uc, err)
	}
}

func TestCommandCreatesRemoves(t *testing.T) {
	ctx := context.Background()
	h := tasktest.New()
	h.Handle("touch", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		h.SetFile(args[1], "", 0o644, "root", "root")
		return tasks.Output{}
	})
	c := &tasks.Command{Argv: []string{"touch", "/var/done"}, Creates: "/var/done"}
	changes := tasktest.Converge(t, c, h)
	if changes[0].Summary != "expected to create /var/done" {
		t.Errorf("summary = %q", changes[0].Summary)
	}
	r := &tasks.Command{Argv: []string{"rm", "/var/done"}, Removes: "/var/done"}
	tasktest.Converge(t, r, h)
	if _, err := r.Plan(ctx, h); err == nil {
		t.Fatal("removes guard did not skip")
	}
}

func TestCommandFailureKeepsStderr(t *testing.T) {
	h := tasktest.New()
	h.Handle("prune", func(*tasktest.Host, []string, []byte) tasks.Output {
		return tasks.Output{ExitCode: 1, Stderr: []byte("Error response from daemon: invalid filter 'until'\n")}
	})
	c := &tasks.Command{Argv: []string{"prune", "--filter", "until=24h"}}
	changes, err := c.Plan(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Apply(context.Background(), h, changes)
	var ee *tasks.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 1 || !strings.Contains(err.Error(), "invalid filter 'until'") {
		t.Fatalf("err = %v", err)
	}
}

func TestCommandShellAndStdin(t *testing.T) {
	h := tasktest.New()
	var got []string
	var stdin string
	h.Handle("sh", func(_ *tasktest.Host, args []string, in []byte) tasks.Output {
		got, stdin = args, string(in)
		return tasks.Output{}
	})
	c := &tasks.Command{Shell: "cat > /tmp/x", Stdin: "data"}
	changes, _ := c.Plan(context.Background(), h)
	if err := c.Apply(context.Background(), h, changes); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "sh|-c|cat > /tmp/x" || stdin != "data" {
		t.Fatalf("ran %q with stdin %q", got, stdin)
	}
}

func TestCommandValidate(t *testing.T) {
	for _, c := range []*tasks.Command{
		{},
		{Argv: []string{"a"}, Shell: "b"},
		{Argv: []string{""}},
		{Argv: []string{"a"}, Creates: "relative"},
		{Argv: []string{"a"}, ReadOnly: true, Creates: "/x"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
