package tasktest

import (
	"context"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
)

// The in-memory engine's rules that the docker tasks rely on, as the real
// Engine has them.
func TestEngineRules(t *testing.T) {
	ctx := context.Background()
	h := New()
	d := InstallDocker(h)
	api, err := h.Docker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d.AddImage("busybox:1", DockerImage{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}})
	d.AddNetwork("net", client.NetworkCreateOptions{})

	if _, err := api.ContainerInspect(ctx, "nope", client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect of a missing container: %v", err)
	}
	if _, err := api.ImageInspect(ctx, "nope:1"); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect of a missing image: %v", err)
	}
	create := client.ContainerCreateOptions{Name: "c", Config: &container.Config{Image: "busybox:1", Env: []string{"A=1"}},
		HostConfig: &container.HostConfig{NetworkMode: "net"}}
	if _, err := api.ContainerCreate(ctx, create); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ContainerCreate(ctx, create); !cerrdefs.IsConflict(err) {
		t.Errorf("a second create of the same name: %v", err)
	}
	if env := d.Env("c"); len(env) != 2 || env[0] != "PATH=/bin" || env[1] != "A=1" {
		t.Errorf("the image's env is not merged: %v", env)
	}
	if _, err := api.ContainerKill(ctx, "c", client.ContainerKillOptions{Signal: "SIGQUIT"}); !cerrdefs.IsConflict(err) {
		t.Errorf("kill of a created container: %v", err)
	}
	if _, err := api.ContainerStart(ctx, "c", client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.NetworkRemove(ctx, "net", client.NetworkRemoveOptions{}); !cerrdefs.IsPermissionDenied(err) {
		t.Errorf("removal of a network with a running container: %v", err)
	}

	// A drain: the container goes on for a moment after the signal, and a
	// wait for not-running returns once it has exited.
	d.Drains("c", 50*time.Millisecond)
	if _, err := api.ContainerKill(ctx, "c", client.ContainerKillOptions{Signal: "SIGQUIT"}); err != nil {
		t.Fatal(err)
	}
	if !d.Running("c") {
		t.Error("exited at once despite Drains")
	}
	w := api.ContainerWait(ctx, "c", client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-w.Result:
	case err := <-w.Error:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return after the container exited")
	}

	// Its network gone, a stopped container cannot start.
	d.RemoveNetwork("net")
	if _, err := api.ContainerStart(ctx, "c", client.ContainerStartOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("start without its network: %v", err)
	}

	// A frozen host refuses changes, not reads; a stopped daemon answers
	// nothing. Every request is counted.
	d.Requests()
	h.Freeze()
	if _, err := api.NetworkCreate(ctx, "n2", client.NetworkCreateOptions{}); err == nil {
		t.Error("a change on a frozen host")
	}
	if _, err := api.Info(ctx, client.InfoOptions{}); err != nil {
		t.Errorf("a read on a frozen host: %v", err)
	}
	h.Thaw()
	d.SetDown(true)
	if _, err := api.Info(ctx, client.InfoOptions{}); !tasks.DockerUnreachable(err) {
		t.Errorf("info from a stopped daemon: %v", err)
	}
	if n := d.Requests(); n != 3 {
		t.Errorf("%d requests counted, want 3", n)
	}
}
