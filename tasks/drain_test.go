package tasks_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// runnerHost is a host running docker (SysV) with the shipped playbook's
// two containers, plus one without a restart policy. The runner finishes
// its jobs 20 ms after SIGQUIT.
func runnerHost(t *testing.T) (*tasktest.Host, *tasktest.Docker, *[]string) {
	t.Helper()
	h, calls := sysvHost(true)
	d := tasktest.InstallDocker(h)
	d.AddImage("docker:27-dind", dindImage)
	d.AddImage("gitlab/gitlab-runner:alpine-v17.11.0", runnerImage)
	d.AddImage("busybox:1", tasktest.DockerImage{Cmd: []string{"sh"}})
	d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{})
	for _, c := range []tasks.Task{fleetDindSpec(), drainingRunnerSpec()} {
		tasktest.Converge(t, c, h)
	}
	runByHand(t, d, "scratch", "busybox:1", byHand{})
	d.Drains("gitlab-runner", 20*time.Millisecond)
	return h, d, calls
}

// drainingRunnerSpec is the shipped playbook's runner container.
func drainingRunnerSpec() *tasks.DockerContainer {
	c := runnerSpec()
	c.StopSignal = "SIGQUIT"
	c.Drain = &tasks.Drain{Containers: []string{"gitlab-runner"}}
	return c
}

// commandIndexAfter is the position of the first command after i starting
// with prefix, or -1.
func commandIndexAfter(h *tasktest.Host, i int, prefix ...string) int {
	for j := i + 1; j < len(h.Commands); j++ {
		if c := h.Commands[j]; len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) {
			return j
		}
	}
	return -1
}

// commandIndex is the position of the first command starting with prefix,
// or -1.
func commandIndex(h *tasktest.Host, prefix ...string) int {
	for i, c := range h.Commands {
		if len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) {
			return i
		}
	}
	return -1
}

// The docker restart handler: the plan names what the restart does to the
// containers and the drain before it; apply sends SIGQUIT, waits for the
// runner to exit, restarts docker and starts the runner again.
func TestServiceRestartOfDockerDrainsTheRunnerFirst(t *testing.T) {
	h, d, _ := runnerHost(t)
	s := &tasks.Service{Name: "docker", State: "restarted", Ready: nil,
		Drain: (&tasks.Drain{Containers: []string{"gitlab-runner"}})}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	h.Freeze()
	changes, err := s.Plan(context.Background(), h)
	h.Thaw()
	if err != nil || len(changes) != 1 {
		t.Fatalf("plan: %+v %v", changes, err)
	}
	want := "restart → restarts gitlab-dind, gitlab-runner; stops scratch (no restart policy); drains gitlab-runner first (SIGQUIT, waits up to 1h0m0s for running jobs)"
	if c := changes[0]; c.Action != tasks.Restart || c.Summary != want || len(c.Warnings) != 0 {
		t.Errorf("change %v %q %v\nwant summary %q", c.Action, c.Summary, c.Warnings, want)
	}
	h.Commands = nil
	if err := s.Apply(context.Background(), h, changes); err != nil {
		t.Fatal(err)
	}
	kill, restart := commandIndex(h, "API", "ContainerKill", "gitlab-runner", "SIGQUIT"), commandIndex(h, "service", "docker", "restart")
	start := commandIndexAfter(h, restart, "API", "ContainerInspect", "gitlab-runner")
	if kill < 0 || restart < kill || start < restart {
		t.Errorf("want SIGQUIT, then the restart, then the runner started again; commands:\n%v", h.Commands)
	}
	// The restart waited until the runner had exited by itself.
	if sigs := d.Signals("gitlab-runner"); !slices.Equal(sigs, []string{"SIGQUIT"}) {
		t.Errorf("signals %v: the runner was killed instead of drained", sigs)
	}
	if wait := commandIndex(h, "API", "ContainerWait", "gitlab-runner", "not-running"); wait < kill || wait > restart {
		t.Errorf("the drain did not wait for the runner before the restart: %v", h.Commands)
	}
	if !d.Running("gitlab-runner") {
		t.Error("the runner does not run after the restart")
	}
}

