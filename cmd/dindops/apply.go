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
at the end of their play, on hosts where a task notified them. A host that
fails stops there; the other hosts go on.

Exit codes: 0 success, 1 a host failed or was unreachable, 2 bad usage or input.`,
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
			if res.HostFailed() {
				return &exitError{code: exitHostFailed}
			}
			return nil
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&check, "check", false, "only plan (the same as 'dindops plan')")
	return cmd
}
