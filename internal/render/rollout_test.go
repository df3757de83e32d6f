package render_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dindops/dindops/internal/render"
	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/tasks"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// rollout is a stopped rollout: serial [1, 2] with max_fail_percentage 40
// over 5 hosts; batch 2 has one failure out of two.
func rollout() *runner.Result {
	pct := 40.0
	pending := &runner.PendingHandler{Play: "deploy", Handler: "restart docker", NotifiedBy: "docker config", Since: t0.Add(-time.Hour)}
	return &runner.Result{
		Mode: runner.ApplyMode, Playbook: "site.yml",
		Plays: []*runner.PlayResult{
			{Name: "deploy", Serial: "[1, 2]", MaxFailPercentage: &pct,
				Batches: []*runner.BatchResult{
					{Number: 1, Hosts: []string{"b1"}, Ran: true},
					{Number: 2, Hosts: []string{"b2", "b3"}, Ran: true, Failed: 1},
					{Number: 3, Hosts: []string{"b4", "b5"}},
				},
				Hosts: []*runner.HostResult{
					{Host: "b1", Address: "10.0.0.1:22", Status: runner.Changed, Batch: 1, Tasks: []*runner.TaskResult{
						{Name: "docker config", Status: runner.OK},
						{Name: "restart docker", Handler: true, Status: runner.Changed, Pending: pending,
							Changes: []tasks.Change{{Action: tasks.Restart, Resource: "service", Target: "docker", Summary: "restart"}}},
					}},
					{Host: "b2", Address: "10.0.0.2:22", Status: runner.OK, Batch: 2, Tasks: []*runner.TaskResult{
						{Name: "docker config", Status: runner.OK, Warnings: []string{"the notified handlers could not be recorded"}},
					}},
					{Host: "b3", Address: "10.0.0.3:22", Status: runner.Unreachable, Batch: 2, StateUnknown: true,
						Error: `task "docker config": b3: connection lost while running install /etc/docker/daemon.json: no answer to keepalives for 3s (3 × 1s)`,
						Tasks: []*runner.TaskResult{{Name: "docker config", Status: runner.Failed, Error: "b3: connection lost while running install /etc/docker/daemon.json: no answer to keepalives for 3s (3 × 1s)"}}},
				},
				NotRun: []string{"b4", "b5"}},
			{Name: "verify", Note: "the rollout stopped before this play", NotRun: []string{"b1", "b2", "b4", "b5"}},
		},
		Recap: []*runner.HostRecap{
			{Host: "b1", OK: 1, Changed: 1, Duration: 2 * time.Second},
			{Host: "b2", OK: 1, Duration: time.Second},
			{Host: "b3", Unreachable: 1, StateUnknown: true, Duration: 3 * time.Second},
			{Host: "b4", NotRun: true},
			{Host: "b5", NotRun: true},
		},
		Summary: runner.Summary{Restart: 1, Hosts: 1, Failed: 1, NotRun: 2},
		Stopped: &runner.Stop{Play: "deploy", Batch: 2, Batches: 3, Failed: 1, Size: 2,
			Reason: "1 of 2 hosts of the batch failed (50%), more than max_fail_percentage 40%", NotRun: []string{"b1", "b2", "b4", "b5"}},
	}
}