// A job that outlasts the drain's timeout: the runner is killed and the
// restart goes on.
func TestDrainTimeoutKillsAndGoesOn(t *testing.T) {
	h, d, _ := runnerHost(t)
	d.Drains("gitlab-runner", -1)
	s := &tasks.Service{Name: "docker", State: "restarted", Drain: (&tasks.Drain{Containers: []string{"gitlab-runner"}, Timeout: 1})}
	changes, err := s.Plan(context.Background(), h)
	if err != nil || !strings.Contains(changes[0].Summary, "waits up to 1s") {
		t.Fatalf("plan: %+v %v", changes, err)
	}
	if err := s.Apply(context.Background(), h, changes); err != nil {
		t.Fatal(err)
	}
	if sigs := d.Signals("gitlab-runner"); !slices.Equal(sigs, []string{"SIGQUIT", "SIGKILL"}) {
		t.Errorf("signals %v", sigs)
	}
	if commandIndex(h, "service", "docker", "restart") < commandIndex(h, "API", "ContainerKill", "gitlab-runner", "SIGKILL") || !d.Running("gitlab-runner") {
		t.Errorf("commands %v", h.Commands)
	}
}

// Nothing to drain: the runner does not run, or live-restore keeps every
// container running through the restart.
func TestDrainOnlyWhatRuns(t *testing.T) {
	t.Run("runner stopped", func(t *testing.T) {
		h, d, _ := runnerHost(t)
		d.Stop("gitlab-runner")
		s := &tasks.Service{Name: "docker", State: "restarted", Drain: (&tasks.Drain{Containers: []string{"gitlab-runner", "not-there"}})}
		changes, err := s.Plan(context.Background(), h)
		if err != nil || changes[0].Summary != "restart → restarts gitlab-dind; stops scratch (no restart policy)" {
			t.Fatalf("plan: %+v %v", changes, err)
		}
		if err := s.Apply(context.Background(), h, changes); err != nil || commandIndex(h, "API", "ContainerKill") >= 0 {
			t.Errorf("apply: %v %v", err, h.Commands)
		}
	})
	t.Run("live-restore", func(t *testing.T) {
		h, d, _ := runnerHost(t)
		d.LiveRestore = true
		s := &tasks.Service{Name: "docker", State: "restarted", Drain: (&tasks.Drain{Containers: []string{"gitlab-runner"}})}
		changes, err := s.Plan(context.Background(), h)
		if err != nil || changes[0].Summary != "restart → containers keep running (live-restore); no drain needed" {
			t.Fatalf("plan: %+v %v", changes, err)
		}
		if err := s.Apply(context.Background(), h, changes); err != nil || commandIndex(h, "API", "ContainerKill") >= 0 {
			t.Errorf("apply: %v %v", err, h.Commands)
		}
	})
	t.Run("docker stopped", func(t *testing.T) {
		h, _ := sysvHost(false)
		s := &tasks.Service{Name: "docker", State: "restarted", Drain: (&tasks.Drain{Containers: []string{"gitlab-runner"}})}
		changes, err := s.Plan(context.Background(), h)
		// Nothing runs, so nothing to drain; and a stopped docker is started.
		if err != nil || changes[0].Summary != "start (it is not running)" {
			t.Fatalf("plan: %+v %v", changes, err)
		}
	})
	t.Run("stop", func(t *testing.T) {
		h, d, _ := runnerHost(t)
		s := &tasks.Service{Name: "docker", State: "stopped", Drain: (&tasks.Drain{Containers: []string{"gitlab-runner"}})}
		h.Commands = nil
		changes := tasktest.Converge(t, s, h)
		if want := "stop → stops every container; drains gitlab-runner first (SIGQUIT, waits up to 1h0m0s for running jobs)"; changes[0].Summary != want {
			t.Errorf("summary %q", changes[0].Summary)
		}
		if sigs := d.Signals("gitlab-runner"); !slices.Equal(sigs, []string{"SIGQUIT"}) || commandIndex(h, "API", "ContainerStart") >= 0 {
			t.Errorf("signals %v, commands %v", sigs, h.Commands)
		}
	})
}

