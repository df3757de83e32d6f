package tasks_test

// network_mtu's three places: the runner network (docker_network mtu),
// dind's nested daemon (docker_container dockerd_mtu) and the networks
// gitlab-runner makes per job (gitlab_runner docker.network_mtu).

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

const mtuOption = "com.docker.network.driver.mtu"

// uplink gives h a default route by eth0 with that MTU.
func uplink(h *tasktest.Host, mtu int) {
	h.SetUplink("eth0", map[string]int{"lo": 65536, "eth0": mtu, "docker0": 1500})
}

// On a 1450 uplink, auto creates the network with the MTU option; when the
// uplink is 1500 again, the option is drift: the network is recreated
// without it and its containers reconnected.
func TestNetworkMTUAuto(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	uplink(h, 1450)
	n := &tasks.DockerNetwork{Name: "gitlab-runner-net", Driver: "bridge", MTU: tasks.MTU{Auto: true}}
	changes := tasktest.Converge(t, n, h)
	if want := (tasks.Field{Name: "options", New: mtuOption + "=1450"}); len(changes) != 1 || !slices.Contains(changes[0].Fields, want) {
		t.Fatalf("plan = %+v, want a field %+v", changes, want)
	}
	if got := d.Network("gitlab-runner-net").Options[mtuOption]; got != "1450" {
		t.Fatalf("network's MTU option = %q", got)
	}
	d.AddImage("docker:27-dind", dindImage)
	tasktest.Converge(t, dindSpec(), h)
	oldID := d.NetworkID("gitlab-runner-net")

	uplink(h, 1500)
	changes = plan(t, n, h)
	if len(changes) != 1 || changes[0].Action != tasks.Update || changes[0].Summary != "recreate: options changed" {
		t.Fatalf("plan = %+v", changes)
	}
	if want := (tasks.Field{Name: "options", Old: mtuOption + "=1450"}); !slices.Contains(changes[0].Fields, want) {
		t.Errorf("fields = %+v, want %+v among them", changes[0].Fields, want)
	}
	if w := strings.Join(changes[0].Warnings, "\n"); !strings.Contains(w, "container gitlab-dind will be disconnected and reconnected") {
		t.Errorf("warnings = %q", changes[0].Warnings)
	}
	apply(t, n, h, changes)
	if d.NetworkID("gitlab-runner-net") == oldID {
		t.Fatal("network not recreated")
	}
	if got, ok := d.Network("gitlab-runner-net").Options[mtuOption]; ok {
		t.Errorf("MTU option still %q", got)
	}
	if _, ok := d.Endpoints("gitlab-dind")["gitlab-runner-net"]; !ok {
		t.Errorf("gitlab-dind not reconnected")
	}
	if again := plan(t, n, h); len(again) != 0 {
		t.Fatalf("plan after apply: %+v", again)
	}
}

// On a 1500 uplink auto changes nothing on a network made before network_mtu
// existed: no option, no drift, no other Engine call than the inspect.
func TestNetworkMTUAutoOn1500IsNoChange(t *testing.T) {
	for _, newer := range []bool{false, true} {
		h := tasktest.New()
		d := tasktest.InstallDocker(h)
		d.Newer = newer
		d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{})
		uplink(h, 1500)
		h.Commands = nil
		n := &tasks.DockerNetwork{Name: "gitlab-runner-net", Driver: "bridge", MTU: tasks.MTU{Auto: true}}
		if got := plan(t, n, h); len(got) != 0 {
			t.Fatalf("newer %v: plan = %+v", newer, got)
		}
		if calls := apiCalls(h); !reflect.DeepEqual(calls, [][]string{{"NetworkInspect", "gitlab-runner-net"}}) {
			t.Errorf("API calls %q", calls)
		}
		// Created on such a host, the network has no MTU option.
		h2 := tasktest.New()
		d2 := tasktest.InstallDocker(h2)
		d2.Newer = newer
		uplink(h2, 1500)
		tasktest.Converge(t, n, h2)
		if got, ok := d2.Network("gitlab-runner-net").Options[mtuOption]; ok {
			t.Errorf("newer %v: created with MTU option %q", newer, got)
		}
	}
}

