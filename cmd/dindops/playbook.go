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
	cmd.AddCommand(newPlaybookCheckCommand(stdout))
	return cmd
}

func newPlaybookCheckCommand(stdout io.Writer) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "check [PLAYBOOK]",
		Short: "Check a playbook without contacting any host (with -i: for every host, templates and secrets included)",
		Long: `check loads a playbook (the shipped one when none is named) the way plan and
apply do, and reports every problem with file:line:column. Without -i it checks
the structure and every task whose options hold no template; with -i it also
expands every template for every host of the inventory and checks the result,
secrets from the environment included. No host is contacted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changed(cmd)
			if o.inventory != "" {
				p, err := o.prepare(args)
				if err != nil {
					return err
				}
				n, hc := 0, 0
				for _, rp := range p.plays {
					n += len(rp.Play.Tasks) + len(rp.Play.Handlers)
					hc += len(rp.Play.Health)
				}
				fmt.Fprintf(stdout, "%s: %d %s, %d tasks and handlers%s, checked for %d %s: ok\n",
					p.playbook, len(p.plays), plural(len(p.plays), "play", "plays"), n, healthCount(hc), p.hosts, plural(p.hosts, "host", "hosts"))
				return nil
			}
			var pb *playbooks.Playbook
			var err error
			if len(args) == 1 {
				pb, err = playbooks.Load(args[0])
			} else {
				pb, err = playbooks.Shipped()
			}
			if err != nil {
				return usageErr(err)
			}
			n, hc := 0, 0
			for _, p := range pb.Plays {
				n += len(p.Tasks) + len(p.Handlers)
				hc += len(p.Health)
			}
			fmt.Fprintf(stdout, "%s: %d %s, %d tasks and handlers%s: ok (templates unchecked: give -i INVENTORY to check them for each host)\n",
				pb.File, len(pb.Plays), plural(len(pb.Plays), "play", "plays"), n, healthCount(hc))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.inventory, "inventory", "i", "", "inventory file: also check every template for each of its hosts")
	f.StringArrayVarP(&o.extraVars, "extra-vars", "e", nil, "set a variable: name=value, or @file.yml (repeatable)")
	f.StringVarP(&o.limit, "limit", "l", "", "only check for hosts matching this host pattern")
	o.output, o.forks = "text", 1
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// healthCount words the number of health checks: "" for none, else
// ", 1 health check".
func healthCount(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d %s", n, plural(n, "health check", "health checks"))
}