// A runner whose stop signal is not the drain signal comes straight back
// under restart policy always: the plan says so.
func TestDrainWarnsOfARunnerDockerWouldRestart(t *testing.T) {
	h, d, _ := runnerHost(t)
	d.RemoveContainer("gitlab-runner")
	c := runnerSpec()
	c.StopSignal = "SIGTERM"
	tasktest.Converge(t, c, h)
	s := &tasks.Service{Name: "docker", State: "restarted", Drain: (&tasks.Drain{Containers: []string{"gitlab-runner"}})}
	changes, err := s.Plan(context.Background(), h)
	if err != nil || len(changes[0].Warnings) != 1 || !strings.Contains(changes[0].Warnings[0], "stop signal SIGTERM, not the drain signal SIGQUIT: docker restarts it (restart policy always)") {
		t.Fatalf("plan: %+v %v", changes, err)
	}
}

// Recreating dind takes its jobs down: the runner is drained first and
// started again after.
func TestContainerRecreateDrainsItsDependents(t *testing.T) {
	h, d, _ := runnerHost(t)
	c := fleetDindSpec()
	c.Drain = (&tasks.Drain{Containers: []string{"gitlab-runner"}})
	c.Env = map[string]string{"DOCKER_TLS_CERTDIR": "", "NEW": "1"}
	h.Commands = nil
	changes := tasktest.Converge(t, c, h)
	want := "recreate: env changed; drains gitlab-runner first (SIGQUIT, waits up to 1h0m0s for running jobs); gitlab-runner is started again after"
	if changes[0].Summary != want {
		t.Errorf("summary %q\nwant %q", changes[0].Summary, want)
	}
	kill, rm, start := commandIndex(h, "API", "ContainerKill", "gitlab-runner", "SIGQUIT"), commandIndex(h, "API", "ContainerRemove", "gitlab-dind"), commandIndex(h, "API", "ContainerStart", "gitlab-runner")
	if kill < 0 || rm < kill || start < rm {
		t.Errorf("commands %v", h.Commands)
	}
	if !d.Running("gitlab-runner") || !d.Running("gitlab-dind") || !slices.Equal(d.Signals("gitlab-runner"), []string{"SIGQUIT"}) {
		t.Errorf("runner %t dind %t signals %v", d.Running("gitlab-runner"), d.Running("gitlab-dind"), d.Signals("gitlab-runner"))
	}

	// Removed, it leaves the runner stopped.
	gone := &tasks.DockerContainer{Name: "gitlab-dind", State: "absent", Drain: (&tasks.Drain{Containers: []string{"gitlab-runner"}})}
	d.Drains("gitlab-runner", 10*time.Millisecond)
	changes = tasktest.Converge(t, gone, h)
	if want := "remove; drains gitlab-runner first (SIGQUIT, waits up to 1h0m0s for running jobs); gitlab-runner stays stopped"; changes[0].Summary != want {
		t.Errorf("summary %q", changes[0].Summary)
	}
	if d.Running("gitlab-runner") {
		t.Error("the runner was started again after dind's removal")
	}
}

// The runner's own container drains itself before it is recreated, and
// nothing is drained when it is only created.
func TestRunnerContainerDrainsItselfBeforeARecreate(t *testing.T) {
	h, d, _ := runnerHost(t)
	c := drainingRunnerSpec()
	c.Env = map[string]string{"DOCKER_HOST": "tcp://gitlab-dind:2375", "LOG_LEVEL": "debug"}
	h.Commands = nil
	changes := tasktest.Converge(t, c, h)
	if want := "recreate: env changed; drains gitlab-runner first (SIGQUIT, waits up to 1h0m0s for running jobs)"; changes[0].Summary != want {
		t.Errorf("summary %q", changes[0].Summary)
	}
	if kill, rm := commandIndex(h, "API", "ContainerKill", "gitlab-runner", "SIGQUIT"), commandIndex(h, "API", "ContainerRemove", "gitlab-runner"); kill < 0 || rm < kill {
		t.Errorf("commands %v", h.Commands)
	}
	if !d.Running("gitlab-runner") {
		t.Error("not running after the recreate")
	}
	d.RemoveContainer("gitlab-runner")
	if changes := tasktest.Converge(t, c, h); strings.Contains(changes[0].Summary, "drain") {
		t.Errorf("create drains: %q", changes[0].Summary)
	}
}

