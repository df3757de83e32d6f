package runner_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/inventory"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// fleet is n in-memory build servers h1..hn; those in bad fail the "probe"
// command, and every host counts how often "touch" ran.
func fleet(t *testing.T, n int, bad ...string) ([]string, *fakeConnector) {
	t.Helper()
	fc := &fakeConnector{hosts: map[string]*tasktest.Host{}, connect: map[string]int{}}
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("h%d", i)
		names = append(names, name)
		h := tasktest.New()
		h.MkdirAll("/var")
		failing := false
		for _, b := range bad {
			failing = failing || b == name
		}
		h.Handle("probe", func(*tasktest.Host, []string, []byte) tasks.Output {
			if failing {
				return tasks.Output{ExitCode: 1, Stderr: []byte("probe: broken\n")}
			}
			return tasks.Output{}
		})
		h.Handle("touch", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
			h.SetFile(args[1], "", 0o644, "root", "root")
			return tasks.Output{}
		})
		fc.hosts[name] = h
	}
	return names, fc
}

func rolloutPlaybook(serial, maxFail string) string {
	play := "- name: roll\n  hosts: all\n"
	if serial != "" {
		play += "  serial: " + serial + "\n"
	}
	if maxFail != "" {
		play += "  max_fail_percentage: " + maxFail + "\n"
	}
	return play + `  tasks:
    - name: probe
      command: {argv: [probe], read_only: true}
    - name: mark
      command: {argv: [touch, /var/rolled], creates: /var/rolled}
- name: after
  hosts: all
  tasks:
    - name: mark after
      command: {argv: [touch, /var/after], creates: /var/after}
`
}

// events records a run's events.
type events struct {
	mu  sync.Mutex
	all []runner.Event
}

