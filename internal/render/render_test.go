package render_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dindops/dindops/internal/render"
	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/tasks"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// sample is a result with every kind of line the renderer draws.
func sample(mode runner.Mode) *runner.Result {
	changed := &runner.TaskResult{Name: "docker uses the overlay2 storage driver", Kind: "docker_daemon_config", Status: runner.Changed,
		Changes: []tasks.Change{{Action: tasks.Update, Resource: "file", Target: "/etc/docker/daemon.json", Summary: "set storage-driver",
			Diff:     tasks.UnifiedDiff("/etc/docker/daemon.json", []byte("{\n  \"ipv6\": \"true\"\n}\n"), []byte("{\n  \"ipv6\": \"true\",\n  \"storage-driver\": \"overlay2\"\n}\n")),
			Warnings: []string{`"ipv6" is the string "true", not a boolean`}}}}
	container := &runner.TaskResult{Name: "dind daemon", Kind: "docker_container", Status: runner.Changed,
		Changes: []tasks.Change{{Action: tasks.Update, Resource: "container", Target: "gitlab-dind", Summary: "recreate: env, restart_policy changed",
			Fields: []tasks.Field{
				{Name: "env", Old: "A=1\nDOCKER_TLS_CERTDIR=", New: "A=2\nDOCKER_TLS_CERTDIR="},
				{Name: "restart_policy", Old: "no", New: "always"},
				{Name: "token", Old: "glrt-old", New: "glrt-new", Sensitive: true},
			}}}}
	handler := &runner.TaskResult{Name: "restart docker", Kind: "service", Handler: true, Status: runner.Changed,
		Changes: []tasks.Change{{Action: tasks.Restart, Resource: "service", Target: "docker", Summary: "restart"}}}
	return &runner.Result{
		Mode: mode, Playbook: "site.yml",
		Plays: []*runner.PlayResult{{Name: "build servers", Hosts: []*runner.HostResult{
			{Host: "build-1", Address: "10.0.0.11:22", Status: runner.Changed, Tasks: []*runner.TaskResult{
				{Name: "overlay module", Kind: "kernel_module", Status: runner.OK},
				changed, container,
				{Name: "cleanup", Kind: "command", Status: runner.Skipped, Reason: "creates: /var/done exists"},
				handler,
			}},
			{Host: "build-2", Address: "[2001:db8::12]:22", Status: runner.Failed, Error: `task "probe": exit 1`, Tasks: []*runner.TaskResult{
				{Name: "probe", Kind: "command", Status: runner.Failed, Error: "docker info: exit status 1: \x1b[31mboom\xff\nsecond line"},
			}},
			{Host: "build-3", Address: "10.0.0.13:22", Status: runner.Unreachable, Error: "build-3 unreachable: connect: no route to host"},
		}}},
		Recap: []*runner.HostRecap{
			{Host: "build-1", OK: 1, Changed: 3, Skipped: 1, Duration: 1500 * time.Millisecond},
			{Host: "build-2", Failed: 1, Duration: 200 * time.Millisecond},
			{Host: "build-3", Unreachable: 1},
		},
		Summary: runner.Summary{Update: 2, Restart: 1, Hosts: 1, Failed: 2},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "..", "fixtures", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (rerun with -update if the change is intended):\n%s", path, got)
	}
}

func renderHuman(r *runner.Result, color bool) []byte {
	var b bytes.Buffer
	h := render.Human{W: &b, Color: color}
	h.Header(r.Mode, r.Playbook, len(r.Recap))
	for _, p := range r.Plays {
		h.Play(r.Mode, p)
	}
	h.Recap(r)
	return b.Bytes()
}

func TestHumanGolden(t *testing.T) {
	golden(t, "plan.txt", renderHuman(sample(runner.PlanMode), false))
	golden(t, "apply.txt", renderHuman(sample(runner.ApplyMode), false))
}

func TestHumanNeverShowsSecretsOrControlBytes(t *testing.T) {
	for _, color := range []bool{false, true} {
		out := string(renderHuman(sample(runner.PlanMode), color))
		if strings.Contains(out, "glrt-") {
			t.Errorf("a token is shown:\n%s", out)
		}
		if !strings.Contains(out, "(sensitive value)") {
			t.Error("the sensitive field is not marked")
		}
		plain := strings.NewReplacer("\x1b[0m", "", "\x1b[1m", "", "\x1b[31m", "", "\x1b[32m", "", "\x1b[33m", "", "\x1b[36m", "", "\x1b[2m", "").Replace(out)
		if strings.ContainsAny(plain, "\x1b\xff") {
			t.Errorf("host output reached the terminal raw:\n%q", plain)
		}
	}
}

func TestJSONIsValidAndMasked(t *testing.T) {
	var b bytes.Buffer
	if err := render.JSON(&b, sample(runner.PlanMode)); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b.Bytes()) {
		t.Fatalf("invalid JSON:\n%s", b.String())
	}
	if strings.Contains(b.String(), "glrt-") {
		t.Errorf("a token is in the JSON:\n%s", b.String())
	}
	var back struct {
		Plays []struct {
			Hosts []struct {
				Tasks []struct {
					Changes []struct {
						Action string `json:"action"`
					} `json:"changes"`
				} `json:"tasks"`
			} `json:"hosts"`
		} `json:"plays"`
		Summary runner.Summary `json:"summary"`
	}
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if a := back.Plays[0].Hosts[0].Tasks[1].Changes[0].Action; a != "update" {
		t.Errorf("action = %q, want the word", a)
	}
	if back.Summary.Restart != 1 {
		t.Errorf("summary = %+v", back.Summary)
	}
}

func TestSummaryLine(t *testing.T) {
	for _, c := range []struct {
		r    runner.Result
		want string
	}{
		{runner.Result{Mode: runner.PlanMode, Recap: make([]*runner.HostRecap, 3), Summary: runner.Summary{Create: 5, Update: 2, Restart: 1, Hosts: 3}}, "Plan: 5 to create, 2 to update, 1 to restart on 3 hosts."},
		{runner.Result{Mode: runner.PlanMode, Recap: make([]*runner.HostRecap, 3)}, "No changes: 3 hosts are up to date."},
		{runner.Result{Mode: runner.ApplyMode, Recap: make([]*runner.HostRecap, 1)}, "Apply complete: 0 changed; 1 host is up to date."},
		{runner.Result{Mode: runner.PlanMode, Recap: make([]*runner.HostRecap, 1), Summary: runner.Summary{Run: 1, Hosts: 1}}, "Plan: 0 to create, 0 to update, 0 to restart, 1 to run on 1 host."},
	} {
		if got := render.SummaryLine(&c.r); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}