func TestStopSignal(t *testing.T) {
	h, d := dockerHost(t)
	c := runnerSpec()
	c.StopSignal = "quit"
	changes := tasktest.Converge(t, c, h)
	if got := d.Container("gitlab-runner").Config.StopSignal; got != "SIGQUIT" {
		t.Errorf("created with stop signal %q", got)
	}
	shown := map[string]string{}
	for _, f := range changes[0].Fields {
		shown[f.Name] = f.New
	}
	if shown["stop_signal"] != "SIGQUIT" {
		t.Errorf("fields %+v", changes[0].Fields)
	}
	// "3" is SIGQUIT too; another signal is drift.
	c.StopSignal = "3"
	if again, err := c.Plan(context.Background(), h); err != nil || len(again) != 0 {
		t.Errorf("3 vs SIGQUIT: %+v %v", again, err)
	}
	c.StopSignal = "SIGTERM"
	again, err := c.Plan(context.Background(), h)
	if err != nil || len(again) != 1 || tasks.FieldNames(again[0].Fields) != "stop_signal" || again[0].Fields[0].Old != "SIGQUIT" {
		t.Errorf("drift: %+v %v", again, err)
	}
	// Unset, the image's (none here) is wanted.
	c.StopSignal = ""
	again, err = c.Plan(context.Background(), h)
	if err != nil || len(again) != 1 || again[0].Fields[0].Name != "stop_signal" || again[0].Fields[0].New != "" {
		t.Errorf("unset: %+v %v", again, err)
	}
	_ = d
}

func TestDrainValidation(t *testing.T) {
	for _, tc := range []struct {
		task tasks.Validator
		want string
	}{
		{&tasks.Service{Name: "docker", State: "started", Drain: &tasks.Drain{Containers: []string{"gitlab-runner"}}}, "drain: drains containers before a restart or a stop"},
		{&tasks.Service{Name: "docker", State: "restarted", Drain: &tasks.Drain{}}, "drain.containers: name the containers"},
		{&tasks.Service{Name: "docker", State: "restarted", Drain: &tasks.Drain{Containers: []string{"a b"}}}, "drain.containers: invalid container name"},
		{&tasks.Service{Name: "docker", State: "restarted", Drain: &tasks.Drain{Containers: []string{"gitlab-runner"}, Signal: "KILL"}}, "drain.signal: SIGKILL cannot drain"},
		{&tasks.Service{Name: "docker", State: "restarted", Drain: &tasks.Drain{Containers: []string{"gitlab-runner"}, Signal: "SIG QUIT"}}, "drain.signal"},
		{&tasks.Service{Name: "docker", State: "restarted", Drain: &tasks.Drain{Containers: []string{"gitlab-runner"}, Timeout: -1}}, "drain.timeout"},
		{&tasks.DockerContainer{Name: "gitlab-dind", Image: "docker:27-dind", Drain: &tasks.Drain{Containers: []string{"xy", "xy"}}}, "drain.containers: \"xy\" is listed twice"},
		{&tasks.DockerContainer{Name: "gitlab-runner", Image: "r:1", StopSignal: "not a signal"}, "stop_signal"},
	} {
		err := tc.task.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.task, err, tc.want)
		}
	}
	ok := &tasks.Service{Name: "docker", State: "restarted", Drain: &tasks.Drain{Containers: []string{"gitlab-runner"}, Signal: "quit", Timeout: 7200}}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
}