// A number sets the MTU whatever the uplink; a network with another MTU is
// recreated with it. Left out, an MTU option the network has is no drift.
func TestNetworkMTUNumber(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{Options: map[string]string{mtuOption: "1450"}})
	uplink(h, 1500)
	if got := plan(t, &tasks.DockerNetwork{Name: "gitlab-runner-net"}, h); len(got) != 0 {
		t.Fatalf("mtu left out: plan = %+v", got)
	}
	n := &tasks.DockerNetwork{Name: "gitlab-runner-net", MTU: tasks.MTU{Value: 1400}}
	changes := tasktest.Converge(t, n, h)
	if want := (tasks.Field{Name: "options", Old: mtuOption + "=1450", New: mtuOption + "=1400"}); !slices.Contains(changes[0].Fields, want) {
		t.Errorf("fields = %+v, want %+v", changes[0].Fields, want)
	}
	if got := d.Network("gitlab-runner-net").Options[mtuOption]; got != "1400" {
		t.Errorf("MTU option %q", got)
	}
}

func TestNetworkMTUValidate(t *testing.T) {
	for _, n := range []tasks.DockerNetwork{
		{Name: "n1", MTU: tasks.MTU{Value: 10}},
		{Name: "n1", MTU: tasks.MTU{Auto: true}, Options: map[string]string{mtuOption: "1450"}},
	} {
		var fe *tasks.FieldError
		if err := n.Validate(); !errors.As(err, &fe) || fe.Field != "mtu" {
			t.Errorf("%+v: %v", n, err)
		}
	}
}

// dockerd_mtu appends --mtu=N to dind's command when an MTU is to be set:
// on a 1450 uplink dind is created with it; back at 1500 the command is
// drift and dind is recreated without it.
func TestContainerDockerdMTU(t *testing.T) {
	h, d := dockerHost(t)
	uplink(h, 1450)
	c := dindSpec()
	c.DockerdMTU = tasks.MTU{Auto: true}
	changes := tasktest.Converge(t, c, h)
	if want := (tasks.Field{Name: "command", New: "--storage-driver=overlay2 --mtu=1450"}); !slices.Contains(changes[0].Fields, want) {
		t.Errorf("fields = %+v, want %+v", changes[0].Fields, want)
	}
	if got := d.Container("gitlab-dind").Config.Cmd; strings.Join(got, " ") != "--storage-driver=overlay2 --mtu=1450" {
		t.Fatalf("dind's command %q", got)
	}
	uplink(h, 1500)
	changes = tasktest.Converge(t, c, h)
	if want := []tasks.Field{{Name: "command", Old: "--storage-driver=overlay2 --mtu=1450", New: "--storage-driver=overlay2"}}; !reflect.DeepEqual(changes[0].Fields, want) || changes[0].Summary != "recreate: command changed" {
		t.Errorf("plan = %+v, want fields %+v", changes, want)
	}
	if got := d.Container("gitlab-dind").Config.Cmd; strings.Join(got, " ") != "--storage-driver=overlay2" {
		t.Fatalf("dind's command %q", got)
	}
	// A number wins over the uplink.
	c.DockerdMTU = tasks.MTU{Value: 1400}
	tasktest.Converge(t, c, h)
	if got := d.Container("gitlab-dind").Config.Cmd; strings.Join(got, " ") != "--storage-driver=overlay2 --mtu=1400" {
		t.Fatalf("dind's command %q", got)
	}
}

// A dind made before dockerd_mtu existed is no change on a 1500 uplink.
func TestContainerDockerdMTUAutoOn1500IsNoChange(t *testing.T) {
	h, _ := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	uplink(h, 1500)
	c := dindSpec()
	c.DockerdMTU = tasks.MTU{Auto: true}
	if got := plan(t, c, h); len(got) != 0 {
		t.Fatalf("plan = %+v", got)
	}
}

func TestContainerDockerdMTUValidate(t *testing.T) {
	for _, mod := range []func(*tasks.DockerContainer){
		func(c *tasks.DockerContainer) { c.DockerdMTU = tasks.MTU{Value: 100000} },
		func(c *tasks.DockerContainer) {
			c.DockerdMTU, c.Command = tasks.MTU{Auto: true}, []string{"--mtu=1400"}
		},
		func(c *tasks.DockerContainer) {
			c.DockerdMTU, c.Command = tasks.MTU{Value: 1400}, []string{"--mtu", "1400"}
		},
	} {
		c := dindSpec()
		mod(c)
		var fe *tasks.FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Field != "dockerd_mtu" {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
