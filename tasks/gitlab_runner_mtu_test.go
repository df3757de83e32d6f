package tasks_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dindops/dindops/fixtures/fakegitlab"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

func autoNetworkMTU(g *tasks.GitLabRunner) { g.Docker.NetworkMTU = tasks.MTU{Auto: true} }

// docker.network_mtu: auto writes the uplink's MTU to config.toml when it
// is below 1500, with the registration and as an update, read in the same
// round trip as config.toml; at 1500 it is removed again.
func TestGitLabRunnerNetworkMTU(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	uplink(h, 1450)
	changes := tasktest.Converge(t, f.mustPrepare(f.task(glrt, autoNetworkMTU)), h)
	if !strings.Contains(changes[0].Diff, "+    network_mtu = 1450") {
		t.Errorf("registration diff lacks network_mtu:\n%s", changes[0].Diff)
	}
	if d := runnersOf(t, decodeConfig(t, h))[0]["docker"].(map[string]any); d["network_mtu"] != int64(1450) {
		t.Fatalf("[runners.docker] %v", d)
	}

	uplink(h, 1500)
	changes = tasktest.Converge(t, f.mustPrepare(f.task(glrt, autoNetworkMTU)), h)
	if want := []tasks.Field{{Name: "docker.network_mtu", Old: "1450"}}; len(changes) != 1 || !reflect.DeepEqual(changes[0].Fields, want) {
		t.Fatalf("at 1500: %+v", changes)
	}
	if d := runnersOf(t, decodeConfig(t, h))[0]["docker"].(map[string]any); d["network_mtu"] != nil {
		t.Errorf("network_mtu kept: %v", d)
	}

	// A number overrides the uplink.
	changes = tasktest.Converge(t, f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) { g.Docker.NetworkMTU = tasks.MTU{Value: 1400} })), h)
	if want := []tasks.Field{{Name: "docker.network_mtu", New: "1400"}}; len(changes) != 1 || !reflect.DeepEqual(changes[0].Fields, want) {
		t.Fatalf("1400: %+v", changes)
	}
	uplink(h, 1450)
	changes = tasktest.Converge(t, f.mustPrepare(f.task(glrt, autoNetworkMTU)), h)
	if want := []tasks.Field{{Name: "docker.network_mtu", Old: "1400", New: "1450"}}; len(changes) != 1 || !reflect.DeepEqual(changes[0].Fields, want) {
		t.Fatalf("back to auto: %+v", changes)
	}
	// Left out, network_mtu is not managed: the one there stays.
	if got, err := f.plan(f.mustPrepare(f.task(glrt, nil)), h); err != nil || len(got) != 0 {
		t.Errorf("left out: %+v, %v", got, err)
	}
	f.assertNoSecrets(h, glrt)
}

// On a 1500 uplink auto adds nothing to a config.toml without network_mtu,
// nor to one with gitlab-runner's network_mtu = 0 ("not set").
func TestGitLabRunnerNetworkMTUAutoOn1500IsNoChange(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	uplink(h, 1500)
	g := f.mustPrepare(f.task(glrt, autoNetworkMTU))
	if got, err := f.plan(g, h); err != nil || len(got) != 0 {
		t.Fatalf("plan = %+v, %v", got, err)
	}
	cfg, _ := h.File(cfgPath)
	zero := strings.Replace(string(cfg.Content), "[runners.docker]\n", "[runners.docker]\n    network_mtu = 0\n", 1)
	if zero == string(cfg.Content) {
		t.Fatalf("no [runners.docker] in\n%s", cfg.Content)
	}
	h.SetFile(cfgPath, zero, 0o600, "root", "root")
	if got, err := f.plan(g, h); err != nil || len(got) != 0 {
		t.Fatalf("with network_mtu = 0: plan = %+v, %v", got, err)
	}
}

func TestGitLabRunnerNetworkMTUValidate(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	g := f.task(regToken, func(g *tasks.GitLabRunner) { g.Docker.NetworkMTU = tasks.MTU{Value: 20} })
	err := g.Validate()
	if fe, ok := err.(*tasks.FieldError); !ok || fe.Field != "docker.network_mtu" {
		t.Errorf("err = %v", err)
	}
}
