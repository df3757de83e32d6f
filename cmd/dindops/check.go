package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/dindops/dindops/internal/runner"
)

func newCheckCommand(stdout, stderr io.Writer) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "check -i INVENTORY [PLAYBOOK]",
		Short: "Check every host works as its runner sees it; changes nothing",
		Long: `check runs only the health checks of the playbook's plays (their health:
lists) on every host, changing nothing and taking no lock. With the shipped
playbook, for each host: the host's dockerd answers; config.toml has the
runner; the runner container runs; the dind daemon answers the Docker API
(_ping, version) at the address, port and TLS settings config.toml gives the
runner, reached through the runner's network; the runner's metrics answer
when listen_address is set; GitLab accepts the runner's token (a GitLab that
cannot be reached is a warning: the runner keeps working).

apply runs the same checks after each play's tasks and handlers (an unhealthy
host is a failed host), and plan shows each host's health now.

Exit codes: 0 every host is healthy, 1 a host is unhealthy, its health
unknown (it could not be checked) or it was unreachable, 2 bad usage or
input, 130 interrupted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changed(cmd)
			p, err := o.prepare(args)
			if err != nil {
				return err
			}
			res, err := o.execute(cmd.Context(), p, runner.CheckMode, stdout, stderr)
			if err != nil {
				return err
			}
			if err := exitCode(res); err != nil {
				return err
			}
			if res.Unhealthy() > 0 {
				return &exitError{code: exitHostFailed}
			}
			return nil
		},
	}
	o.register(cmd)
	return cmd
}
