package tasks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dindops/dindops/tasks"
)

// An interrupt whose grace ran out while dind was being recreated (the old
// container removed, the new one not yet created): Apply finishes the
// recreation in an UndoContext, starts the drained runner again and
// reports success. Before, the host was left without dind and with its
// runner stopped.
func TestInterruptedRecreateIsFinished(t *testing.T) {
	h, d, _ := runnerHost(t)
	c := fleetDindSpec()
	c.Drain = &tasks.Drain{Containers: []string{"gitlab-runner"}}
	c.Env = map[string]string{"DOCKER_TLS_CERTDIR": "", "NEW": "1"}
	changes, err := c.Plan(context.Background(), h)
	if err != nil || len(changes) != 1 {
		t.Fatalf("plan: %v %v", changes, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.OnCall(func(method string) {
		if method == "ContainerRemove" {
			cancel()
		}
	})
	if err := c.Apply(ctx, h, changes); err != nil {
		t.Fatalf("apply: %v; want the recreation finished", err)
	}
	d.OnCall(nil)
	if !d.Running("gitlab-dind") || !d.Running("gitlab-runner") {
		t.Fatalf("dind running %t, runner running %t", d.Running("gitlab-dind"), d.Running("gitlab-runner"))
	}
	if env := strings.Join(d.Env("gitlab-dind"), " "); !strings.Contains(env, "NEW=1") {
		t.Errorf("dind env %s: not the new container", env)
	}
}

// A forced stop (a second interrupt) ends the undo too: the error says
// the recreation was not finished and the next apply makes it.
func TestForcedStopEndsTheUndo(t *testing.T) {
	h, d, _ := runnerHost(t)
	c := fleetDindSpec()
	c.Drain = &tasks.Drain{Containers: []string{"gitlab-runner"}}
	c.Env = map[string]string{"DOCKER_TLS_CERTDIR": "", "NEW": "1"}
	changes, _ := c.Plan(context.Background(), h)
	force, forced := context.WithCancel(context.Background())
	ctx, cancel := context.WithCancel(tasks.WithForce(context.Background(), force))
	defer cancel()
	d.OnCall(func(method string) {
		if method == "ContainerRemove" {
			forced()
			cancel()
		}
	})
	err := c.Apply(ctx, h, changes)
	if err == nil || !strings.Contains(err.Error(), "the next apply recreates it") {
		t.Fatalf("apply: %v", err)
	}
}

// UndoContext keeps going after its parent is cancelled, ends at a forced
// stop, and after its bound.
func TestUndoContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	u, done := tasks.UndoContext(parent, time.Hour)
	if u.Err() != nil {
		t.Fatal("the undo context is cancelled with its parent")
	}
	done()
	force, forced := context.WithCancel(context.Background())
	u, done = tasks.UndoContext(tasks.WithForce(parent, force), time.Hour)
	defer done()
	forced()
	select {
	case <-u.Done():
	case <-time.After(time.Second):
		t.Fatal("a forced stop does not end the undo")
	}
	u2, done2 := tasks.UndoContext(parent, time.Millisecond)
	defer done2()
	<-u2.Done()
}
