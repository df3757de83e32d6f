package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

const goodDaemonJSON = "{\n  \"registry-mirrors\": [\"http://10.0.0.2:5000\"]\n}\n"

// refusingDockerHost is a host without systemd whose docker, under
// Debian's init script, starts only when its daemon.json has no
// "log-level": "loud" (or never, with never): as dockerd 20.10 refusing
// its file, it exits at once and writes why to /var/log/docker.log.
func refusingDockerHost(t *testing.T, never *bool) (*tasktest.Host, *tasktest.Docker) {
	t.Helper()
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	h.SetFile("/etc/docker/daemon.json", goodDaemonJSON, 0o644, "root", "root")
	h.SetFile("/var/log/docker.log", "time=\"2026-12-01T10:00:00Z\" level=info msg=\"Daemon has completed initialization\"\n", 0o640, "root", "docker")
	running := true
	logLine := func(l string) {
		f, _ := h.File("/var/log/docker.log")
		h.SetFile("/var/log/docker.log", string(f.Content)+l+"\n", 0o640, "root", "docker")
	}
	start := func() {
		f, _ := h.File("/etc/docker/daemon.json")
		if *never || strings.Contains(string(f.Content), `"loud"`) {
			logLine(`time="2026-12-01T10:01:00Z" level=info msg="Starting up"`)
			logLine(`unable to configure the Docker daemon with file /etc/docker/daemon.json: unable to parse logging level: loud`)
			running = false
			d.StopDaemon()
			return
		}
		logLine(`time="2026-12-01T10:01:00Z" level=info msg="API listen on /var/run/docker.sock"`)
		running = true
		d.StartDaemon()
	}
	h.Handle("service", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		switch args[2] {
		case "status":
			if running {
				return tasks.Output{}
			}
			return tasks.Output{ExitCode: 3}
		case "start":
			if !running {
				start()
			}
		case "restart":
			if !running {
				return tasks.Output{ExitCode: 1, Stderr: []byte("Stopping Docker: docker failed!\n")}
			}
			d.StopDaemon()
			start()
		case "stop":
			running = false
			d.StopDaemon()
		}
		return tasks.Output{}
	})
	h.Handle("tail", tailProgram)
	h.Handle("sh", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		f, _ := h.File("/var/log/docker.log")
		switch {
		case strings.HasPrefix(args[2], "date +%s"):
			return tasks.Output{Stdout: []byte(fmt.Sprintf("1764583200\n%d\n", len(f.Content)))}
		case strings.HasPrefix(args[2], "tail -c"):
			var from int
			fmt.Sscan(args[4], &from)
			return tasks.Output{Stdout: f.Content[min(from-1, len(f.Content)):]}
		}
		return tasks.Output{ExitCode: 2}
	})
	h.Handle("dockerd", func(*tasktest.Host, []string, []byte) tasks.Output { return tasks.Output{Stdout: dockerd2010Help()} })
	return h, d
}

// dockerDown reports whether the host's docker does not answer its API.
func dockerDown(h *tasktest.Host) bool {
	api, err := tasks.Docker(context.Background(), h)
	if err == nil {
		_, err = api.Info(context.Background(), client.InfoOptions{})
	}
	return err != nil
}

func restartWithRestore() *tasks.Service {
	return &tasks.Service{Name: "docker", State: "restarted", ReadyTimeout: 20, Restore: []string{"/etc/docker/daemon.json"}}
}

// writeDaemonJSON applies docker_daemon_config with settings, as play 1
// does before its handler.
func writeDaemonJSON(t *testing.T, h *tasktest.Host, settings map[string]any) {
	t.Helper()
	d := &tasks.DockerDaemonConfig{Settings: settings}
	apply(t, d, h, plan(t, d, h))
}

const backupRecord = "/var/lib/dindops/backup/etc_docker_daemon.json.json"

