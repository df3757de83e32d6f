package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dindops/dindops/playbooks"
)

func newPlaybookCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "playbook",
		Short: "Show or check playbooks",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the playbook built into dindops (the one used when none is named)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			src, err := playbooks.ShippedSource(playbooks.ShippedName)
			if err != nil {
				return err
			}
			_, err = stdout.Write(src)
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "check PLAYBOOK",
		Short: "Check a playbook's structure and task options without contacting any host",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			pb, err := playbooks.Load(args[0])
			if err != nil {
				return usageErr(err)
			}
			n := 0
			for _, p := range pb.Plays {
				n += len(p.Tasks) + len(p.Handlers)
			}
			fmt.Fprintf(stdout, "%s: %d plays, %d tasks and handlers: ok\n", pb.File, len(pb.Plays), n)
			return nil
		},
	})
	return cmd
}
