package tasks_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

func netSpec() *tasks.DockerNetwork {
	return &tasks.DockerNetwork{Name: "gitlab-runner-net", Driver: "bridge"}
}

func TestNetworkCreateFromNothing(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	n := &tasks.DockerNetwork{Name: "ci-net", Options: map[string]string{"com.docker.network.driver.mtu": "1400"},
		Labels: map[string]string{"team": "ci"}}
	changes := tasktest.Converge(t, n, h)
	want := []tasks.Change{{Action: tasks.Create, Resource: "network", Target: "ci-net", Summary: "create",
		Fields: []tasks.Field{{Name: "driver", New: "bridge"}, {Name: "labels", New: "team=ci"},
			{Name: "options", New: "com.docker.network.driver.mtu=1400"}}}}
	for i := range changes {
		changes[i].Payload = nil
	}
	if !reflect.DeepEqual(changes, want) {
		t.Errorf("plan = %+v\nwant %+v", changes, want)
	}
	if d.NetworkID("ci-net") == "" {
		t.Fatal("network not created")
	}
	if !h.Ran("docker", "network", "create", "--driver=bridge", "--opt=com.docker.network.driver.mtu=1400", "--label=team=ci", "ci-net") {
		t.Errorf("unexpected create command: %q", h.Commands)
	}
}

func TestNetworkPlanRunsOneCommand(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.MustCLI(t, "network", "create", "gitlab-runner-net")
	h.Commands = nil
	if got := plan(t, netSpec(), h); len(got) != 0 {
		t.Fatalf("want no change, got %+v", got)
	}
	if want := [][]string{{"docker", "network", "inspect", "gitlab-runner-net"}}; !reflect.DeepEqual(h.Commands, want) {
		t.Errorf("plan ran %q, want %q", h.Commands, want)
	}
}

// C13: "network already exists" never surfaces.
func TestNetworkAlreadyExistsNeverSurfaces(t *testing.T) {
	t.Run("existing network with the same spec", func(t *testing.T) {
		h := tasktest.New()
		d := tasktest.InstallDocker(h)
		d.MustCLI(t, "network", "create", "gitlab-runner-net")
		if got := plan(t, netSpec(), h); len(got) != 0 {
			t.Fatalf("want no change, got %+v", got)
		}
	})
	t.Run("same network appears between plan and apply", func(t *testing.T) {
		h := tasktest.New()
		d := tasktest.InstallDocker(h)
		changes := plan(t, netSpec(), h)
		d.MustCLI(t, "network", "create", "gitlab-runner-net")
		apply(t, netSpec(), h, changes)
	})
	t.Run("differing network appears between plan and apply", func(t *testing.T) {
		h := tasktest.New()
		d := tasktest.InstallDocker(h)
		changes := plan(t, netSpec(), h)
		d.MustCLI(t, "network", "create", "--label", "x=y", "gitlab-runner-net")
		err := netSpec().Apply(context.Background(), h, changes)
		if err == nil || !strings.Contains(err.Error(), "created by something else after the plan") || strings.Contains(err.Error(), "already exists") {
			t.Fatalf("want a clear message, got %v", err)
		}
	})
}

func TestNetworkDriftEachFieldAlone(t *testing.T) {
	cases := []struct {
		field    string
		have     []string // docker network create flags
		old, new string
	}{
		{"driver", []string{"--driver", "macvlan"}, "macvlan", "bridge"},
		{"labels", []string{"--label", "team=ci"}, "team=ci", ""},
		{"options", []string{"--opt", "com.docker.network.driver.mtu=9000"}, "com.docker.network.driver.mtu=9000", "com.docker.network.driver.mtu=1400"},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			h := tasktest.New()
			d := tasktest.InstallDocker(h)
			d.MustCLI(t, append(append([]string{"network", "create"}, tc.have...), "ci-net")...)
			n := &tasks.DockerNetwork{Name: "ci-net"}
			if tc.field == "options" {
				n.Options = map[string]string{"com.docker.network.driver.mtu": "1400"}
			}
			changes := plan(t, n, h)
			if len(changes) != 1 || changes[0].Action != tasks.Update {
				t.Fatalf("want one update, got %+v", changes)
			}
			want := []tasks.Field{{Name: tc.field, Old: tc.old, New: tc.new}}
			if !reflect.DeepEqual(changes[0].Fields, want) {
				t.Errorf("fields = %+v, want %+v", changes[0].Fields, want)
			}
			if s := "recreate: " + tc.field + " differs"; changes[0].Summary != s {
				t.Errorf("summary = %q, want %q", changes[0].Summary, s)
			}
			if len(changes[0].Warnings) != 0 {
				t.Errorf("no container is attached, yet: %q", changes[0].Warnings)
			}
			old := d.NetworkID("ci-net")
			apply(t, n, h, changes)
			if d.NetworkID("ci-net") == old {
				t.Error("network not recreated")
			}
			if again := plan(t, n, h); len(again) != 0 {
				t.Fatalf("plan after apply: %+v", again)
			}
		})
	}
}

func TestNetworkSeveralFieldsSummary(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.MustCLI(t, "network", "create", "--driver", "macvlan", "--label", "a=b", "ci-net")
	changes := plan(t, &tasks.DockerNetwork{Name: "ci-net"}, h)
	if len(changes) != 1 || changes[0].Summary != "recreate: driver, labels differ" {
		t.Fatalf("got %+v", changes)
	}
}

