package runner_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/inventory"
	"github.com/dindops/dindops/playbooks"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

const testPlaybook = `- name: configure
  hosts: all
  tasks:
    - name: daemon config
      file:
        path: /etc/docker/daemon.json
        content: "{\"storage-driver\": \"overlay2\"}\n"
      notify: restart docker
    - name: motd
      file:
        path: /etc/motd
        content: "{{ .inventory_hostname }}\n"
      notify: restart docker
  handlers:
    - name: restart docker
      service: {name: docker, state: restarted}
- name: second
  hosts: all
  tasks:
    - name: marker
      command:
        argv: [touch, /var/marker]
        creates: /var/marker
`

type unreachable struct{ msg string }

func (u *unreachable) Error() string     { return u.msg }
func (u *unreachable) Unreachable() bool { return true }

// fakeConnector hands out in-memory hosts by name.
type fakeConnector struct {
	hosts   map[string]*tasktest.Host
	fail    map[string]error
	mu      sync.Mutex
	connect map[string]int
}

type fakeConn struct{ h *tasktest.Host }

func (c fakeConn) Host(bool) tasks.Host { return c.h }
func (c fakeConn) Close() error         { return nil }

func (f *fakeConnector) Connect(_ context.Context, h *inventory.Host) (runner.Conn, error) {
	f.mu.Lock()
	f.connect[h.Name]++
	f.mu.Unlock()
	if err := f.fail[h.Name]; err != nil {
		return nil, err
	}
	return fakeConn{f.hosts[h.Name]}, nil
}

func newBuildServer(restarts *atomic.Int32) *tasktest.Host {
	h := tasktest.New()
	h.MkdirAll("/etc/docker")
	h.MkdirAll("/var")
	h.Handle("service", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		if args[2] == "restart" {
			restarts.Add(1)
		}
		return tasks.Output{}
	})
	h.Handle("touch", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		h.SetFile(args[1], "", 0o644, "root", "root")
		return tasks.Output{}
	})
	return h
}

