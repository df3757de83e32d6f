package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/dindops/dindops/inventory"
)

func newInventoryCommand(stdout io.Writer) *cobra.Command {
	var file, pattern string
	var vars bool
	cmd := &cobra.Command{
		Use:   "inventory -i INVENTORY",
		Short: "List the hosts of an inventory (matching --limit), with their connection settings",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			inv, err := inventory.Load(file)
			if err != nil {
				return usageErr(err)
			}
			hosts := inv.Hosts
			if pattern != "" {
				if hosts, err = inv.Select(pattern); err != nil {
					return usageErr(err)
				}
			}
			for _, h := range hosts {
				user := h.User
				if user == "" {
					user = "(your user)"
				}
				become := ""
				if h.Become {
					become = " become:" + h.BecomeUser
				}
				groups := strings.Join(h.Groups, ",")
				if groups == "" {
					groups = "(only all)"
				}
				fmt.Fprintf(stdout, "%s\t%s@%s%s\tgroups: %s\n", h.Name, user, h.Endpoint(), become, groups)
				if h.IdentityFile != "" {
					fmt.Fprintf(stdout, "    identity_file: %s\n", h.IdentityFile)
				}
				if h.DockerHost != "" {
					fmt.Fprintf(stdout, "    docker_host: %s\n", h.DockerHost)
				}
				if h.KnownHosts != "" {
					fmt.Fprintf(stdout, "    known_hosts: %s\n", h.KnownHosts)
				}
				if vars && len(h.Vars) > 0 {
					out, _ := yaml.Marshal(h.Vars)
					for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
						fmt.Fprintf(stdout, "    %s\n", l)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "inventory", "i", "", "inventory file (required)")
	cmd.Flags().StringVarP(&pattern, "limit", "l", "", "only hosts matching this host pattern")
	cmd.Flags().BoolVar(&vars, "vars", false, "also print each host's vars")
	_ = cmd.MarkFlagRequired("inventory")
	return cmd
}
