package tasks_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// sysvHost fakes a host without systemd whose `service NAME` script tracks
// one service's state.
func sysvHost(running bool) (*tasktest.Host, *[]string) {
	h := tasktest.New()
	var calls []string
	h.Handle("service", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		calls = append(calls, strings.Join(args[1:], " "))
		switch args[2] {
		case "status":
			if running {
				return tasks.Output{}
			}
			return tasks.Output{ExitCode: 3}
		case "start", "restart":
			running = true
		case "stop":
			running = false
		}
		return tasks.Output{}
	})
	h.Handle("find", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		if h.IsDir("/etc/rc2.d/S01docker") {
			return tasks.Output{Stdout: []byte("/etc/rc2.d/S01docker\n")}
		}
		return tasks.Output{}
	})
	h.Handle("update-rc.d", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		h.MkdirAll("/etc/rc2.d/S01" + args[1])
		return tasks.Output{}
	})
	return h, &calls
}

func TestServiceStartedOnSysV(t *testing.T) {
	h, calls := sysvHost(false)
	yes := true
	changes := tasktest.Converge(t, &tasks.Service{Name: "docker", State: "started", Enabled: &yes}, h)
	if len(changes) != 2 || changes[0].Summary != "start" || changes[1].Summary != "enable at boot" {
		t.Fatalf("changes = %+v", changes)
	}
	if !strings.Contains(strings.Join(*calls, ";"), "docker start") {
		t.Errorf("calls = %v", *calls)
	}
}

func TestServiceRestartedWaitsUntilReady(t *testing.T) {
	h, calls := sysvHost(true)
	answers := 0
	h.Handle("docker", func(*tasktest.Host, []string, []byte) tasks.Output {
		answers++
		if answers < 3 {
			return tasks.Output{ExitCode: 1, Stderr: []byte("Cannot connect to the Docker daemon")}
		}
		return tasks.Output{}
	})
	s := &tasks.Service{Name: "docker", State: "restarted", Ready: []string{"docker", "info"}}
	changes, err := s.Plan(context.Background(), h)
	if err != nil || len(changes) != 1 || changes[0].Action != tasks.Restart {
		t.Fatalf("plan = %+v, %v", changes, err)
	}
	if err := s.Apply(context.Background(), h, changes); err != nil {
		t.Fatal(err)
	}
	if answers != 3 {
		t.Errorf("ready command ran %d times, want 3 (until it succeeded)", answers)
	}
	if (*calls)[0] != "docker restart" {
		t.Errorf("calls = %v", *calls)
	}
}

func TestServiceReadyTimeout(t *testing.T) {
	h, _ := sysvHost(true)
	h.Handle("docker", func(*tasktest.Host, []string, []byte) tasks.Output {
		return tasks.Output{ExitCode: 1, Stderr: []byte("Cannot connect to the Docker daemon")}
	})
	s := &tasks.Service{Name: "docker", State: "restarted", Ready: []string{"docker", "info"}, ReadyTimeout: 1}
	changes, _ := s.Plan(context.Background(), h)
	err := s.Apply(context.Background(), h, changes)
	if err == nil || !strings.Contains(err.Error(), "docker did not become ready within 1s") || !strings.Contains(err.Error(), "Cannot connect") {
		t.Fatalf("err = %v", err)
	}
}

func TestServiceSystemd(t *testing.T) {
	h := tasktest.New()
	h.MkdirAll("/run/systemd/system")
	active := false
	var calls []string
	h.Handle("systemctl", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		calls = append(calls, strings.Join(args[1:], " "))
		switch args[1] {
		case "is-active":
			if active {
				return tasks.Output{}
			}
			return tasks.Output{ExitCode: 3}
		case "is-enabled":
			return tasks.Output{}
		case "start":
			active = true
		}
		return tasks.Output{}
	})
	tasktest.Converge(t, &tasks.Service{Name: "docker", State: "started"}, h)
	if !strings.Contains(strings.Join(calls, ";"), "start docker") {
		t.Fatalf("calls = %v", calls)
	}
}