func TestRolloutGolden(t *testing.T) {
	golden(t, "rollout.txt", renderHuman(rollout(), false))
	// The plan of the same play lists the batches apply would run.
	r := rollout()
	r.Mode, r.Stopped = runner.PlanMode, nil
	p := r.Plays[0]
	p.NotRun = nil
	for _, b := range p.Batches {
		b.Ran, b.Failed = false, 0
	}
	var b bytes.Buffer
	render.Human{W: &b}.PlayStart(runner.PlanMode, p)
	want := "\nPLAY deploy\n  rollout: serial [1, 2]: 3 batches, max_fail_percentage 40%\n    apply batch 1/3: b1\n    apply batch 2/3: b2, b3\n    apply batch 3/3: b4, b5\n"
	if b.String() != want {
		t.Errorf("plan heading:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestSummaryLineOfAStoppedRollout(t *testing.T) {
	got := render.SummaryLine(rollout())
	want := "Apply complete: 0 created, 0 updated, 1 restarted on 1 host. 1 host failed: b3. Rollout stopped early: not run on 4 hosts."
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// runEvents is what a run of two hosts emits, in order.
func runEvents() []runner.Event {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	return []runner.Event{
		{Type: runner.EventRunStart, Time: at(0), Mode: runner.ApplyMode, Playbook: "site.yml", Hosts: []string{"b1", "b2"}},
		{Type: runner.EventPlayStart, Time: at(0), Play: "deploy", Hosts: []string{"b1", "b2"}, PlayResult: &runner.PlayResult{Name: "deploy"}},
		{Type: runner.EventBatchStart, Time: at(0), Play: "deploy", Batch: 1, Batches: 2, Hosts: []string{"b1", "b2"}},
		{Type: runner.EventHostStart, Time: at(0), Play: "deploy", Host: "b1"},
		{Type: runner.EventHostStart, Time: at(1), Play: "deploy", Host: "b2"},
		{Type: runner.EventTaskStart, Time: at(1), Play: "deploy", Host: "b1", Task: "docker config", Step: 1, Steps: 2},
		{Type: runner.EventTaskStart, Time: at(2), Play: "deploy", Host: "b2", Task: "probe \x1b[31m\xff", Step: 2, Steps: 2},
		{Type: runner.EventHostEnd, Time: at(3), Play: "deploy", Host: "b2", Status: runner.Failed, Error: "task \"probe\": exit status 1: bad\xfe\nmore", Duration: 2 * time.Second},
	}
}

func TestLinesProgress(t *testing.T) {
	var b bytes.Buffer
	l := &render.Lines{W: &b}
	for _, e := range runEvents() {
		l.Event(e)
	}
	want := `12:00:00 PLAY deploy: 2 hosts
12:00:00 batch 1/2: b1, b2
12:00:01 b1 [1/2] docker config
12:00:02 b2 [2/2] probe \x1b[31m\xff
12:00:03 b2 failed in 2s: task "probe": exit status 1: bad\xfe …
`
	if b.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestLiveProgress(t *testing.T) {
	var b bytes.Buffer
	now := t0.Add(10 * time.Second)
	l := &render.Live{W: &b, Now: func() time.Time { return now }, Size: func() (int, int) { return 60, 24 }}
	for _, e := range runEvents() {
		l.Event(e)
	}
	out := b.String()
	i := strings.LastIndex(out, "\x1b[J")
	// The last frame: erase the 3 lines drawn before, then the heading and
	// a line per host, each cut to the terminal's width.
	want := `⠋ PLAY deploy · batch 1/2 · 1 running · 0 done · 1 failed …
  b1  running         10s  [1/2] docker config (0:09)
  b2  failed           2s  task "probe": exit status 1: ba…
`
	if !strings.HasSuffix(out[:i], "\x1b[3A\r") || out[i+3:] != want {
		t.Errorf("last frame:\n%q\nwant:\n%q", out[max(0, i-6):], want)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if i := strings.LastIndex(line, "\x1b[J"); i >= 0 {
			line = line[i+3:]
		}
		if n := len([]rune(line)); n > 59 {
			t.Errorf("a line is wider than the terminal (%d): %q", n, line)
		}
	}
	// Results written above the view: the view is erased first and drawn
	// again after.
	b.Reset()
	l.Above(func() { b.WriteString("RESULT\n") })
	if !strings.HasPrefix(b.String(), "\x1b[3A\r\x1b[JRESULT\n⠋ PLAY deploy") {
		t.Errorf("above: %q", b.String())
	}
	b.Reset()
	l.Close()
	if b.String() != "\x1b[3A\r\x1b[J" {
		t.Errorf("close left %q", b.String())
	}
	l.Event(runEvents()[3])
	if b.String() != "\x1b[3A\r\x1b[J" {
		t.Errorf("a closed view drew again: %q", b.String())
	}
}

func TestLiveProgressFitsTheScreen(t *testing.T) {
	var b bytes.Buffer
	l := &render.Live{W: &b, Now: func() time.Time { return t0 }, Size: func() (int, int) { return 80, 6 }}
	var hosts []string
	for _, h := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		hosts = append(hosts, h)
	}
	l.Event(runner.Event{Type: runner.EventPlayStart, Time: t0, Play: "p"})
	l.Event(runner.Event{Type: runner.EventBatchStart, Time: t0, Batch: 1, Batches: 1, Hosts: hosts})
	l.Event(runner.Event{Type: runner.EventHostStart, Time: t0, Host: "g"})
	out := b.String()
	frame := out[strings.LastIndex(out, "\x1b[J")+3:]
	lines := strings.Split(strings.TrimSuffix(frame, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines on a 6-line terminal:\n%s", len(lines), frame)
	}
	// The running host is shown although it comes after the hidden ones.
	if lines[1] != "  a  waiting" || !strings.HasPrefix(lines[3], "  g  running") || lines[4] != "  … 5 more hosts (0 done, 7 waiting)" {
		t.Errorf("frame:\n%s", frame)
	}
}

func TestStreamIsJSONLines(t *testing.T) {
	var b bytes.Buffer
	s := render.NewStream(&b)
	for _, e := range runEvents() {
		s.Event(e)
	}
	r := sample(runner.ApplyMode)
	if err := s.Result(r); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&b)
	var last map[string]any
	n := 0
	for sc.Scan() {
		n++
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("line %d is not JSON: %s", n, sc.Text())
		}
		last = nil
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatal(err)
		}
		if last["event"] == nil || (last["event"] != "result" && last["time"] == nil) {
			t.Errorf("line %d has no event or time: %s", n, sc.Text())
		}
	}
	if n != len(runEvents())+1 || last["event"] != "result" || last["plays"] == nil || last["recap"] == nil {
		t.Errorf("%d lines; last = %v", n, last)
	}
	if strings.Contains(b.String(), "glrt-") {
		t.Error("a secret is in the stream")
	}
}

// Logs written while the live view is on screen appear above it.
func TestLiveWriterWritesAboveTheView(t *testing.T) {
	var b bytes.Buffer
	l := &render.Live{W: &b, Now: func() time.Time { return t0 }, Size: func() (int, int) { return 80, 24 }}
	l.Event(runner.Event{Type: runner.EventPlayStart, Time: t0, Play: "p"})
	l.Event(runner.Event{Type: runner.EventBatchStart, Time: t0, Batch: 1, Batches: 1, Hosts: []string{"a"}})
	b.Reset()
	if _, err := l.Writer().Write([]byte("12:00:00 INFO log line\n")); err != nil {
		t.Fatal(err)
	}
	want := "\x1b[2A\r\x1b[J12:00:00 INFO log line\n⠋ PLAY p · 0 running · 0 done · 0 failed · 1 waiting · 0:00\n  a  waiting\n"
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
}
