package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/dindops/dindops/internal/runner"
)

func newPlanCommand(stdout, stderr io.Writer) *cobra.Command {
	var o runOptions
	var detailed bool
	cmd := &cobra.Command{
		Use:   "plan -i INVENTORY [PLAYBOOK]",
		Short: "Show what apply would change, with diffs, changing nothing",
		Long: `plan connects to every host, reads its real state, and prints what apply would
change: + create, ~ update, - delete, ↻ restart, > run (a command whose effect
is unknown), with unified diffs for files. Nothing on any host is changed.
Handlers left pending on a host by an apply that stopped early are shown (and
the next apply runs them). A play's serial batches are listed as apply would
run them; plan itself runs every host at once.

Exit codes: 0 success, 1 a host failed or was unreachable, 2 bad usage or
input. With --detailed-exitcode: 0 no changes, 1 error, 2 changes pending.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changed(cmd)
			return runPlan(cmd, &o, detailed, args, stdout, stderr)
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 2 when changes are pending, 0 when none, 1 on error")
	return cmd
}

func runPlan(cmd *cobra.Command, o *runOptions, detailed bool, args []string, stdout, stderr io.Writer) error {
	p, err := o.prepare(args)
	if err != nil {
		if detailed {
			return &exitError{code: exitHostFailed, err: err}
		}
		return err
	}
	res, err := o.execute(cmd.Context(), p, runner.PlanMode, stdout, stderr)
	if err != nil {
		return err
	}
	switch {
	case res.Stopped != nil && res.Stopped.Interrupted:
		return &exitError{code: exitInterrupt}
	case res.HostFailed():
		return &exitError{code: exitHostFailed}
	case detailed && res.Summary.Total() > 0:
		return &exitError{code: exitChanges}
	}
	return nil
}
