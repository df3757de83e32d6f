package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

const handlerPlaybook = `- name: configure
  hosts: all
  tasks:
    - name: daemon config
      file:
        path: /etc/docker/daemon.json
        content: "{\"storage-driver\": \"overlay2\"}\n"
      notify: restart docker
    - name: probe
      command: {argv: [probe], read_only: true}
  handlers:
    - name: restart docker
      service: {name: docker, state: restarted}
`

// probeHost is a build server whose "probe" fails (exit 1) or loses the
// connection while *fail is set.
func probeHost(restarts *atomic.Int32, fail *atomic.Value) *tasktest.Host {
	h := newBuildServer(restarts)
	h.MkdirAll("/var/lib")
	h.Handle("probe", func(*tasktest.Host, []string, []byte) tasks.Output {
		if f, _ := fail.Load().(string); f == "exit" {
			return tasks.Output{ExitCode: 1, Stderr: []byte("probe: broken\n")}
		}
		return tasks.Output{}
	})
	return h
}

// lossyHost turns "probe" into a lost connection while *fail is "lost".
type lossyHost struct {
	*tasktest.Host
	fail *atomic.Value
}

func (l lossyHost) Run(ctx context.Context, c tasks.Cmd) (tasks.Output, error) {
	if f, _ := l.fail.Load().(string); f == "lost" && c.Args[0] == "probe" {
		return tasks.Output{}, &unreachable{"b1: connection lost while running probe: no answer to keepalives"}
	}
	return l.Host.Run(ctx, c)
}

func pendingRecord(t *testing.T, h *tasktest.Host) []runner.PendingHandler {
	t.Helper()
	f, ok := h.File(runner.DefaultPendingPath)
	if !ok {
		return nil
	}
	var rec struct {
		Version  int                     `json:"version"`
		Handlers []runner.PendingHandler `json:"handlers"`
	}
	if err := json.Unmarshal(f.Content, &rec); err != nil {
		t.Fatalf("record: %v\n%s", err, f.Content)
	}
	if rec.Version != 1 || f.Mode != 0o644 {
		t.Errorf("record version %d mode %o", rec.Version, f.Mode)
	}
	return rec.Handlers
}

func TestHandlersAreNeverLost(t *testing.T) {
	for _, fault := range []string{"exit", "lost"} {
		t.Run(fault, func(t *testing.T) {
			var restarts atomic.Int32
			var fail atomic.Value
			fail.Store(fault)
			h := probeHost(&restarts, &fail)
			conn := connectorFunc(func(string) runner.Conn { return lossyConn{lossyHost{h, &fail}} })
			plays := compilePlays(t, handlerPlaybook, testInventory(t, "b1"))
			ctx := context.Background()
			apply := func() *runner.Result {
				t.Helper()
				res, err := runner.Run(ctx, "site.yml", plays, runner.Options{Mode: runner.ApplyMode, Connector: conn, Now: fixedClock()})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}

			// 1. The config changes and notifies; the probe then fails: the
			// handler does not run, but it is recorded on the host.
			res := apply()
			if !res.HostFailed() || restarts.Load() != 0 {
				t.Fatalf("run 1: failed %v, restarts %d", res.HostFailed(), restarts.Load())
			}
			rec := pendingRecord(t, h)
			if len(rec) != 1 || rec[0].Play != "configure" || rec[0].Handler != "restart docker" || rec[0].NotifiedBy != "daemon config" || rec[0].Playbook != "site.yml" {
				t.Fatalf("record = %+v", rec)
			}
			if fault == "lost" && !res.Plays[0].Hosts[0].StateUnknown {
				t.Error("a connection lost during a task does not say the host's state is unknown")
			}

			// 2. plan shows the pending handler although the file is now
			// as planned, and changes nothing (the host is frozen).
			fail.Store("")
			h.Freeze()
			plan, err := runner.Run(ctx, "site.yml", plays, runner.Options{Mode: runner.PlanMode, Connector: conn, Now: fixedClock()})
			h.Thaw()
			if err != nil {
				t.Fatal(err)
			}
			tr := plan.Plays[0].Hosts[0].Tasks
			if len(tr) != 3 || tr[0].Status != runner.OK || !tr[2].Handler || tr[2].Status != runner.Changed || tr[2].Pending == nil {
				t.Fatalf("plan tasks = %+v", tr)
			}
			if plan.Summary.Restart != 1 || plan.HostFailed() {
				t.Errorf("plan summary = %+v", plan.Summary)
			}

			// 3. The next apply runs it, and clears the record.
			writes := len(h.Writes)
			res = apply()
			if res.HostFailed() || restarts.Load() != 1 {
				t.Fatalf("run 2: failed %v (%+v), restarts %d", res.HostFailed(), res.Recap, restarts.Load())
			}
			tr = res.Plays[0].Hosts[0].Tasks
			if tr[0].Status != runner.OK || tr[2].Pending == nil || tr[2].Pending.NotifiedBy != "daemon config" {
				t.Errorf("run 2 tasks = %+v", tr)
			}
			if _, ok := h.File(runner.DefaultPendingPath); ok {
				t.Error("the record is still there after the handler ran")
			}
			if len(h.Writes) != writes {
				t.Errorf("run 2 wrote %v; clearing the last pending handler removes the file", h.Writes[writes:])
			}

			// 4. And only once.
			res = apply()
			if restarts.Load() != 1 || res.Summary.Total() != 0 {
				t.Errorf("run 3: restarts %d, summary %+v", restarts.Load(), res.Summary)
			}
		})
	}
}

