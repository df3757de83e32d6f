package tasks_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

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
	got := d.Network("ci-net")
	if got.Driver != "bridge" || got.Options["com.docker.network.driver.mtu"] != "1400" || got.Labels["team"] != "ci" || len(got.Labels) != 1 {
		t.Errorf("created network: driver %q, options %v, labels %v", got.Driver, got.Options, got.Labels)
	}
	if !calledAPI(h, "NetworkCreate", "ci-net") || commands(h) != nil {
		t.Errorf("want the network created through the API and no command: %q", h.Commands)
	}
}

func TestNetworkPlanMakesOneRequest(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{})
	h.Commands = nil
	if got := plan(t, netSpec(), h); len(got) != 0 {
		t.Fatalf("want no change, got %+v", got)
	}
	if want := [][]string{{"API", "NetworkInspect", "gitlab-runner-net"}}; !reflect.DeepEqual(h.Commands, want) {
		t.Errorf("plan made %q, want %q", h.Commands, want)
	}
}

// A daemon that does not answer fails the plan with a typed error.
func TestNetworkDaemonDownFailsPlan(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.SetDown(true)
	_, err := netSpec().Plan(context.Background(), h)
	if err == nil || !tasks.DockerUnreachable(err) {
		t.Fatalf("plan with the daemon down: %v", err)
	}
}

// C13: "network already exists" never surfaces.
func TestNetworkAlreadyExistsNeverSurfaces(t *testing.T) {
	t.Run("existing network with the same spec", func(t *testing.T) {
		h := tasktest.New()
		d := tasktest.InstallDocker(h)
		d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{})
		if got := plan(t, netSpec(), h); len(got) != 0 {
			t.Fatalf("want no change, got %+v", got)
		}
	})
	t.Run("same network appears between plan and apply", func(t *testing.T) {
		h := tasktest.New()
		d := tasktest.InstallDocker(h)
		changes := plan(t, netSpec(), h)
		d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{})
		apply(t, netSpec(), h, changes)
	})
	t.Run("differing network appears between plan and apply", func(t *testing.T) {
		h := tasktest.New()
		d := tasktest.InstallDocker(h)
		changes := plan(t, netSpec(), h)
		d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{Labels: map[string]string{"x": "y"}})
		err := netSpec().Apply(context.Background(), h, changes)
		if err == nil || !strings.Contains(err.Error(), "created by something else after the plan") || strings.Contains(err.Error(), "already exists") {
			t.Fatalf("want a clear message, got %v", err)
		}
	})
}

