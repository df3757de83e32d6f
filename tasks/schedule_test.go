package tasks_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// scheduleHost fakes a host with or without systemd; its systemctl keeps
// the state of timers.
func scheduleHost(systemd bool) (*tasktest.Host, map[string]string) {
	h := tasktest.New()
	h.MkdirAll("/etc/cron.d")
	h.MkdirAll("/etc/systemd/system")
	if systemd {
		h.MkdirAll("/run/systemd/system")
	}
	h.Handle("test", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		if len(args) == 3 && args[1] == "-d" && h.IsDir(args[2]) {
			return tasks.Output{}
		}
		return tasks.Output{ExitCode: 1}
	})
	timers := map[string]string{} // name → "enabled active", "disabled inactive"
	h.Handle("systemctl", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		if !systemd {
			return tasks.Output{ExitCode: 1, Stderr: []byte("System has not been booted with systemd as init system (PID 1). Can't operate.\n")}
		}
		unit := args[len(args)-1]
		switch args[1] {
		case "is-enabled":
			if strings.HasPrefix(timers[unit], "enabled") {
				return tasks.Output{}
			}
			return tasks.Output{ExitCode: 1}
		case "is-active":
			if strings.HasSuffix(timers[unit], " active") {
				return tasks.Output{}
			}
			return tasks.Output{ExitCode: 3}
		case "enable":
			if _, ok := h.File("/etc/systemd/system/" + unit); !ok {
				return tasks.Output{ExitCode: 1, Stderr: []byte("Failed to enable unit: Unit file " + unit + " does not exist.\n")}
			}
			timers[unit] = "enabled active"
		case "disable":
			timers[unit] = "disabled inactive"
		}
		return tasks.Output{}
	})
	return h, timers
}

func TestScheduleCron(t *testing.T) {
	h, _ := scheduleHost(false)
	s := &tasks.Schedule{Name: "dindops-prune-gitlab-dind", Command: []string{"/usr/local/sbin/dindops-prune-gitlab-dind"}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	changes := tasktest.Converge(t, s, h)
	if len(changes) != 1 || changes[0].Target != "/etc/cron.d/dindops-prune-gitlab-dind" || changes[0].Action != tasks.Create {
		t.Fatalf("changes %+v", changes)
	}
	f, _ := h.File("/etc/cron.d/dindops-prune-gitlab-dind")
	if !strings.Contains(string(f.Content), "\n@daily root /usr/local/sbin/dindops-prune-gitlab-dind 2>&1 | logger -t dindops-prune-gitlab-dind\n") || f.Mode.Perm() != 0o644 || f.Owner != "root" {
		t.Errorf("cron file %o %s:\n%s", f.Mode, f.Owner, f.Content)
	}
	// A cron file edited by hand is drift, shown as a diff.
	h.SetFile("/etc/cron.d/dindops-prune-gitlab-dind", "@hourly root /bin/true\n", 0o644, "root", "root")
	again, err := s.Plan(t.Context(), h)
	if err != nil || len(again) != 1 || !strings.Contains(again[0].Diff, "+@daily root") {
		t.Fatalf("plan after an edit: %+v, %v", again, err)
	}
	// absent removes it.
	gone := &tasks.Schedule{Name: s.Name, Command: s.Command, State: "absent"}
	if err := gone.Validate(); err != nil {
		t.Fatal(err)
	}
	changes = tasktest.Converge(t, gone, h)
	if _, ok := h.File("/etc/cron.d/dindops-prune-gitlab-dind"); ok || changes[0].Action != tasks.Delete {
		t.Errorf("absent left the cron file: %+v", changes)
	}
}

func TestScheduleSystemdTimer(t *testing.T) {
	h, timers := scheduleHost(true)
	s := &tasks.Schedule{Name: "prune", Command: []string{"/usr/local/sbin/prune", "--quiet"}, Every: "weekly"}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	changes := tasktest.Converge(t, s, h)
	var got []string
	for _, c := range changes {
		got = append(got, c.Action.String()+" "+c.Target+": "+c.Summary)
	}
	want := "create /etc/systemd/system/prune.service: create, root:root, mode 0644 (rw-r--r--)\ncreate /etc/systemd/system/prune.timer: create, root:root, mode 0644 (rw-r--r--)\nupdate prune.timer: enable and start"
	if strings.Join(got, "\n") != want {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	if timers["prune.timer"] != "enabled active" {
		t.Errorf("timer %q", timers["prune.timer"])
	}
	unit, _ := h.File("/etc/systemd/system/prune.service")
	timer, _ := h.File("/etc/systemd/system/prune.timer")
	if !strings.Contains(string(unit.Content), "ExecStart=/usr/local/sbin/prune --quiet\n") || !strings.Contains(string(timer.Content), "OnCalendar=weekly\n") {
		t.Errorf("units:\n%s\n%s", unit.Content, timer.Content)
	}
	if _, ok := h.File("/etc/cron.d/prune"); ok {
		t.Error("a systemd host got a cron file too")
	}
	// A timer stopped by hand is started again.
	timers["prune.timer"] = "enabled inactive"
	again, err := s.Plan(t.Context(), h)
	if err != nil || len(again) != 1 || again[0].Summary != "enable and start" {
		t.Fatalf("stopped timer: %+v, %v", again, err)
	}
	gone := &tasks.Schedule{Name: "prune", Command: s.Command, State: "absent"}
	if err := gone.Validate(); err != nil {
		t.Fatal(err)
	}
	changes = tasktest.Converge(t, gone, h)
	if changes[0].Summary != "stop and disable" || timers["prune.timer"] != "disabled inactive" {
		t.Errorf("absent: %+v, timer %q", changes, timers["prune.timer"])
	}
	if _, ok := h.File("/etc/systemd/system/prune.timer"); ok {
		t.Error("absent left the timer unit")
	}
}

func TestScheduleNoCronNoSystemd(t *testing.T) {
	h := tasktest.New()
	h.Handle("test", func(*tasktest.Host, []string, []byte) tasks.Output { return tasks.Output{ExitCode: 1} })
	s := &tasks.Schedule{Name: "prune", Command: []string{"/usr/local/sbin/prune"}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Plan(t.Context(), h)
	if ws, ok := tasks.IsWarnings(err); !ok || !strings.Contains(ws[0], "install cron") {
		t.Errorf("plan: %v (want a warning, not a failed host)", err)
	}
}

func TestScheduleValidate(t *testing.T) {
	for name, s := range map[string]tasks.Schedule{
		"name":    {Name: "a.b", Command: []string{"/bin/true"}},
		"command": {Name: "a", Command: []string{"true"}},
		"every":   {Name: "a", Command: []string{"/bin/true"}, Every: "*/5 * * * *"},
		"state":   {Name: "a", Command: []string{"/bin/true"}, State: "stopped"},
	} {
		err := s.Validate()
		var fe *tasks.FieldError
		if err == nil || !errors.As(err, &fe) || fe.Field != name {
			t.Errorf("%s: %v", name, err)
		}
	}
	s := tasks.Schedule{Name: "a", Command: []string{"/bin/sh", "-c", "rm -rf /tmp/x; echo"}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "put the command in a script") {
		t.Errorf("shell words: %v", err)
	}
}
