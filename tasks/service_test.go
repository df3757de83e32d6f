package tasks_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

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
		if args[1] != "docker" {
			// Debian's /usr/sbin/service when there is no /etc/init.d/NAME.
			return tasks.Output{ExitCode: 1, Stderr: []byte(args[1] + ": unrecognized service\n")}
		}
		switch args[2] {
		case "status":
			if running {
				return tasks.Output{}
			}
			return tasks.Output{ExitCode: 3}
		case "start":
			running = true
			if d := h.Engine(); d != nil {
				d.StartDaemon()
			}
		case "restart":
			if !running {
				// Debian's /etc/init.d/docker: restart stops first, and
				// start-stop-daemon --stop fails on a stopped daemon.
				return tasks.Output{ExitCode: 1, Stderr: []byte("Stopping Docker: docker failed!\n")}
			}
			if d := h.Engine(); d != nil {
				d.Restart()
			}
		case "stop":
			running = false
			if d := h.Engine(); d != nil {
				d.StopDaemon()
			}
		}
		return tasks.Output{}
	})
	h.Handle("tail", tailProgram)
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

// A handler's restart of a docker that is not running (an interrupted
// run left it stopped) is a start: plan says so, and apply starts it, as
// Debian's init script would refuse "restart". And a docker that stopped
// between plan and apply is started too.
func TestServiceRestartOfStoppedServiceStarts(t *testing.T) {
	h, calls := sysvHost(false)
	s := &tasks.Service{Name: "docker", State: "restarted"}
	changes := plan(t, s, h)
	if err := s.Apply(context.Background(), h, changes); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Action != tasks.Restart || changes[0].Summary != "start (it is not running)" {
		t.Fatalf("changes = %+v", changes)
	}
	if got := strings.Join(*calls, ";"); !strings.Contains(got, "docker start") || strings.Contains(got, "docker restart") {
		t.Errorf("calls = %v", *calls)
	}

	h, calls = sysvHost(true)
	changes, err := s.Plan(context.Background(), h)
	if err != nil || len(changes) != 1 || changes[0].Summary != "restart" {
		t.Fatalf("plan = %+v, %v", changes, err)
	}
	if _, err := h.Run(context.Background(), tasks.Cmd{Args: []string{"service", "docker", "stop"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(context.Background(), h, changes); err != nil {
		t.Fatalf("apply after docker stopped: %v", err)
	}
	if got := strings.Join(*calls, ";"); !strings.HasSuffix(got, "docker restart;docker status;docker start;docker status") {
		t.Errorf("calls = %v", got)
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
	// Plan checks with one status that the service exists and runs (a
	// running docker's restart takes its containers down); apply restarts
	// it.
	if len(*calls) < 2 || (*calls)[0] != "docker status" || (*calls)[1] != "docker restart" {
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

// docker without ready: a restart waits until its Engine API answers
// (Debian's init script returns before the daemon does), and fails naming
// the API when it never does.
func TestServiceRestartOfDockerWaitsForTheAPI(t *testing.T) {
	for _, comesBack := range []bool{true, false} {
		h, _ := sysvHost(true)
		d := tasktest.InstallDocker(h)
		h.Handle("service", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
			if args[2] == "restart" {
				d.SetDown(true)
				if comesBack {
					time.AfterFunc(300*time.Millisecond, func() { d.SetDown(false) })
				}
			}
			return tasks.Output{}
		})
		s := &tasks.Service{Name: "docker", State: "restarted", ReadyTimeout: 2}
		changes, err := s.Plan(context.Background(), h)
		if err != nil || len(changes) != 1 {
			t.Fatalf("plan = %+v, %v", changes, err)
		}
		h.Commands = nil
		err = s.Apply(context.Background(), h, changes)
		infos := 0
		for _, c := range h.Commands {
			if c[0] == "API" && c[1] == "Info" {
				infos++
			}
		}
		switch {
		case comesBack && (err != nil || infos < 2):
			t.Errorf("apply: %v after %d API infos; want success after the API answered again", err, infos)
		case !comesBack && (err == nil || !strings.Contains(err.Error(), "docker did not become ready within 2s") || !strings.Contains(err.Error(), "does not answer its API")):
			t.Errorf("apply with a daemon that never answers: %v", err)
		}
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

// tailProgram is tail -n N FILE.
func tailProgram(h *tasktest.Host, args []string, _ []byte) tasks.Output {
	if len(args) != 4 || args[1] != "-n" {
		return tasks.Output{ExitCode: 2, Stderr: []byte("tail: fake supports only: tail -n N FILE\n")}
	}
	n, _ := strconv.Atoi(args[2])
	f, ok := h.File(args[3])
	if !ok {
		return tasks.Output{ExitCode: 1, Stderr: []byte("tail: cannot open '" + args[3] + "' for reading: No such file or directory\n")}
	}
	lines := strings.SplitAfter(string(f.Content), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return tasks.Output{Stdout: []byte(strings.Join(lines[max(0, len(lines)-n):], ""))}
}

// A service that does not exist fails the plan when it is to run or start
// at boot; "~ start" followed by "unrecognized service" in apply is what the
// review saw. Stopped or disabled, a missing service already is so.
func TestServiceMissingFailsPlan(t *testing.T) {
	yes, no := true, false
	for _, s := range []*tasks.Service{{Name: "dockr", State: "restarted"}, {Name: "dockr", State: "started"}, {Name: "dockr", Enabled: &yes}} {
		h, _ := sysvHost(false)
		h.Freeze()
		changes, err := s.Plan(context.Background(), h)
		h.Thaw()
		if err == nil || !strings.Contains(err.Error(), "service dockr does not exist on this host") || !strings.Contains(err.Error(), `"dockr: unrecognized service"`) {
			t.Errorf("%+v: plan = %+v, %v", s, changes, err)
		}
	}
	for _, s := range []*tasks.Service{{Name: "dockr", State: "stopped"}, {Name: "dockr", Enabled: &no}} {
		h, _ := sysvHost(false)
		if changes := plan(t, s, h); len(changes) != 0 {
			t.Errorf("%+v: changes = %+v", s, changes)
		}
	}

	h := tasktest.New()
	h.MkdirAll("/run/systemd/system")
	h.Handle("systemctl", func(_ *tasktest.Host, args []string, _ []byte) tasks.Output {
		if args[1] == "show" && args[len(args)-1] == "dockr" {
			return tasks.Output{Stdout: []byte("not-found\n")}
		}
		if args[1] == "show" {
			return tasks.Output{Stdout: []byte("loaded\n")}
		}
		return tasks.Output{ExitCode: 3}
	})
	_, err := (&tasks.Service{Name: "dockr", State: "restarted"}).Plan(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "systemd has no unit dockr.service") {
		t.Errorf("systemd: plan err = %v", err)
	}
	if changes := plan(t, &tasks.Service{Name: "docker", State: "restarted"}, h); len(changes) != 1 {
		t.Errorf("systemd, existing unit: %+v", changes)
	}
}

// When the service does not come up, the error carries its own last log
// lines: what dockerd said before it exited.
func TestServiceFailureShowsItsLog(t *testing.T) {
	h, _ := sysvHost(true)
	// Debian's init script returns 0 and dockerd exits at once.
	h.Handle("service", func(_ *tasktest.Host, args []string, _ []byte) tasks.Output {
		if args[2] == "status" {
			return tasks.Output{ExitCode: 3, Stdout: []byte("Docker is not running ... failed!\n")}
		}
		return tasks.Output{}
	})
	var log strings.Builder
	for i := range 30 {
		fmt.Fprintf(&log, "time=\"2024-01-01T00:00:%02dZ\" level=info msg=\"old run %d\"\n", i, i)
	}
	log.WriteString("unable to parse logging level: chatty\n")
	h.SetFile("/var/log/docker.log", log.String(), 0o640, "root", "docker")
	s := &tasks.Service{Name: "docker", State: "restarted", Ready: []string{"docker", "info"}, ReadyTimeout: 1}
	changes := plan(t, s, h)
	err := s.Apply(context.Background(), h, changes)
	if err == nil {
		t.Fatal("apply succeeded")
	}
	for _, want := range []string{"docker did not become ready within 1s: docker is not running",
		"last lines of tail -n 20 /var/log/docker.log:", "unable to parse logging level: chatty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "old run 5\"") {
		t.Errorf("more than the last 20 lines:\n%v", err)
	}

	// systemd: the restart itself fails; the journal says why.
	h = tasktest.New()
	h.MkdirAll("/run/systemd/system")
	h.Handle("systemctl", func(_ *tasktest.Host, args []string, _ []byte) tasks.Output {
		switch args[1] {
		case "show":
			return tasks.Output{Stdout: []byte("loaded\n")}
		case "is-active":
			return tasks.Output{} // it runs: the restart is what fails
		case "restart":
			return tasks.Output{ExitCode: 1, Stderr: []byte("Job for docker.service failed because the control process exited with error code.\n" +
				"See \"systemctl status docker.service\" and \"journalctl -xeu docker.service\" for details.\n")}
		}
		return tasks.Output{ExitCode: 3}
	})
	h.Handle("journalctl", func(_ *tasktest.Host, args []string, _ []byte) tasks.Output {
		if strings.Join(args, " ") != "journalctl -u docker.service -n 20 --no-pager" {
			return tasks.Output{ExitCode: 1}
		}
		return tasks.Output{Stdout: []byte("Jan 01 00:00:00 host dockerd[123]: unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives are specified both as a flag and in the configuration file: storage-driver: (from flag: vfs, from file: overlay2)\n" +
			"Jan 01 00:00:00 host systemd[1]: docker.service: Main process exited, code=exited, status=1/FAILURE\n")}
	})
	s = &tasks.Service{Name: "docker", State: "restarted"}
	changes = plan(t, s, h)
	err = s.Apply(context.Background(), h, changes)
	if err == nil || !strings.Contains(err.Error(), "systemctl restart docker: exit status 1") ||
		!strings.Contains(err.Error(), "specified both as a flag and in the configuration file") {
		t.Fatalf("err = %v", err)
	}
}

// An interrupted restart whose stop is still under way (the init script's
// status says running, the API still answers) ends with the service
// running: it is checked until it has kept running, and started again
// when the stop completes.
func TestServiceInterruptedRestartEndsRunning(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	running, stopIn := true, 0
	var calls []string
	h.Handle("service", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		calls = append(calls, strings.Join(args[2:], " "))
		switch args[2] {
		case "status":
			if stopIn > 0 {
				if stopIn--; stopIn == 0 {
					running = false // the stop the interrupted restart began completes
					d.StopDaemon()
				}
			}
			if running {
				return tasks.Output{}
			}
			return tasks.Output{ExitCode: 3}
		case "start":
			running = true
			d.StartDaemon()
		}
		return tasks.Output{}
	})
	h.Handle("tail", tailProgram)
	s := &tasks.Service{Name: "docker", State: "restarted"}
	changes := plan(t, s, h)
	// The restart was sent and the run interrupted while it stopped
	// docker: status still says running once more.
	stopIn = 2
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Apply(ctx, h, changes)
	if !running || stopIn != 0 {
		t.Fatalf("after the interrupted restart: running %v (calls %q), apply: %v", running, calls, err)
	}
	if got := strings.Join(calls, ";"); !strings.Contains(got, "status;start") {
		t.Errorf("calls %q: want docker started again once its stop completed", got)
	}
}
