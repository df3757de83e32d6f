package tasks_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// The fleet's dind with its system paths unconfined, as a nested dockerd
// 28 needs when dind is not privileged (a writable /proc/sys).
func unconfinedDindSpec() *tasks.DockerContainer {
	c := fleetDindSpec()
	c.SecurityOpt = append(c.SecurityOpt, "systempaths=unconfined")
	return c
}

// systempaths=unconfined is sent as docker run sends it: not as a security
// option, which the daemon refuses, but as empty masked and read-only
// paths; a second plan finds nothing to do.
func TestContainerSystemPathsUnconfined(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, unconfinedDindSpec(), h)
	hc := d.Container("gitlab-dind").HostConfig
	if want := []string{"apparmor=unconfined", "seccomp=unconfined"}; !reflect.DeepEqual(hc.SecurityOpt, want) {
		t.Errorf("SecurityOpt = %q, want %q (systempaths is not the daemon's option)", hc.SecurityOpt, want)
	}
	if hc.MaskedPaths == nil || len(hc.MaskedPaths) != 0 || hc.ReadonlyPaths == nil || len(hc.ReadonlyPaths) != 0 {
		t.Errorf("MaskedPaths = %#v, ReadonlyPaths = %#v; want both empty, not docker's defaults", hc.MaskedPaths, hc.ReadonlyPaths)
	}
}

// A dind made with docker's default system paths is drift for a spec that
// unconfines them, and the other way round; each is recreated.
func TestContainerSystemPathsDrift(t *testing.T) {
	const confined, unconfined = "apparmor=unconfined, seccomp=unconfined", "apparmor=unconfined, seccomp=unconfined, systempaths=unconfined"
	for _, tc := range []struct {
		name      string
		from, to  func() *tasks.DockerContainer
		old, new_ string
		readonly  bool // /proc/sys and the others read-only after apply
	}{
		{"unconfine", fleetDindSpec, unconfinedDindSpec, confined, unconfined, false},
		{"confine again", unconfinedDindSpec, fleetDindSpec, unconfined, confined, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, d := dockerHost(t)
			tasktest.Converge(t, tc.from(), h)
			changes := plan(t, tc.to(), h)
			if len(changes) != 1 || !reflect.DeepEqual(fieldNames(changes[0].Fields), []string{"security_opt"}) {
				t.Fatalf("want one change of security_opt, got %+v", changes)
			}
			if f := changes[0].Fields[0]; f.Old != tc.old || f.New != tc.new_ {
				t.Errorf("security_opt %q -> %q, want %q -> %q", f.Old, f.New, tc.old, tc.new_)
			}
			apply(t, tc.to(), h, changes)
			if again := plan(t, tc.to(), h); len(again) != 0 {
				t.Fatalf("plan after apply: %+v", again)
			}
			if ro := d.Container("gitlab-dind").HostConfig.ReadonlyPaths; (len(ro) > 0) != tc.readonly {
				t.Errorf("read-only paths %q after apply, want some: %v", ro, tc.readonly)
			}
		})
	}
}

// A privileged container has no masked paths either, but it was not asked
// for systempaths=unconfined: no drift.
func TestContainerPrivilegedIsNotSystemPathsUnconfined(t *testing.T) {
	h, _ := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	if got := plan(t, dindSpec(), h); len(got) != 0 {
		t.Fatalf("privileged dind reported as drift: %+v", got)
	}
}

// systempaths takes only unconfined; the error names the field.
func TestContainerSystemPathsValidate(t *testing.T) {
	c := fleetDindSpec()
	c.SecurityOpt = []string{"systempaths=confined"}
	err := c.Validate()
	var fe *tasks.FieldError
	if !errors.As(err, &fe) || fe.Field != "security_opt" || !strings.Contains(err.Error(), "systempaths takes only unconfined") {
		t.Fatalf("want a security_opt error about systempaths, got %v", err)
	}
	if err := unconfinedDindSpec().Validate(); err != nil {
		t.Fatalf("systempaths=unconfined refused: %v", err)
	}
}

// The daemon itself refuses systempaths as a security option: the fake
// engine does as docker does, so the tests above would fail if the option
// were passed through.
func TestEngineRefusesSystemPathsOption(t *testing.T) {
	_, d := dockerHost(t)
	err := d.RunContainer(client.ContainerCreateOptions{Name: "raw", Config: &container.Config{Image: "docker:27-dind"},
		HostConfig: &container.HostConfig{SecurityOpt: []string{"systempaths=unconfined"}}})
	if err == nil || !strings.Contains(err.Error(), `invalid --security-opt 2: "systempaths=unconfined"`) {
		t.Fatalf("want docker's refusal, got %v", err)
	}
}