func compilePlays(t *testing.T, src string, inv *inventory.Inventory) []runner.Play {
	t.Helper()
	pb, err := playbooks.Parse("test.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var plays []runner.Play
	for _, p := range pb.Plays {
		hosts, err := inv.Select(p.Hosts)
		if err != nil {
			t.Fatal(err)
		}
		rp := runner.Play{Play: p}
		for _, h := range hosts {
			hp, err := playbooks.Compile(p, h, playbooks.CompileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rp.Hosts = append(rp.Hosts, hp)
		}
		plays = append(plays, rp)
	}
	return plays
}

func testInventory(t *testing.T, names ...string) *inventory.Inventory {
	t.Helper()
	src := "all:\n  hosts:\n"
	for i, n := range names {
		src += fmt.Sprintf("    %s: {address: 10.0.0.%d}\n", n, i+1)
	}
	inv, err := inventory.Parse("hosts.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func fixedClock() func() time.Time {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	return func() time.Time { return t0 }
}

func TestApplyThenPlanIsEmpty(t *testing.T) {
	var restarts atomic.Int32
	inv := testInventory(t, "b1", "b2")
	fc := &fakeConnector{hosts: map[string]*tasktest.Host{"b1": newBuildServer(&restarts), "b2": newBuildServer(&restarts)}, connect: map[string]int{}}
	plays := compilePlays(t, testPlaybook, inv)
	ctx := context.Background()

	plan, err := runner.Run(ctx, "test.yml", plays, runner.Options{Mode: runner.PlanMode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Summary; got.Create != 4 || got.Restart != 2 || got.Run != 2 || got.Hosts != 2 {
		t.Fatalf("plan summary = %+v", got)
	}
	for name, h := range fc.hosts {
		if len(h.Writes) != 0 || h.Ran("touch") || restarts.Load() != 0 {
			t.Fatalf("plan changed %s: writes %v", name, h.Writes)
		}
	}

	applied, err := runner.Run(ctx, "test.yml", plays, runner.Options{Mode: runner.ApplyMode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if applied.Summary != plan.Summary {
		t.Errorf("apply summary %+v differs from plan %+v", applied.Summary, plan.Summary)
	}
	if restarts.Load() != 2 {
		t.Errorf("docker restarted %d times on 2 hosts; a handler notified twice must run once per host", restarts.Load())
	}
	last := applied.Plays[0].Hosts[0].Tasks
	if h := last[len(last)-1]; !h.Handler || h.Name != "restart docker" {
		t.Errorf("the handler did not run last: %+v", h)
	}

	again, err := runner.Run(ctx, "test.yml", plays, runner.Options{Mode: runner.PlanMode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if again.Summary.Total() != 0 {
		t.Fatalf("plan after apply: %+v", again.Summary)
	}
	for _, rc := range again.Recap {
		if rc.OK != 2 || rc.Skipped != 1 || rc.Changed != 0 {
			t.Errorf("recap %+v", rc)
		}
	}
}

// lostHost loses its connection in the middle of the run.
type lostHost struct{ *tasktest.Host }

func (l lostHost) ReadFile(ctx context.Context, p string) (tasks.RemoteFile, error) {
	return tasks.RemoteFile{}, &unreachable{"connection lost while reading " + p}
}

func TestConnectionLostCountsOnceAsUnreachable(t *testing.T) {
	var restarts atomic.Int32
	inv := testInventory(t, "b1")
	fc := &lostConnector{h: lostHost{newBuildServer(&restarts)}}
	res, err := runner.Run(context.Background(), "test.yml", compilePlays(t, testPlaybook, inv), runner.Options{Mode: runner.ApplyMode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	rc := res.Recap[0]
	if rc.Unreachable != 1 || rc.Failed != 0 || res.Summary.Failed != 1 {
		t.Fatalf("recap %+v, summary %+v: a lost connection is one unreachable host, not also a failed task", rc, res.Summary)
	}
	if res.Plays[1].Note == "" || len(res.Plays[1].Hosts) != 0 {
		t.Errorf("second play = %+v; want no hosts and a note saying why", res.Plays[1])
	}
}

type lostConnector struct{ h lostHost }

func (c *lostConnector) Connect(context.Context, *inventory.Host) (runner.Conn, error) {
	return lostConn{c.h}, nil
}

type lostConn struct{ h lostHost }

func (c lostConn) Host(bool) tasks.Host { return c.h }
func (c lostConn) Close() error         { return nil }

func TestFailuresStayOnTheirHost(t *testing.T) {
	var restarts atomic.Int32
	inv := testInventory(t, "b1", "b2", "b3")
	broken := newBuildServer(&restarts)
	broken.Handle("service", func(*tasktest.Host, []string, []byte) tasks.Output {
		return tasks.Output{ExitCode: 1, Stderr: []byte("docker: start failed")}
	})
	fc := &fakeConnector{
		hosts:   map[string]*tasktest.Host{"b1": newBuildServer(&restarts), "b3": broken},
		fail:    map[string]error{"b2": &unreachable{"dial tcp 10.0.0.2:22: connect: no route to host"}},
		connect: map[string]int{},
	}
	res, err := runner.Run(context.Background(), "test.yml", compilePlays(t, testPlaybook, inv), runner.Options{Mode: runner.ApplyMode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	byHost := map[string]*runner.HostRecap{}
	for _, rc := range res.Recap {
		byHost[rc.Host] = rc
	}
	if rc := byHost["b1"]; rc.Failed != 0 || rc.Changed != 4 {
		t.Errorf("b1 = %+v", rc)
	}
	if rc := byHost["b2"]; rc.Unreachable != 1 || rc.Error == "" {
		t.Errorf("b2 = %+v", rc)
	}
	if rc := byHost["b3"]; rc.Failed != 1 {
		t.Errorf("b3 = %+v", rc)
	}
	if len(res.Plays[1].Hosts) != 1 || res.Plays[1].Hosts[0].Host != "b1" {
		t.Errorf("second play ran on %+v; failed hosts must drop out", res.Plays[1].Hosts)
	}
	if fc.connect["b2"] != 1 || fc.connect["b1"] != 1 {
		t.Errorf("connections = %v; want one per host for the whole run", fc.connect)
	}
	if !res.HostFailed() || res.Summary.Failed != 2 {
		t.Errorf("summary = %+v", res.Summary)
	}
}

// gateConnector blocks the first host until every other host has finished
// its play, which only a sliding window (not fixed batches) allows.
type gateConnector struct {
	fakeConnector
	first    string
	others   int
	finished chan string
	inflight atomic.Int32
	maxSeen  atomic.Int32
}

func (g *gateConnector) Connect(ctx context.Context, h *inventory.Host) (runner.Conn, error) {
	n := g.inflight.Add(1)
	for {
		m := g.maxSeen.Load()
		if n <= m || g.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if h.Name == g.first {
		for i := 0; i < g.others; i++ {
			select {
			case <-g.finished:
			case <-time.After(20 * time.Second):
				return nil, fmt.Errorf("other hosts did not finish while %s held its slot: hosts run in batches, not a sliding window", h.Name)
			}
		}
	}
	return g.fakeConnector.Connect(ctx, h)
}

func TestForksSlidingWindow(t *testing.T) {
	var restarts atomic.Int32
	names := []string{"slow", "f1", "f2", "f3", "f4"}
	inv := testInventory(t, names...)
	g := &gateConnector{first: "slow", others: 4, finished: make(chan string, 10)}
	g.hosts = map[string]*tasktest.Host{}
	g.connect = map[string]int{}
	for _, n := range names {
		g.hosts[n] = newBuildServer(&restarts)
	}
	src := "- hosts: all\n  tasks:\n    - name: t\n      command: {argv: [touch, /var/x], creates: /var/x}\n"
	plays := compilePlays(t, src, inv)
	// Each fast host reports its end to the gate from its only command.
	for _, n := range names[1:] {
		n := n
		g.hosts[n].Handle("touch", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
			h.SetFile(args[1], "", 0o644, "root", "root")
			g.inflight.Add(-1)
			g.finished <- n
			return tasks.Output{}
		})
	}
	res, err := runner.Run(context.Background(), "t.yml", plays, runner.Options{Mode: runner.ApplyMode, Forks: 2, Connector: g, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if res.HostFailed() {
		t.Fatalf("a host failed: %+v", res.Recap)
	}
	if m := g.maxSeen.Load(); m > 2 {
		t.Errorf("%d hosts connected at once with --forks 2", m)
	}
	var order []string
	for _, hr := range res.Plays[0].Hosts {
		order = append(order, hr.Host)
	}
	if fmt.Sprint(order) != fmt.Sprint(names) {
		t.Errorf("results in order %v, want inventory order %v", order, names)
	}
}

// lockConn is a connection whose host is locked by another run.
type lockConn struct {
	fakeConn
	locked   bool
	released *atomic.Int32
}

func (c lockConn) Lock(context.Context) (func(), error) {
	if c.locked {
		return nil, fmt.Errorf("another dindops run is changing this host")
	}
	return func() { c.released.Add(1) }, nil
}

type lockConnector struct {
	hosts    map[string]*tasktest.Host
	locked   map[string]bool
	released atomic.Int32
}

func (l *lockConnector) Connect(_ context.Context, h *inventory.Host) (runner.Conn, error) {
	return lockConn{fakeConn: fakeConn{l.hosts[h.Name]}, locked: l.locked[h.Name], released: &l.released}, nil
}

func TestApplyLocksEachHost(t *testing.T) {
	var restarts atomic.Int32
	inv := testInventory(t, "b1", "b2")
	lc := &lockConnector{hosts: map[string]*tasktest.Host{"b1": newBuildServer(&restarts), "b2": newBuildServer(&restarts)}, locked: map[string]bool{"b2": true}}
	plays := compilePlays(t, testPlaybook, inv)
	res, err := runner.Run(context.Background(), "t.yml", plays, runner.Options{Mode: runner.ApplyMode, Connector: lc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recap[0].Failed != 0 || res.Recap[1].Failed != 1 || !strings.Contains(res.Recap[1].Error, "another dindops run") {
		t.Fatalf("recap = %+v %+v", res.Recap[0], res.Recap[1])
	}
	if len(lc.hosts["b2"].Writes) != 0 {
		t.Fatal("a locked host was changed")
	}
	if lc.released.Load() != 1 {
		t.Errorf("lock released %d times, want once (b1)", lc.released.Load())
	}
	// plan takes no lock: it changes nothing.
	lc.released.Store(0)
	if res, _ := runner.Run(context.Background(), "t.yml", plays, runner.Options{Mode: runner.PlanMode, Connector: lc, Now: fixedClock()}); res.HostFailed() || lc.released.Load() != 0 {
		t.Errorf("plan: failed=%v locks=%d", res.HostFailed(), lc.released.Load())
	}
}

// A task's warn, expanded per host, is on the task's result in plan and
// apply when it is not empty, and only then.
func TestTaskWarnIsShownWhenNotEmpty(t *testing.T) {
	const src = `- name: warned
  hosts: all
  vars:
    plain: true
  tasks:
    - name: motd
      file: {path: /etc/motd, content: "hi\n"}
      warn: "{{ if .plain }}plain TCP is for trusted networks only{{ end }}"
`
	var restarts atomic.Int32
	inv := testInventory(t, "b1")
	fc := &fakeConnector{hosts: map[string]*tasktest.Host{"b1": newBuildServer(&restarts)}, connect: map[string]int{}}
	for _, mode := range []runner.Mode{runner.PlanMode, runner.ApplyMode, runner.PlanMode} {
		res, err := runner.Run(context.Background(), "test.yml", compilePlays(t, src, inv), runner.Options{Mode: mode, Connector: fc, Now: fixedClock()})
		if err != nil {
			t.Fatal(err)
		}
		if tr := res.Plays[0].Hosts[0].Tasks[0]; len(tr.Warnings) != 1 || tr.Warnings[0] != "plain TCP is for trusted networks only" {
			t.Errorf("mode %v: warnings %q", mode, tr.Warnings)
		}
	}
	quiet := strings.Replace(src, "plain: true", "plain: false", 1)
	res, err := runner.Run(context.Background(), "test.yml", compilePlays(t, quiet, inv), runner.Options{Mode: runner.PlanMode, Connector: fc, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Plays[0].Hosts[0].Tasks[0]; len(tr.Warnings) != 0 {
		t.Errorf("empty warn shown: %q", tr.Warnings)
	}
}
