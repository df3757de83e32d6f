package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/dindops/dindops/internal/runner"
)

func newApplyCommand(stdout, stderr io.Writer) *cobra.Command {
	var o runOptions
	var check bool
	cmd := &cobra.Command{
		Use:   "apply -i INVENTORY [PLAYBOOK]",
		Short: "Converge every host: make the changes plan shows",
		Long: `apply connects to every host (up to --forks at once), plans each task against
the host's real state and makes exactly the planned changes. Handlers run once,
at the end of their play, on hosts where a task notified them; a notified
handler that could not run (a later failure, a lost connection) stays recorded
on the host and runs on the next apply. A host that fails stops there; the
other hosts go on.

A play with serial runs its hosts in batches (serial: 2, "25%", or
[1, "10%", "100%"] for a canary first); a batch in which more than
max_fail_percentage of the hosts failed, or every host failed, stops the
rollout and the hosts after it are left untouched. See docs/rollout.md.

Exit codes: 0 success, 1 a host failed or was unreachable, 2 bad usage or
input, 3 the rollout stopped early (hosts were left untouched), 130
interrupted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changed(cmd)
			if check {
				return runPlan(cmd, &o, false, args, stdout, stderr)
			}
			p, err := o.prepare(args)
			if err != nil {
				return err
			}
			res, err := o.execute(cmd.Context(), p, runner.ApplyMode, stdout, stderr)
			if err != nil {
				return err
			}
			return exitCode(res)
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&check, "check", false, "only plan (the same as 'dindops plan')")
	return cmd
}