func TestNetworkDriftEachFieldAlone(t *testing.T) {
	cases := []struct {
		field    string
		have     client.NetworkCreateOptions
		old, new string
	}{
		{"driver", client.NetworkCreateOptions{Driver: "macvlan"}, "macvlan", "bridge"},
		{"labels", client.NetworkCreateOptions{Labels: map[string]string{"team": "ci"}}, "team=ci", ""},
		{"options", client.NetworkCreateOptions{Options: map[string]string{"com.docker.network.driver.mtu": "9000"}}, "com.docker.network.driver.mtu=9000", "com.docker.network.driver.mtu=1400"},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			h := tasktest.New()
			d := tasktest.InstallDocker(h)
			d.AddNetwork("ci-net", tc.have)
			n := &tasks.DockerNetwork{Name: "ci-net"}
			if tc.field == "options" {
				n.Options = map[string]string{"com.docker.network.driver.mtu": "1400"}
			}
			changes := plan(t, n, h)
			if len(changes) != 1 || changes[0].Action != tasks.Update {
				t.Fatalf("want one update, got %+v", changes)
			}
			// The field that differs; the recreate keeps the subnet and
			// gateway (the task names none).
			want := []tasks.Field{{Name: tc.field, Old: tc.old, New: tc.new}}
			if !reflect.DeepEqual(changes[0].Fields, want) {
				t.Errorf("fields = %+v, want %+v", changes[0].Fields, want)
			}
			if s := "recreate: " + tc.field + " changed"; changes[0].Summary != s {
				t.Errorf("summary = %q, want %q", changes[0].Summary, s)
			}
			if len(changes[0].Warnings) != 1 || strings.Contains(changes[0].Warnings[0], "disconnected") ||
				!strings.Contains(changes[0].Warnings[0], "created again with exactly this task's spec") {
				t.Errorf("want only the recreate warning (no container is attached): %q", changes[0].Warnings)
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

// ipam returns the subnet and gateway of a network's only IPAM pool.
func ipam(t *testing.T, d *tasktest.Docker, name string) (subnet, gateway string) {
	t.Helper()
	n := d.Network(name)
	if n == nil || len(n.IPAM.Config) != 1 {
		t.Fatalf("network %s: %+v", name, n)
	}
	return n.IPAM.Config[0].Subnet.String(), n.IPAM.Config[0].Gateway.String()
}

func TestNetworkSeveralFieldsSummary(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.AddNetwork("ci-net", client.NetworkCreateOptions{Driver: "macvlan", Labels: map[string]string{"a": "b"}})
	changes := plan(t, &tasks.DockerNetwork{Name: "ci-net"}, h)
	if len(changes) != 1 || changes[0].Summary != "recreate: driver, labels changed" {
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
	want := tasks.Field{Name: "options",
		Old: "com.docker.network.driver.mtu=1400\ncom.docker.network.enable_ipv6=false",
		New: "com.docker.network.driver.mtu=1400\ncom.docker.network.enable_ipv6=true"}
	if len(changes) != 1 || changes[0].Summary != "recreate: options changed" || !slices.Contains(changes[0].Fields, want) {
		t.Fatalf("got %+v", changes)
	}
}

// A network that differs is recreated; the containers attached to it,
// running or stopped, are disconnected and reconnected with their aliases.
func TestNetworkDriftWithAttachedContainersReconnects(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	tasktest.Converge(t, runnerSpec(), h)
	if err := d.RunContainer(client.ContainerCreateOptions{Name: "helper", Config: &container.Config{Image: "docker:27-dind"},
		HostConfig: &container.HostConfig{NetworkMode: "gitlab-runner-net"},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"gitlab-runner-net": {Aliases: []string{"cache", "cache.internal"}}}}}); err != nil {
		t.Fatal(err)
	}
	d.Stop("gitlab-runner")
	oldNet := d.NetworkID("gitlab-runner-net")

	n := netSpec()
	n.Labels = map[string]string{"managed-by": "dindops"}
	changes := plan(t, n, h)
	if len(changes) != 1 || changes[0].Summary != "recreate: labels changed" {
		t.Fatalf("got %+v", changes)
	}
	want := []string{"docker cannot change a network: it is removed and created again with exactly this task's spec",
		"containers gitlab-dind, gitlab-runner, helper will be disconnected and reconnected"}
	if !reflect.DeepEqual(changes[0].Warnings, want) {
		t.Errorf("warnings = %q, want %q", changes[0].Warnings, want)
	}
	oldSubnet := d.Network("gitlab-runner-net").IPAM.Config[0].Subnet
	apply(t, n, h, changes)
	if d.NetworkID("gitlab-runner-net") == oldNet {
		t.Fatal("network not recreated")
	}
	// A new subnet may clash with routes in the attached containers.
	if got := d.Network("gitlab-runner-net").IPAM.Config; len(got) != 1 || got[0].Subnet != oldSubnet {
		t.Errorf("recreated network's IPAM %+v, want its subnet %s kept", got, oldSubnet)
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

// A network recreated by hand as --internal (no route out: the runner cannot
// reach GitLab) or --attachable differs from a task that does not ask for
// that.
func TestNetworkInternalAndAttachableAreDrift(t *testing.T) {
	for _, flag := range []string{"internal", "attachable"} {
		t.Run(flag, func(t *testing.T) {
			h := tasktest.New()
			d := tasktest.InstallDocker(h)
			d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{Internal: flag == "internal", Attachable: flag == "attachable"})
			changes := plan(t, netSpec(), h)
			if len(changes) != 1 || changes[0].Summary != "recreate: "+flag+" changed" ||
				!slices.Contains(changes[0].Fields, tasks.Field{Name: flag, Old: "true", New: "false"}) {
				t.Fatalf("want %s to change, got %+v", flag, changes)
			}
			apply(t, netSpec(), h, changes)
			if again := plan(t, netSpec(), h); len(again) != 0 {
				t.Fatalf("plan after apply: %+v", again)
			}
			n := netSpec()
			n.Internal, n.Attachable = flag == "internal", flag == "attachable"
			tasktest.Converge(t, n, h)
			if got := d.Network("gitlab-runner-net"); got.Internal != n.Internal || got.Attachable != n.Attachable {
				t.Errorf("not created %s: internal %v, attachable %v", flag, got.Internal, got.Attachable)
			}
		})
	}
}

// Subnet and gateway are compared when given, and only then.
func TestNetworkSubnetAndGateway(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{})
	if got := plan(t, netSpec(), h); len(got) != 0 {
		t.Fatalf("a subnet docker chose is drift when the task gives none: %+v", got)
	}
	subnet, gateway := ipam(t, d, "gitlab-runner-net")
	n := netSpec()
	n.Subnet, n.Gateway = "10.231.7.0/24", "10.231.7.254"
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	changes := plan(t, n, h)
	want := []tasks.Field{{Name: "gateway", Old: gateway, New: "10.231.7.254"}, {Name: "subnet", Old: subnet, New: "10.231.7.0/24"}}
	if len(changes) != 1 || changes[0].Summary != "recreate: gateway, subnet changed" || !reflect.DeepEqual(changes[0].Fields, want) {
		t.Fatalf("got %+v, want fields %+v", changes, want)
	}
	apply(t, n, h, changes)
	if s, g := ipam(t, d, "gitlab-runner-net"); s != "10.231.7.0/24" || g != "10.231.7.254" {
		t.Errorf("created with subnet %s, gateway %s", s, g)
	}
	if again := plan(t, n, h); len(again) != 0 {
		t.Fatalf("plan after apply: %+v", again)
	}

	// Docker keeps a subnet as written, host bits included: the same
	// network is no drift. A subnet alone: docker shows no gateway.
	h = tasktest.New()
	d = tasktest.InstallDocker(h)
	d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.231.8.5/24")}}}})
	n = netSpec()
	n.Subnet = "10.231.8.0/24"
	if got := plan(t, n, h); len(got) != 0 {
		t.Fatalf("10.231.8.5/24 and 10.231.8.0/24 reported as drift: %+v", got)
	}
	tasktest.Converge(t, &tasks.DockerNetwork{Name: "other-net", Subnet: "10.231.9.0/24"}, h)
}

// The review's case: a network made by hand as internal with an MTU option,
// and a task that changes its labels. The recreate resets all of that, and
// the plan says so: every field apply changes is listed, and a warning names
// those the task does not ask for.
func TestNetworkRecreateListsEverythingItResets(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	yes := true
	d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{Internal: true, EnableIPv6: &yes,
		Options: map[string]string{"com.docker.network.driver.mtu": "1400"}, Labels: map[string]string{"team": "ci"}})
	subnet, _ := ipam(t, d, "gitlab-runner-net")
	n := netSpec()
	n.Labels = map[string]string{"team": "platform"}
	changes := plan(t, n, h)
	if len(changes) != 1 {
		t.Fatalf("got %+v", changes)
	}
	c := changes[0]
	if c.Summary != "recreate: internal, labels changed" {
		t.Errorf("summary = %q", c.Summary)
	}
	want := []tasks.Field{
		{Name: "enable_ipv6", Old: "true", New: "false"},
		{Name: "internal", Old: "true", New: "false"},
		{Name: "labels", Old: "team=ci", New: "team=platform"},
		{Name: "options", Old: "com.docker.network.driver.mtu=1400", New: ""},
	}
	if !reflect.DeepEqual(c.Fields, want) {
		t.Errorf("fields = %+v\nwant     %+v", c.Fields, want)
	}
	wantWarning := "docker cannot change a network: it is removed and created again with exactly this task's spec, so what the task does not name is not kept (enable_ipv6, options)"
	if !reflect.DeepEqual(c.Warnings, []string{wantWarning}) {
		t.Errorf("warnings = %q", c.Warnings)
	}
	apply(t, n, h, changes)
	if again := plan(t, n, h); len(again) != 0 {
		t.Fatalf("plan after apply: %+v", again)
	}
	// Nothing the plan did not list changed: the network has exactly the
	// spec now.
	if got := d.Network("gitlab-runner-net"); got.Internal || got.EnableIPv6 || got.Options["com.docker.network.driver.mtu"] != "" {
		t.Errorf("recreated network keeps what the plan said goes: internal %v, IPv6 %v, options %v", got.Internal, got.EnableIPv6, got.Options)
	}
	if got, _ := ipam(t, d, "gitlab-runner-net"); got != subnet {
		t.Errorf("recreated network's subnet %s, want %s kept", got, subnet)
	}
}

func TestNetworkCreateWithEverything(t *testing.T) {
	h := tasktest.New()
	tasktest.InstallDocker(h)
	n := &tasks.DockerNetwork{Name: "ci-net", Internal: true, Attachable: true, Subnet: "10.231.7.0/24", Gateway: "10.231.7.1"}
	changes := tasktest.Converge(t, n, h)
	want := []tasks.Field{{Name: "attachable", New: "true"}, {Name: "driver", New: "bridge"}, {Name: "gateway", New: "10.231.7.1"},
		{Name: "internal", New: "true"}, {Name: "subnet", New: "10.231.7.0/24"}}
	if !reflect.DeepEqual(changes[0].Fields, want) {
		t.Errorf("fields = %+v\nwant     %+v", changes[0].Fields, want)
	}
}

func TestNetworkValidateIPAM(t *testing.T) {
	for _, tc := range []struct {
		field string
		n     tasks.DockerNetwork
	}{
		{"subnet", tasks.DockerNetwork{Name: "n1", Subnet: "10.0.0.0"}},
		{"subnet", tasks.DockerNetwork{Name: "n1", Subnet: "10.0.0.0/33"}},
		{"gateway", tasks.DockerNetwork{Name: "n1", Gateway: "10.0.0.1"}},
		{"gateway", tasks.DockerNetwork{Name: "n1", Subnet: "10.0.0.0/24", Gateway: "10.0.1.1"}},
		{"gateway", tasks.DockerNetwork{Name: "n1", Subnet: "10.0.0.0/24", Gateway: "gw"}},
	} {
		err := tc.n.Validate()
		var fe *tasks.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: want a FieldError for %s, got %v", tc.n, tc.field, err)
		}
	}
}
