package playbooks

import (
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
)

// network_mtu reaches the runner network's mtu, dind's dockerd_mtu and
// config.toml's docker.network_mtu alike: auto by default, a number from
// the inventory or -e (a string of digits too), "" for none; anything
// else fails before any connection, naming the file, line and option.
func TestShippedPlaybookNetworkMTU(t *testing.T) {
	pb, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	ctl := tasks.Controller{LookupEnv: func(string) (string, bool) { return "", false }}
	mtus := func(t *testing.T, hostVars, extra map[string]any) (network, dind, runner tasks.MTU) {
		t.Helper()
		hp, err := Compile(pb.Plays[1], host(t, hostVars), CompileOptions{ExtraVars: extra, Controller: ctl})
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, s := range hp.Tasks {
			switch x := s.Task.(type) {
			case *tasks.DockerNetwork:
				network, seen = x.MTU, seen+1
			case *tasks.DockerContainer:
				if x.Name == "gitlab-dind" {
					dind, seen = x.DockerdMTU, seen+1
				} else if x.DockerdMTU.Managed() {
					t.Errorf("container %s has dockerd_mtu %v", x.Name, x.DockerdMTU)
				}
			case *tasks.GitLabRunner:
				runner, seen = x.Docker.NetworkMTU, seen+1
			}
		}
		if seen != 3 {
			t.Fatalf("found %d of the three tasks", seen)
		}
		return network, dind, runner
	}
	for _, tc := range []struct {
		name            string
		hostVars, extra map[string]any
		want            tasks.MTU
	}{
		{"default", nil, nil, tasks.MTU{Auto: true}},
		{"host var", map[string]any{"network_mtu": 1450}, nil, tasks.MTU{Value: 1450}},
		{"-e digits", nil, map[string]any{"network_mtu": "1360"}, tasks.MTU{Value: 1360}},
		{"none", nil, map[string]any{"network_mtu": ""}, tasks.MTU{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, d, r := mtus(t, tc.hostVars, tc.extra)
			if n != tc.want || d != tc.want || r != tc.want {
				t.Errorf("network %+v, dind %+v, runner %+v; want %+v", n, d, r, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		value any
		want  string
	}{
		{"big", `"big" is not auto or a number of bytes such as 1450`},
		{40, "40 is not an MTU: give a number of bytes from 68 to 65535"},
	} {
		_, err := Compile(pb.Plays[1], host(t, nil), CompileOptions{ExtraVars: map[string]any{"network_mtu": tc.value}, Controller: ctl})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "dind-runner.yml:") || !strings.Contains(err.Error(), "mtu") {
			t.Errorf("network_mtu=%v: err = %v", tc.value, err)
		}
	}
}