type lossyConn struct{ h lossyHost }

func (c lossyConn) Host(bool) tasks.Host { return c.h }
func (c lossyConn) Close() error         { return nil }

// A record written by an earlier run is kept for handlers this playbook does
// not have, and the handlers that run are cleared from it.
func TestPendingRecordKeepsOtherEntries(t *testing.T) {
	var restarts atomic.Int32
	var fail atomic.Value
	h := probeHost(&restarts, &fail)
	h.SetFile(runner.DefaultPendingPath, `{"version": 1, "handlers": [
  {"play": "configure", "handler": "restart docker", "notified_by": "old", "since": "2026-01-02T03:04:05Z", "playbook": "site.yml"},
  {"play": "elsewhere", "handler": "reload nginx", "notified_by": "x", "since": "2026-01-02T03:04:05Z", "playbook": "web.yml"}
]}`, 0o644, "root", "root")
	conn := connectorFunc(func(string) runner.Conn { return fakeConn{h} })
	h.SetFile("/etc/docker/daemon.json", "{\"storage-driver\": \"overlay2\"}\n", 0o644, "root", "root")
	res, err := runner.Run(context.Background(), "site.yml", compilePlays(t, handlerPlaybook, testInventory(t, "b1")), runner.Options{Mode: runner.ApplyMode, Connector: conn, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if restarts.Load() != 1 || res.HostFailed() {
		t.Fatalf("restarts %d, recap %+v", restarts.Load(), res.Recap)
	}
	rec := pendingRecord(t, h)
	if len(rec) != 1 || rec[0].Handler != "reload nginx" {
		t.Errorf("record = %+v", rec)
	}
}

func TestUnreadablePendingRecordFailsTheHost(t *testing.T) {
	var restarts atomic.Int32
	var fail atomic.Value
	h := probeHost(&restarts, &fail)
	h.SetFile(runner.DefaultPendingPath, "{not json", 0o644, "root", "root")
	conn := connectorFunc(func(string) runner.Conn { return fakeConn{h} })
	res, err := runner.Run(context.Background(), "site.yml", compilePlays(t, handlerPlaybook, testInventory(t, "b1")), runner.Options{Mode: runner.ApplyMode, Connector: conn, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if rc := res.Recap[0]; rc.Failed != 1 || !strings.Contains(rc.Error, runner.DefaultPendingPath) || len(h.Writes) != 0 {
		t.Errorf("recap %+v, writes %v", rc, h.Writes)
	}
}

// A handler that fails stays pending, and the record says what its run
// did: here docker did not come back with the new daemon.json, which the
// handler restored (from the copy kept on the host) before starting docker
// again.
func TestPendingRecordSaysWhatAFailedHandlerDid(t *testing.T) {
	const good, bad = "{\"storage-driver\": \"overlay2\"}\n", "{\"storage-driver\": \"overlay2\", \"log-level\": \"loud\"}\n"
	h := tasktest.New()
	h.MkdirAll("/var/lib")
	h.SetFile("/etc/docker/daemon.json", good, 0o644, "root", "root")
	h.Handle("probe", func(*tasktest.Host, []string, []byte) tasks.Output { return tasks.Output{} })
	running := true
	h.Handle("service", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		f, _ := h.File("/etc/docker/daemon.json")
		switch args[2] {
		case "status":
			if !running {
				return tasks.Output{ExitCode: 3}
			}
		case "start", "restart":
			running = !strings.Contains(string(f.Content), "loud")
		}
		return tasks.Output{}
	})
	sum := sha256.Sum256([]byte(bad))
	rec, _ := json.Marshal(map[string]any{"version": 1, "path": "/etc/docker/daemon.json", "existed": true, "content": good,
		"mode": "0644", "owner": "root", "group": "root", "written_sha256": hex.EncodeToString(sum[:])})
	h.SetFile("/var/lib/dindops/backup/etc_docker_daemon.json.json", string(rec), 0o600, "root", "root")
	src := strings.Replace(strings.Replace(handlerPlaybook, `{\"storage-driver\": \"overlay2\"}\n`, `{\"storage-driver\": \"overlay2\", \"log-level\": \"loud\"}\n`, 1),
		"service: {name: docker, state: restarted}", "service: {name: docker, state: restarted, ready_timeout: 10, restore: [/etc/docker/daemon.json]}", 1)
	conn := connectorFunc(func(string) runner.Conn { return fakeConn{h} })
	res, err := runner.Run(context.Background(), "site.yml", compilePlays(t, src, testInventory(t, "b1")), runner.Options{Mode: runner.ApplyMode, Connector: conn, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.HostFailed() || !strings.Contains(res.Recap[0].Error, "the previous /etc/docker/daemon.json was restored and docker runs again") {
		t.Fatalf("recap %+v", res.Recap[0])
	}
	if f, _ := h.File("/etc/docker/daemon.json"); string(f.Content) != good || !running {
		t.Errorf("daemon.json %q, running %v", f.Content, running)
	}
	p := pendingRecord(t, h)
	if len(p) != 1 || p[0].LastRun == nil || !reflect.DeepEqual(p[0].LastRun.Restored, []string{"/etc/docker/daemon.json"}) || !p[0].LastRun.Running ||
		!strings.Contains(p[0].LastRun.Error, "did not come back") {
		t.Fatalf("record = %+v (last run %+v)", p, p[0].LastRun)
	}
}