func (e *events) add(ev runner.Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

// trace is the batches and host starts of the first play, in order:
// "b1[h1] h1 | b2[h2 h3] h2 h3 |" (hosts within a batch sorted, as they
// start in any order).
func (e *events) trace(play string) string {
	var b strings.Builder
	var batch []string
	for _, ev := range e.all {
		if ev.Play != play {
			continue
		}
		switch ev.Type {
		case runner.EventBatchStart:
			fmt.Fprintf(&b, "b%d%v ", ev.Batch, ev.Hosts)
			batch = nil
		case runner.EventHostStart:
			batch = append(batch, ev.Host)
		case runner.EventBatchEnd:
			fmt.Fprintf(&b, "%v| ", batch)
		}
	}
	return strings.TrimSpace(b.String())
}

func TestSerialRunsBatchesOneAfterAnother(t *testing.T) {
	names, fc := fleet(t, 5)
	var ev events
	plays := compilePlays(t, rolloutPlaybook("[1, 50%]", ""), testInventory(t, names...))
	res, err := runner.Run(context.Background(), "t.yml", plays, runner.Options{Mode: runner.ApplyMode, Forks: 1, Connector: fc, OnEvent: ev.add, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	// [1, 50%] of 5 hosts: 1, then 2 (50% of 5, rounded down), repeated.
	want := "b1[h1] [h1]| b2[h2 h3] [h2 h3]| b3[h4 h5] [h4 h5]|"
	if got := ev.trace("roll"); got != want {
		t.Errorf("batches ran as\n  %s\nwant\n  %s", got, want)
	}
	pr := res.Plays[0]
	if pr.Serial != "[1, 50%]" || len(pr.Batches) != 3 || !pr.Batches[2].Ran {
		t.Errorf("play = serial %q batches %+v", pr.Serial, pr.Batches)
	}
	for i, hr := range pr.Hosts {
		if hr.Host != names[i] {
			t.Fatalf("results not in inventory order: %v", pr.Hosts)
		}
	}
	if pr.Hosts[3].Batch != 3 || res.Stopped != nil || res.HostFailed() {
		t.Errorf("h4 batch %d, stopped %+v, failed %v", pr.Hosts[3].Batch, res.Stopped, res.HostFailed())
	}
}

// Within a batch hosts still run in a sliding window of --forks.
func TestSerialBatchUsesForksWindow(t *testing.T) {
	names, fc := fleet(t, 6)
	var mu sync.Mutex
	running, maxRunning := 0, 0
	release := make(chan struct{})
	var once sync.Once
	for _, n := range names {
		fc.hosts[n].Handle("probe", func(*tasktest.Host, []string, []byte) tasks.Output {
			mu.Lock()
			running++
			maxRunning = max(maxRunning, running)
			if running == 2 {
				once.Do(func() { close(release) }) // both slots are busy at once
			}
			mu.Unlock()
			<-release
			mu.Lock()
			running--
			mu.Unlock()
			return tasks.Output{}
		})
	}
	plays := compilePlays(t, rolloutPlaybook("3", ""), testInventory(t, names...))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := runner.Run(context.Background(), "t.yml", plays, runner.Options{Mode: runner.ApplyMode, Forks: 2, Connector: fc, Now: fixedClock()}); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("hosts of a batch did not run two at a time")
	}
	if maxRunning != 2 {
		t.Errorf("%d hosts ran at once with --forks 2", maxRunning)
	}
}

func TestMaxFailPercentageStopsTheRollout(t *testing.T) {
	// Batches of 2: [h1 h2] [h3 h4] [h5 h6]. h3 fails: 1 of 2 is 50%.
	for _, c := range []struct {
		maxFail string
		stops   bool
	}{
		{"49", true},  // 50% > 49%
		{"50", false}, // not more than 50%: Ansible's rule is "greater than"
		{"0", true},   // any failure
	} {
		t.Run("max_fail_percentage "+c.maxFail, func(t *testing.T) {
			names, fc := fleet(t, 6, "h3")
			plays := compilePlays(t, rolloutPlaybook("2", c.maxFail), testInventory(t, names...))
			res, err := runner.Run(context.Background(), "t.yml", plays, runner.Options{Mode: runner.ApplyMode, Connector: fc, Now: fixedClock()})
			if err != nil {
				t.Fatal(err)
			}
			if !c.stops {
				if res.Stopped != nil {
					t.Fatalf("stopped: %+v", res.Stopped)
				}
				if len(res.Plays[0].Hosts) != 6 || res.Summary.NotRun != 0 {
					t.Errorf("not every host ran: %+v", res.Summary)
				}
				return
			}
			st := res.Stopped
			if st == nil {
				t.Fatal("the rollout did not stop")
			}
			if st.Play != "roll" || st.Batch != 2 || st.Batches != 3 || st.Failed != 1 || st.Size != 2 || st.Interrupted {
				t.Errorf("stop = %+v", st)
			}
			wantReason := "1 of 2 hosts of the batch failed (50%), more than max_fail_percentage " + c.maxFail + "%"
			if st.Reason != wantReason {
				t.Errorf("reason %q, want %q", st.Reason, wantReason)
			}
			// h5 and h6 are untouched: never even connected. Every host
			// is left out of the second play.
			for _, h := range []string{"h5", "h6"} {
				if fc.connect[h] != 0 || len(fc.hosts[h].Commands) != 0 {
					t.Errorf("%s was touched: %d connections, commands %v", h, fc.connect[h], fc.hosts[h].Commands)
				}
			}
			if got := fmt.Sprint(res.Plays[0].NotRun); got != "[h5 h6]" {
				t.Errorf("play 1 not run = %s", got)
			}
			if got := fmt.Sprint(res.Plays[1].NotRun); got != "[h1 h2 h4 h5 h6]" {
				t.Errorf("play 2 not run = %s (h3 failed, so it is out anyway)", got)
			}
			if len(res.Plays[1].Hosts) != 0 {
				t.Errorf("play 2 ran on %v", res.Plays[1].Hosts)
			}
			if got := fmt.Sprint(st.NotRun); got != "[h1 h2 h4 h5 h6]" {
				t.Errorf("stop.NotRun = %s", got)
			}
			if res.Summary.NotRun != 2 || res.Summary.Failed != 1 {
				t.Errorf("summary %+v; want h5, h6 not run and h3 failed", res.Summary)
			}
			if !res.Recap[4].NotRun || res.Recap[0].NotRun {
				t.Errorf("recap not_run: h1 %v, h5 %v", res.Recap[0].NotRun, res.Recap[4].NotRun)
			}
		})
	}
}

func TestWholeBatchFailedStopsOnlyWithSerial(t *testing.T) {
	// A canary: serial [1, 100%]. The canary fails: nothing else runs.
	names, fc := fleet(t, 4, "h1")
	plays := compilePlays(t, rolloutPlaybook("[1, 100%]", ""), testInventory(t, names...))
	res, err := runner.Run(context.Background(), "t.yml", plays, runner.Options{Mode: runner.ApplyMode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped == nil || res.Stopped.Reason != "every host of the batch failed (1 of 1)" || fmt.Sprint(res.Stopped.NotRun) != "[h2 h3 h4]" {
		t.Fatalf("stopped = %+v", res.Stopped)
	}
	for _, h := range []string{"h2", "h3", "h4"} {
		if fc.connect[h] != 0 {
			t.Errorf("%s was contacted after the canary failed", h)
		}
	}

	// Without serial, one host's failure never stops the others, even when
	// every host of a play fails (the next play's hosts still run).
	names, fc = fleet(t, 2, "h1", "h2")
	src := rolloutPlaybook("", "") + "- name: other\n  hosts: h3\n  tasks:\n    - name: t\n      command: {argv: [touch, /var/x], creates: /var/x}\n"
	_, fc3 := fleet(t, 3)
	fc.hosts["h3"] = fc3.hosts["h3"]
	res, err = runner.Run(context.Background(), "t.yml", compilePlays(t, src, testInventory(t, append(names, "h3")...)), runner.Options{Mode: runner.ApplyMode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != nil || !fc.hosts["h3"].Ran("touch") {
		t.Errorf("stopped %+v; h3 ran: %v", res.Stopped, fc.hosts["h3"].Ran("touch"))
	}
}

func TestStopAtTheVeryEndIsNoStop(t *testing.T) {
	// The last batch of the last play fails entirely: nothing is left out.
	names, fc := fleet(t, 2, "h2")
	src := "- name: roll\n  hosts: all\n  serial: 1\n  tasks:\n    - name: probe\n      command: {argv: [probe], read_only: true}\n"
	res, err := runner.Run(context.Background(), "t.yml", compilePlays(t, src, testInventory(t, names...)), runner.Options{Mode: runner.ApplyMode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != nil || res.Summary.Failed != 1 {
		t.Errorf("stopped %+v, summary %+v", res.Stopped, res.Summary)
	}
}

func TestPlanRunsEveryHostAndNeverStops(t *testing.T) {
	names, fc := fleet(t, 4, "h1")
	var ev events
	plays := compilePlays(t, rolloutPlaybook("[1, 100%]", "0"), testInventory(t, names...))
	res, err := runner.Run(context.Background(), "t.yml", plays, runner.Options{Mode: runner.PlanMode, Connector: fc, OnEvent: ev.add, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != nil || len(res.Plays[0].Hosts) != 4 {
		t.Fatalf("plan stopped (%+v) or skipped hosts: %d", res.Stopped, len(res.Plays[0].Hosts))
	}
	if got := ev.trace("roll"); got != "b1[h1 h2 h3 h4] [h1 h2 h3 h4]|" && !strings.HasPrefix(got, "b1[h1 h2 h3 h4] ") {
		t.Errorf("plan ran as %s; want one group", got)
	}
	// The batches apply would use are shown.
	if b := res.Plays[0].Batches; len(b) != 2 || fmt.Sprint(b[1].Hosts) != "[h2 h3 h4]" || b[0].Ran {
		t.Errorf("batches = %+v", b)
	}
}

func TestInterruptLeavesWaitingHostsNotRun(t *testing.T) {
	names, fc := fleet(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc.hosts["h1"].Handle("probe", func(*tasktest.Host, []string, []byte) tasks.Output {
		cancel() // Ctrl-C while h1 works; --forks 1 keeps the others waiting
		return tasks.Output{}
	})
	plays := compilePlays(t, rolloutPlaybook("", ""), testInventory(t, names...))
	res, err := runner.Run(ctx, "t.yml", plays, runner.Options{Mode: runner.ApplyMode, Forks: 1, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	// h1 finished the step in progress (probe), started no other, and its
	// second play never ran: it is listed as not run too.
	st := res.Stopped
	if st == nil || !st.Interrupted || fmt.Sprint(st.NotRun) != "[h1 h2 h3 h4]" {
		t.Fatalf("stopped = %+v", st)
	}
	h1 := res.Plays[0].Hosts[0]
	if !h1.Interrupted || h1.Status == runner.Failed || len(h1.Tasks) != 1 || h1.Tasks[0].Status != runner.OK || fmt.Sprint(h1.NotStarted) != "[mark]" {
		t.Fatalf("h1 = %s interrupted=%v tasks=%d not started %q", h1.Status, h1.Interrupted, len(h1.Tasks), h1.NotStarted)
	}
	if !res.Recap[0].Interrupted || res.Recap[0].NotRun {
		t.Errorf("recap h1 = %+v", res.Recap[0])
	}
	for _, h := range []string{"h2", "h3", "h4"} {
		if fc.connect[h] != 0 {
			t.Errorf("%s started after the interrupt", h)
		}
	}
	if res.Summary.NotRun != 3 {
		t.Errorf("summary = %+v", res.Summary)
	}
}

// slowHost blocks "wait" until the context ends, as a command waiting for
// input would.
type slowHost struct{ *tasktest.Host }

func (s slowHost) Run(ctx context.Context, c tasks.Cmd) (tasks.Output, error) {
	if c.Args[0] == "wait" {
		<-ctx.Done()
		return tasks.Output{}, fmt.Errorf("wait: %w", ctx.Err())
	}
	return s.Host.Run(ctx, c)
}

// connectorFunc connects to in-memory hosts by name.
type connectorFunc func(name string) runner.Conn

func (f connectorFunc) Connect(_ context.Context, h *inventory.Host) (runner.Conn, error) {
	return f(h.Name), nil
}

type slowConn struct{ h slowHost }

func (c slowConn) Host(bool) tasks.Host { return c.h }
func (c slowConn) Close() error         { return nil }

func TestTaskTimeout(t *testing.T) {
	names, fc := fleet(t, 2)
	src := `- name: p
  hosts: all
  tasks:
    - name: waits for input
      timeout: 50ms
      command: {argv: [wait]}
    - name: next
      command: {argv: [touch, /var/x], creates: /var/x}
`
	conn := connectorFunc(func(name string) runner.Conn { return slowConn{slowHost{fc.hosts[name]}} })
	res, err := runner.Run(context.Background(), "t.yml", compilePlays(t, src, testInventory(t, names...)), runner.Options{Mode: runner.ApplyMode, Connector: conn, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	for _, hr := range res.Plays[0].Hosts {
		if hr.Status != runner.Failed || len(hr.Tasks) != 1 {
			t.Fatalf("%s: %+v", hr.Host, hr)
		}
		if e := hr.Tasks[0].Error; e != "timed out after 0.05s (possibly waiting for input)" {
			t.Errorf("%s: error %q", hr.Host, e)
		}
	}
	if fc.hosts["h1"].Ran("touch") {
		t.Error("the host went on after its task timed out")
	}
	var te *runner.TimeoutError
	if !errors.As(&runner.TimeoutError{After: time.Second}, &te) || te.Error() != "timed out after 1s (possibly waiting for input)" {
		t.Errorf("TimeoutError: %v", te)
	}
}

// TestGracefulStopFinishesTheStepInProgress: the first interrupt (Stop)
// lets the step in progress finish, starts no other step, leaves the
// notified handler recorded on the host, and the result says exactly what
// changed.
func TestGracefulStopFinishesTheStepInProgress(t *testing.T) {
	var restarts atomic.Int32
	h := newBuildServer(&restarts)
	stop := make(chan struct{})
	var once sync.Once
	h.Handle("touch", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		once.Do(func() { close(stop) }) // Ctrl-C while the first touch runs
		h.SetFile(args[1], "", 0o644, "root", "root")
		return tasks.Output{}
	})
	src := `- name: p
  hosts: all
  tasks:
    - name: one
      command: {argv: [touch, /var/one], creates: /var/one}
      notify: restart docker
    - name: two
      command: {argv: [touch, /var/two], creates: /var/two}
  handlers:
    - name: restart docker
      service: {name: docker, state: restarted}
`
	fc := &fakeConnector{hosts: map[string]*tasktest.Host{"b1": h}, connect: map[string]int{}}
	res, err := runner.Run(context.Background(), "t.yml", compilePlays(t, src, testInventory(t, "b1")), runner.Options{Mode: runner.ApplyMode, Connector: fc, Now: fixedClock(), Stop: stop})
	if err != nil {
		t.Fatal(err)
	}
	hr := res.Plays[0].Hosts[0]
	if !hr.Interrupted || len(hr.Tasks) != 1 || hr.Tasks[0].Status != runner.Changed {
		t.Fatalf("host = %s interrupted=%v tasks=%d", hr.Status, hr.Interrupted, len(hr.Tasks))
	}
	_, one := h.File("/var/one")
	_, two := h.File("/var/two")
	if !one || two || restarts.Load() != 0 {
		t.Fatalf("one=%v two=%v restarts=%d: the step in progress finishes, no other starts", one, two, restarts.Load())
	}
	if got := fmt.Sprint(hr.NotStarted); !strings.Contains(got, "two") || !strings.Contains(got, "handler restart docker (recorded on the host") {
		t.Errorf("not started = %s", got)
	}
	if f, _ := h.File(runner.DefaultPendingPath); !strings.Contains(string(f.Content), "restart docker") {
		t.Error("the notified handler is not recorded on the host: the next apply would not run it")
	}
	if st := res.Stopped; st == nil || !st.Interrupted || res.Summary.Run != 1 {
		t.Fatalf("stopped %+v, summary %+v", res.Stopped, res.Summary)
	}
}
