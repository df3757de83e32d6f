package tasks

// The restart of gitlab-runner that a setting it reads only when it starts
// (listen_address) needs.

import (
	"context"
	"fmt"
	"strings"
)

// startOnlySettings are the global settings gitlab-runner reads only when
// it starts, not when it reloads config.toml: the metrics server is set up
// once (https://docs.gitlab.com/runner/monitoring/: "restart the runner"
// after adding listen_address).
var startOnlySettings = []string{"listen_address"}

// runnerRestart is the payload of a restart change: the runner containers
// found running, drained then started again.
type runnerRestart struct{ drain *drainPlan }

// planRestart plans the restart of the task's restart containers when a
// change sets a start-only setting; without restart, that change warns
// instead. Containers that do not run (a host whose runner is not created
// yet) need none.
func (g *GitLabRunner) planRestart(ctx context.Context, h Host, changes []Change) ([]Change, error) {
	var changed []string
	at := -1
	for i, c := range changes {
		for _, f := range c.Fields {
			for _, k := range startOnlySettings {
				if f.Name == k {
					changed, at = append(changed, k), i
				}
			}
		}
	}
	if len(changed) == 0 {
		return nil, nil
	}
	why := fmt.Sprintf("gitlab-runner reads %s only when it starts", strings.Join(changed, ", "))
	if g.Restart == nil {
		changes[at].Warnings = append(changes[at].Warnings, why+": restart the runner (docker restart, or restart: in this task) before its metrics answer there")
		return nil, nil
	}
	dp, err := g.Restart.plan(ctx, h)
	if err != nil {
		return nil, err
	}
	if !dp.running() {
		return nil, nil
	}
	names := strings.Join(dp.names(), ", ")
	return []Change{{Action: Restart, Resource: "container", Target: names,
		Summary:  fmt.Sprintf("restart %s: %s; %s", names, why, dp.summary()),
		Warnings: dp.warnings(), Payload: &runnerRestart{drain: dp}}}, nil
}

// apply drains the containers (their running jobs finish first, up to the
// drain's timeout), then starts them again.
func (r *runnerRestart) apply(ctx context.Context, h Host) error {
	drained, err := r.drain.apply(ctx, h)
	if err != nil {
		return err
	}
	return startAgain(ctx, h, drained)
}