// A value dockerd 20.10 refuses at start (it passes the key check): the
// restart handler finds docker down, puts the previous daemon.json back,
// starts docker again, and fails with dockerd's own reason.
func TestServiceRestoresConfigWhenDockerDoesNotComeBack(t *testing.T) {
	never := false
	h, _ := refusingDockerHost(t, &never)
	writeDaemonJSON(t, h, map[string]any{"log-level": "loud"})
	if rec, ok := h.File(backupRecord); !ok || rec.Mode != 0o600 || rec.Owner != "root" || !strings.Contains(string(rec.Content), "10.0.0.2:5000") {
		t.Fatalf("backup record before the write: %+v, %v", rec, ok)
	}
	s := restartWithRestore()
	err := s.Apply(context.Background(), h, plan(t, s, h))
	var re *tasks.RestoredError
	if !errors.As(err, &re) || !re.Running {
		t.Fatalf("apply err = %v, want a *RestoredError with docker running", err)
	}
	for _, w := range []string{"docker did not come back after the change of /etc/docker/daemon.json: unable to configure the Docker daemon with file /etc/docker/daemon.json: unable to parse logging level: loud",
		"the previous /etc/docker/daemon.json was restored and docker runs again with it"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if f, _ := h.File("/etc/docker/daemon.json"); string(f.Content) != goodDaemonJSON || f.Mode != 0o644 || f.Owner != "root" {
		t.Errorf("daemon.json after the restore: %+v", f)
	}
	if _, ok := h.File(backupRecord); ok {
		t.Error("the backup record is kept although docker came up with the restored file")
	}
	if dockerDown(h) {
		t.Error("docker does not answer after the restore")
	}
}

// The restored file does not start docker either: the error says so.
func TestServiceRestoreReportsWhenTheRestoredConfigFailsToo(t *testing.T) {
	never := false
	h, _ := refusingDockerHost(t, &never)
	writeDaemonJSON(t, h, map[string]any{"log-level": "loud"})
	s := restartWithRestore()
	changes := plan(t, s, h)
	never = true
	err := s.Apply(context.Background(), h, changes)
	var re *tasks.RestoredError
	if !errors.As(err, &re) || re.Running || !strings.Contains(err.Error(), "but docker does not start with it either") || !strings.Contains(err.Error(), "docker is stopped") {
		t.Fatalf("apply err = %v", err)
	}
	if f, _ := h.File("/etc/docker/daemon.json"); string(f.Content) != goodDaemonJSON {
		t.Errorf("daemon.json: %q", f.Content)
	}
}

// A daemon.json edited since dindops wrote it is not dindops's to undo.
func TestServiceRestoreLeavesAFileEditedSince(t *testing.T) {
	never := false
	h, _ := refusingDockerHost(t, &never)
	writeDaemonJSON(t, h, map[string]any{"log-level": "loud"})
	edited := "{\"log-level\": \"loud\", \"debug\": true}\n"
	h.SetFile("/etc/docker/daemon.json", edited, 0o644, "root", "root")
	s := restartWithRestore()
	err := s.Apply(context.Background(), h, plan(t, s, h))
	if err == nil || !strings.Contains(err.Error(), "changed since dindops wrote it, so it was left as it is") || !strings.Contains(err.Error(), "unable to parse logging level") {
		t.Fatalf("apply err = %v", err)
	}
	if f, _ := h.File("/etc/docker/daemon.json"); string(f.Content) != edited {
		t.Errorf("daemon.json: %q", f.Content)
	}
}

// An interrupted run left the bad file written and docker stopped: the
// next run's "docker runs" task (state started, with restore) restores it,
// and the previous content kept is the last good one even after a second
// write that never got its restart.
func TestServiceStartedRestoresAfterAnInterruptedRun(t *testing.T) {
	never := false
	h, _ := refusingDockerHost(t, &never)
	writeDaemonJSON(t, h, map[string]any{"log-level": "loud"})
	writeDaemonJSON(t, h, map[string]any{"log-level": "loud", "mtu": 1400}) // a second run, its restart lost too
	h.Run(context.Background(), tasks.Cmd{Args: []string{"service", "docker", "stop"}})
	s := &tasks.Service{Name: "docker", State: "started", ReadyTimeout: 20, Restore: []string{"/etc/docker/daemon.json"}}
	err := s.Apply(context.Background(), h, plan(t, s, h))
	var re *tasks.RestoredError
	if !errors.As(err, &re) || !re.Running {
		t.Fatalf("apply err = %v", err)
	}
	if f, _ := h.File("/etc/docker/daemon.json"); string(f.Content) != goodDaemonJSON {
		t.Errorf("daemon.json: %q, want the last good one", f.Content)
	}
	if dockerDown(h) {
		t.Error("docker does not answer")
	}
	if got := plan(t, s, h); len(got) != 0 {
		t.Errorf("plan after: %+v", got)
	}
}

// docker comes up with the new file: the previous content is forgotten
// (the new one is the one known to work) and the task succeeds.
func TestServiceRestartDropsTheBackupWhenDockerComesUp(t *testing.T) {
	never := false
	h, _ := refusingDockerHost(t, &never)
	writeDaemonJSON(t, h, map[string]any{"log-level": "warn"})
	if _, ok := h.File(backupRecord); !ok {
		t.Fatal("no backup record")
	}
	s := restartWithRestore()
	apply(t, s, h, plan(t, s, h))
	if _, ok := h.File(backupRecord); ok {
		t.Error("backup record kept after docker came up")
	}
	if f, _ := h.File("/etc/docker/daemon.json"); !strings.Contains(string(f.Content), `"warn"`) {
		t.Errorf("daemon.json: %q", f.Content)
	}
}

func TestServiceValidateRestore(t *testing.T) {
	for _, tc := range []struct {
		s    tasks.Service
		want string
	}{
		{tasks.Service{Name: "docker", State: "restarted", Restore: []string{"daemon.json"}}, "absolute path"},
		{tasks.Service{Name: "docker", State: "stopped", Restore: []string{"/etc/docker/daemon.json"}}, "set state: started or restarted"},
		{tasks.Service{Name: "docker", State: "started", Restore: []string{"/etc/docker/daemon.json"}}, ""},
	} {
		err := tc.s.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
}
