package main

import (
	"io"

	"github.com/spf13/cobra"
)

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "dindops",
		Short: "Turn Linux build servers into GitLab CI runners with Docker-in-Docker, over SSH",
		Long: `dindops converges a fleet of build servers over SSH, agentless: the overlay
kernel module, docker's daemon.json (overlay2, merged and validated), a restart
of docker only when needed, a dedicated network, a long-lived Docker-in-Docker
daemon with cached layers, and a gitlab-runner container registered exactly once.

  dindops plan  -i hosts.yml    show what would change, with diffs; changes nothing
  dindops apply -i hosts.yml    make those changes on every host at once
  dindops check -i hosts.yml    check every runner works, as the runner sees it

Without a playbook argument, the playbook built into dindops is used
(see 'dindops playbook show').`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetVersionTemplate("dindops {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newPlanCommand(stdout, stderr),
		newApplyCommand(stdout, stderr),
		newCheckCommand(stdout, stderr),
		newPlaybookCommand(stdout),
		newInventoryCommand(stdout),
		newSSHCommand(stdout, stderr),
		newVersionCommand(stdout),
	)
	return root
}