func TestNetworkDockerDefaultOptionsAreNotDrift(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.Newer = true // adds com.docker.network.enable_ipv4/enable_ipv6
	n := &tasks.DockerNetwork{Name: "ci-net", Options: map[string]string{"com.docker.network.driver.mtu": "1400"}}
	tasktest.Converge(t, n, h)
	// Keys not asked for are not drift; a key asked for is compared.
	n.Options["com.docker.network.enable_ipv6"] = "true"
	changes := plan(t, n, h)
	want := []tasks.Field{{Name: "options",
		Old: "com.docker.network.driver.mtu=1400\ncom.docker.network.enable_ipv6=false",
		New: "com.docker.network.driver.mtu=1400\ncom.docker.network.enable_ipv6=true"}}
	if len(changes) != 1 || !reflect.DeepEqual(changes[0].Fields, want) {
		t.Fatalf("got %+v", changes)
	}
}

// A network that differs is recreated; the containers attached to it,
// running or stopped, are disconnected and reconnected with their aliases.
func TestNetworkDriftWithAttachedContainersReconnects(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	tasktest.Converge(t, runnerSpec(), h)
	d.MustCLI(t, "run", "-d", "--name", "helper", "--network", "gitlab-runner-net", "--network-alias", "cache",
		"--network-alias", "cache.internal", "docker:27-dind")
	d.MustCLI(t, "stop", "gitlab-runner")
	oldNet := d.NetworkID("gitlab-runner-net")

	n := netSpec()
	n.Labels = map[string]string{"managed-by": "dindops"}
	changes := plan(t, n, h)
	if len(changes) != 1 || changes[0].Summary != "recreate: labels differs" {
		t.Fatalf("got %+v", changes)
	}
	want := []string{"containers gitlab-dind, gitlab-runner, helper will be disconnected and reconnected"}
	if !reflect.DeepEqual(changes[0].Warnings, want) {
		t.Errorf("warnings = %q, want %q", changes[0].Warnings, want)
	}
	apply(t, n, h, changes)
	if d.NetworkID("gitlab-runner-net") == oldNet {
		t.Fatal("network not recreated")
	}
	for _, c := range []string{"gitlab-dind", "gitlab-runner", "helper"} {
		if _, ok := d.Endpoints(c)["gitlab-runner-net"]; !ok {
			t.Errorf("%s not reconnected: %v", c, d.Endpoints(c))
		}
	}
	aliases := d.Endpoints("helper")["gitlab-runner-net"]
	if !slices.Contains(aliases, "cache") || !slices.Contains(aliases, "cache.internal") {
		t.Errorf("helper's aliases lost: %q", aliases)
	}
	if len(aliases) != 3 { // cache, cache.internal and docker's own short ID
		t.Errorf("helper's aliases = %q", aliases)
	}
	if again := plan(t, n, h); len(again) != 0 {
		t.Fatalf("network plan after apply: %+v", again)
	}
	// The stopped runner still starts: it is attached to the new network,
	// not to the removed one's ID.
	if got := plan(t, runnerSpec(), h); len(got) != 1 || got[0].Summary != "start" {
		t.Fatalf("runner plan = %+v", got)
	}
	tasktest.Converge(t, runnerSpec(), h)
	if got := plan(t, dindSpec(), h); len(got) != 0 {
		t.Fatalf("dind plan after the network's recreation: %+v", got)
	}
}

func TestNetworkAbsent(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, runnerSpec(), h)
	n := &tasks.DockerNetwork{Name: "gitlab-runner-net", State: "absent"}
	changes := tasktest.Converge(t, n, h)
	if len(changes) != 1 || changes[0].Action != tasks.Delete ||
		!reflect.DeepEqual(changes[0].Warnings, []string{"container gitlab-runner will be disconnected"}) {
		t.Fatalf("got %+v", changes)
	}
	if slices.Contains(d.NetworkNames(), "gitlab-runner-net") {
		t.Fatal("network still there")
	}
	if got := plan(t, &tasks.DockerNetwork{Name: "never-was", State: "absent"}, h); len(got) != 0 {
		t.Fatalf("absent network: %+v", got)
	}
}

func TestNetworkIdempotent(t *testing.T) {
	specs := []*tasks.DockerNetwork{
		netSpec(),
		{Name: "minimal"},
		{Name: "full", Driver: "bridge", Options: map[string]string{"com.docker.network.bridge.enable_icc": "false",
			"com.docker.network.driver.mtu": "1400"}, Labels: map[string]string{"a": "1", "empty": ""}},
		{Name: "mac", Driver: "macvlan", Options: map[string]string{"parent": "eth0"}},
	}
	for _, newer := range []bool{false, true} {
		for _, n := range specs {
			h := tasktest.New()
			d := tasktest.InstallDocker(h)
			d.Newer = newer
			tasktest.Converge(t, n, h)
		}
	}
}

func TestNetworkNewerCLIMessages(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.Newer = true // "Error response from daemon: network x not found"
	tasktest.Converge(t, netSpec(), h)
}

func TestNetworkValidate(t *testing.T) {
	cases := []struct {
		field string
		n     tasks.DockerNetwork
	}{
		{"name", tasks.DockerNetwork{}},
		{"name", tasks.DockerNetwork{Name: "--rm"}},
		{"name", tasks.DockerNetwork{Name: "bridge"}},
		{"driver", tasks.DockerNetwork{Name: "n1", Driver: "bad driver"}},
		{"state", tasks.DockerNetwork{Name: "n1", State: "gone"}},
		{"options", tasks.DockerNetwork{Name: "n1", Options: map[string]string{"": "x"}}},
		{"labels", tasks.DockerNetwork{Name: "n1", Labels: map[string]string{"a=b": "x"}}},
	}
	for _, tc := range cases {
		err := tc.n.Validate()
		var fe *tasks.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: want a FieldError for %s, got %v", tc.n, tc.field, err)
		}
	}
	if err := netSpec().Validate(); err != nil {
		t.Error(err)
	}
}
