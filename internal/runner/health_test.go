package runner_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// The hosts of these tests have no docker, so the runner's health check
// finds them unhealthy (docker_down); b2's runner is decommissioned.
const healthPlaybook = `- name: runner
  hosts: all
  tasks:
    - name: motd
      file:
        path: /etc/motd
        content: "{{ .inventory_hostname }}\n"
  health:
    - name: runner works
      runner_health:
        config_file: /srv/gitlab-runner/config/config.toml
        name: "{{ .inventory_hostname }}"
        container: gitlab-runner
        state: "{{ if eq .inventory_hostname \"b2\" }}absent{{ else }}present{{ end }}"
        settle: -1
`

func healthRun(t *testing.T, mode runner.Mode) (*runner.Result, map[string]*tasktest.Host) {
	t.Helper()
	var restarts atomic.Int32
	inv := testInventory(t, "b1", "b2")
	hosts := map[string]*tasktest.Host{"b1": newBuildServer(&restarts), "b2": newBuildServer(&restarts)}
	fc := &fakeConnector{hosts: hosts, connect: map[string]int{}}
	res, err := runner.Run(context.Background(), "test.yml", compilePlays(t, healthPlaybook, inv), runner.Options{Mode: mode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	return res, hosts
}

func TestApplyFailsAnUnhealthyHost(t *testing.T) {
	res, hosts := healthRun(t, runner.ApplyMode)
	if len(hosts["b1"].Writes) != 1 {
		t.Fatalf("b1 writes = %v: the tasks run before the health check", hosts["b1"].Writes)
	}
	b1, b2 := res.Plays[0].Hosts[0], res.Plays[0].Hosts[1]
	if b1.Status != runner.Failed || !strings.HasPrefix(b1.Error, "unhealthy: the host's docker daemon does not answer") || !strings.Contains(b1.Error, `(health check "runner works")`) {
		t.Fatalf("b1 = %s %q; want failed, unhealthy", b1.Status, b1.Error)
	}
	if b1.Health == nil || b1.Health.Problem != tasks.ProblemDockerDown || b1.Tasks[0].Status != runner.Changed {
		t.Fatalf("b1 health %+v, task %s", b1.Health, b1.Tasks[0].Status)
	}
	if b2.Status != runner.Changed || b2.Health == nil || b2.Health.Status != tasks.NotChecked {
		t.Fatalf("b2 = %s %+v; a decommissioned runner is not checked", b2.Status, b2.Health)
	}
	// The change made before the check still counts; the host is failed.
	if s := res.Summary; s.Create != 2 || s.Failed != 1 || s.Hosts != 2 {
		t.Fatalf("summary = %+v", s)
	}
	if rc := res.Recap[0]; rc.Failed != 1 || rc.Changed != 1 || rc.Health == nil || rc.Health.Status != tasks.Unhealthy {
		t.Fatalf("recap b1 = %+v", rc)
	}
}

func TestPlanReportsHealthWithoutFailing(t *testing.T) {
	res, hosts := healthRun(t, runner.PlanMode)
	if len(hosts["b1"].Writes) != 0 {
		t.Fatal("plan wrote")
	}
	b1 := res.Plays[0].Hosts[0]
	if b1.Status != runner.Changed || b1.Health == nil || b1.Health.Status != tasks.Unhealthy {
		t.Fatalf("b1 = %s %+v; plan reports the health now and fails nothing", b1.Status, b1.Health)
	}
	if res.HostFailed() {
		t.Fatal("plan failed a host for its health")
	}
}

func TestCheckRunsOnlyHealthChecks(t *testing.T) {
	res, hosts := healthRun(t, runner.CheckMode)
	for name, h := range hosts {
		if len(h.Writes) != 0 || len(h.Commands) != 0 {
			t.Fatalf("check touched %s: writes %v, commands %v", name, h.Writes, h.Commands)
		}
	}
	b1, b2 := res.Plays[0].Hosts[0], res.Plays[0].Hosts[1]
	if len(b1.Tasks) != 0 || b1.Status != runner.Failed || b2.Status != runner.OK {
		t.Fatalf("b1 = %s (%d tasks), b2 = %s", b1.Status, len(b1.Tasks), b2.Status)
	}
	if res.Unhealthy() != 1 {
		t.Fatalf("unhealthy = %d", res.Unhealthy())
	}
}
