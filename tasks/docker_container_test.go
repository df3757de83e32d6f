package tasks_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
	"go.yaml.in/yaml/v3"
)

func TestContainerCreateFromNothing(t *testing.T) {
	h, d := dockerHost(t)
	changes := tasktest.Converge(t, dindSpec(), h)
	if len(changes) != 1 || changes[0].Action != tasks.Create || changes[0].Resource != "container" || changes[0].Target != "gitlab-dind" {
		t.Fatalf("want one create of container gitlab-dind, got %+v", changes)
	}
	want := []string{"command", "env", "image", "networks", "privileged", "restart_policy", "volumes"}
	if got := fieldNames(changes[0].Fields); !reflect.DeepEqual(got, want) {
		t.Errorf("create fields = %v, want %v", got, want)
	}
	if strings.Contains(changes[0].Summary, "pull") {
		t.Errorf("image is on the host, summary should not pull: %q", changes[0].Summary)
	}
	if !d.Running("gitlab-dind") {
		t.Fatal("container not running")
	}
	if _, ok := d.Endpoints("gitlab-dind")["gitlab-runner-net"]; !ok {
		t.Errorf("not on gitlab-runner-net: %v", d.Endpoints("gitlab-dind"))
	}
	if !slices.Contains(d.Env("gitlab-dind"), "DOCKER_TLS_CERTDIR=") || slices.Contains(d.Env("gitlab-dind"), "DOCKER_TLS_CERTDIR=/certs") {
		t.Errorf("DOCKER_TLS_CERTDIR not emptied: %v", d.Env("gitlab-dind"))
	}
	if calledAPI(h, "ImagePull") {
		t.Error("pulled an image that is on the host")
	}
	// Env travels in the API request, never in a command line.
	if cmds := commands(h); len(cmds) != 0 {
		t.Errorf("commands run on the host: %q", cmds)
	}
}

// The plan reads the container and its image: two API requests (sent at
// once), and no command.
func TestContainerPlanMakesTwoRequests(t *testing.T) {
	for _, existing := range []bool{false, true} {
		h, _ := dockerHost(t)
		if existing {
			tasktest.Converge(t, dindSpec(), h)
		}
		h.Commands = nil
		plan(t, dindSpec(), h)
		got := apiCalls(h)
		slices.SortFunc(got, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
		want := [][]string{{"ContainerInspect", "gitlab-dind"}, {"ImageInspect", "docker:27-dind"}}
		if !reflect.DeepEqual(got, want) || len(commands(h)) != 0 {
			t.Errorf("existing=%v: plan made %q, want %q and no command", existing, h.Commands, want)
		}
	}
}

// A daemon that does not answer fails the plan with a typed error.
func TestContainerDaemonDownFailsPlan(t *testing.T) {
	h, d := dockerHost(t)
	d.SetDown(true)
	_, err := dindSpec().Plan(context.Background(), h)
	if err == nil || !tasks.DockerUnreachable(err) {
		t.Fatalf("plan with the daemon down: %v", err)
	}
}

func TestContainerPullsMissingImage(t *testing.T) {
	h, d := dockerHost(t)
	d.AddRegistryImage("busybox", tasktest.DockerImage{Cmd: []string{"sh"}})
	c := &tasks.DockerContainer{Name: "bb", Image: "busybox"}
	changes := tasktest.Converge(t, c, h)
	if !strings.Contains(changes[0].Summary, "pull busybox") {
		t.Errorf("summary %q does not note the pull", changes[0].Summary)
	}
	if !calledAPI(h, "ImagePull", "busybox") {
		t.Error("busybox not pulled")
	}
	if !calledAPI(h, "ImageInspect", "busybox") || !calledAPI(h, "ContainerInspect", "bb") {
		t.Errorf("plan did not inspect the container and the image: %q", h.Commands)
	}
}

func TestContainerPullAlwaysPullsOnlyWhenCreating(t *testing.T) {
	h, d := dockerHost(t)
	d.AddRegistryImage("docker:27-dind", dindImage)
	c := dindSpec()
	c.Pull = "always"
	tasktest.Converge(t, c, h)
	if !calledAPI(h, "ImagePull", "docker:27-dind") {
		t.Error("pull: always did not pull before create")
	}
	if got := plan(t, c, h); len(got) != 0 {
		t.Errorf("pull: always made a converged container change: %+v", got)
	}
}

func TestContainerPullNeverWithMissingImage(t *testing.T) {
	h, _ := dockerHost(t)
	c := &tasks.DockerContainer{Name: "app", Image: "example.com/app:1", Pull: "never"}
	h.Freeze()
	_, err := c.Plan(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "pull is never") || !strings.Contains(err.Error(), "example.com/app:1") {
		t.Fatalf("want a clear pull-never error, got %v", err)
	}
}

// A pull that fails at apply (the plan could not ask the registry) fails
// with docker's own message.
func TestContainerPullFailureCarriesDockerMessage(t *testing.T) {
	h, d := dockerHost(t)
	d.SetRegistryAnswer(registryUnreachable("example.com"))
	c := &tasks.DockerContainer{Name: "app", Image: "example.com/nosuch:1"}
	changes := plan(t, c, h)
	err := c.Apply(context.Background(), h, changes)
	if err == nil || !strings.Contains(err.Error(), "pull access denied") {
		t.Fatalf("want docker's pull error, got %v", err)
	}
	if !tasks.IsUnchanged(err) {
		t.Errorf("a failed pull changed nothing, but the error does not say so: %#v", err)
	}
	if !tasks.DockerNotFound(err) {
		t.Errorf("error does not keep the daemon's not-found type: %#v", err)
	}
	if calledAPI(h, "ContainerCreate") {
		t.Error("created a container after a failed pull")
	}
}

// Each option changed alone is reported as exactly that field, and applying
// it converges.
func TestContainerDriftEachFieldAlone(t *testing.T) {
	five := 5
	cases := []struct {
		field  string
		change func(c *tasks.DockerContainer)
	}{
		{"cap_add", func(c *tasks.DockerContainer) { c.CapAdd = []string{"NET_ADMIN"} }},
		{"cap_drop", func(c *tasks.DockerContainer) { c.CapDrop = []string{"MKNOD"} }},
		{"command", func(c *tasks.DockerContainer) { c.Command = []string{"--storage-driver=vfs"} }},
		{"entrypoint", func(c *tasks.DockerContainer) { c.Entrypoint = []string{"dockerd"} }},
		{"env", func(c *tasks.DockerContainer) { c.Env = map[string]string{"DOCKER_TLS_CERTDIR": "", "X": "1"} }},
		{"image", func(c *tasks.DockerContainer) { c.Image = "docker:28-dind" }},
		{"labels", func(c *tasks.DockerContainer) { c.Labels = map[string]string{"team": "ci"} }},
		{"networks", func(c *tasks.DockerContainer) { c.Networks = []string{"gitlab-runner-net", "other-net"} }},
		{"privileged", func(c *tasks.DockerContainer) { c.Privileged = true }},
		{"restart_policy", func(c *tasks.DockerContainer) { c.RestartPolicy = "unless-stopped" }},
		{"security_opt", func(c *tasks.DockerContainer) { c.SecurityOpt = append(c.SecurityOpt, "no-new-privileges") }},
		{"stop_timeout", func(c *tasks.DockerContainer) { c.StopTimeout = &five }},
		{"volumes", func(c *tasks.DockerContainer) { c.Volumes = append(c.Volumes, "/cache") }},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			h, d := dockerHost(t)
			d.AddImage("docker:28-dind", tasktest.DockerImage{Env: dindImage.Env, Entrypoint: dindImage.Entrypoint,
				Volumes: dindImage.Volumes, Labels: dindImage.Labels, Cmd: []string{"--debug"}})
			d.AddNetwork("other-net", client.NetworkCreateOptions{})
			tasktest.Converge(t, fleetDindSpec(), h)
			changed := fleetDindSpec()
			tc.change(changed)
			changes := plan(t, changed, h)
			if len(changes) != 1 || changes[0].Action != tasks.Update {
				t.Fatalf("want one update, got %+v", changes)
			}
			if got := fieldNames(changes[0].Fields); !reflect.DeepEqual(got, []string{tc.field}) {
				t.Fatalf("fields = %v, want [%s]: %+v", got, tc.field, changes[0].Fields)
			}
			if want := "recreate: " + tc.field + " changed"; changes[0].Summary != want {
				t.Errorf("summary = %q, want %q", changes[0].Summary, want)
			}
			f := changes[0].Fields[0]
			if f.Old == f.New {
				t.Errorf("field shows no difference: %+v", f)
			}
			apply(t, changed, h, changes)
			if again := plan(t, changed, h); len(again) != 0 {
				t.Fatalf("plan after apply: %+v", again)
			}
		})
	}
}

func TestContainerSeveralFieldsSummary(t *testing.T) {
	h, _ := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	c := dindSpec()
	c.Env = map[string]string{"DOCKER_TLS_CERTDIR": "/certs"}
	c.RestartPolicy = "no"
	changes := plan(t, c, h)
	if len(changes) != 1 || changes[0].Summary != "recreate: env, restart_policy changed" {
		t.Fatalf("got %+v", changes)
	}
	env := changes[0].Fields[0]
	if env.Old != "DOCKER_TLS_CERTDIR=" || env.New != "DOCKER_TLS_CERTDIR=/certs" {
		t.Errorf("env field = %+v", env)
	}
}

func TestContainerImageEnvAndLabelsAreNotDrift(t *testing.T) {
	h, d := dockerHost(t)
	// Created by hand with the same spec: the container's Env and Labels
	// include the image's PATH, DOCKER_VERSION, ... and its source label.
	runByHand(t, d, "gitlab-runner", "gitlab/gitlab-runner:alpine-v17.11.0", byHand{network: "gitlab-runner-net", restart: "always",
		env: []string{"DOCKER_HOST=tcp://gitlab-dind:2375"}, volumes: []string{"/srv/gitlab-runner/config:/etc/gitlab-runner"}})
	if got := plan(t, runnerSpec(), h); len(got) != 0 {
		t.Fatalf("image env/labels/volumes reported as drift: %+v", got)
	}

	h, d = dockerHost(t)
	runByHand(t, d, "gitlab-dind", "docker:27-dind", byHand{network: "gitlab-runner-net", restart: "always", privileged: true,
		env: []string{"DOCKER_TLS_CERTDIR="}, volumes: []string{"gitlab-dind-storage:/var/lib/docker"}, cmd: []string{"--storage-driver=overlay2"}})
	if got := plan(t, dindSpec(), h); len(got) != 0 {
		t.Fatalf("image env/labels reported as drift: %+v", got)
	}
	// A desired value that differs from the image's is drift.
	c := dindSpec()
	c.Labels = map[string]string{"org.opencontainers.image.source": "elsewhere"}
	changes := plan(t, c, h)
	if len(changes) != 1 || !reflect.DeepEqual(fieldNames(changes[0].Fields), []string{"labels"}) {
		t.Fatalf("want labels drift, got %+v", changes)
	}
	if f := changes[0].Fields[0]; f.Old != "org.opencontainers.image.source=https://github.com/docker-library/docker" || f.New != "org.opencontainers.image.source=elsewhere" {
		t.Errorf("labels field = %+v", f)
	}
}

func TestContainerExtraEnvAndLabelOnContainerAreDrift(t *testing.T) {
	h, d := dockerHost(t)
	runByHand(t, d, "gitlab-runner", "gitlab/gitlab-runner:alpine-v17.11.0", byHand{network: "gitlab-runner-net", restart: "always",
		env: []string{"DOCKER_HOST=tcp://gitlab-dind:2375", "DEBUG=1"}, labels: map[string]string{"owner": "bob"},
		volumes: []string{"/srv/gitlab-runner/config:/etc/gitlab-runner"}})
	changes := plan(t, runnerSpec(), h)
	if len(changes) != 1 || !reflect.DeepEqual(fieldNames(changes[0].Fields), []string{"env", "labels"}) {
		t.Fatalf("want env and labels drift, got %+v", changes)
	}
	env := changes[0].Fields[0]
	if env.Old != "DEBUG=1\nDOCKER_HOST=tcp://gitlab-dind:2375" || env.New != "DOCKER_HOST=tcp://gitlab-dind:2375" {
		t.Errorf("env field = %q → %q", env.Old, env.New)
	}
	if changes[0].Summary != "recreate: env, labels changed" {
		t.Errorf("summary = %q", changes[0].Summary)
	}
}

func TestContainerImageTagMoved(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	moved := dindImage
	moved.ID = "sha256:" + strings.Repeat("ab", 32)
	d.AddImage("docker:27-dind", moved) // e.g. someone ran docker pull docker:27-dind
	changes := plan(t, dindSpec(), h)
	if len(changes) != 1 || !reflect.DeepEqual(fieldNames(changes[0].Fields), []string{"image"}) {
		t.Fatalf("want image drift only, got %+v", changes)
	}
	f := changes[0].Fields[0]
	if !strings.Contains(f.New, "tag moved") || !strings.Contains(f.New, "sha256:abababababab") || !strings.HasPrefix(f.Old, "docker:27-dind (sha256:") {
		t.Errorf("image field = %+v", f)
	}
	apply(t, dindSpec(), h, changes)
	if again := plan(t, dindSpec(), h); len(again) != 0 {
		t.Fatalf("plan after apply: %+v", again)
	}
}

func TestContainerImageReferenceForms(t *testing.T) {
	h, d := dockerHost(t)
	runByHand(t, d, "gitlab-dind", "docker.io/library/docker:27-dind", byHand{network: "gitlab-runner-net", restart: "always", privileged: true,
		env: []string{"DOCKER_TLS_CERTDIR="}, volumes: []string{"gitlab-dind-storage:/var/lib/docker"}, cmd: []string{"--storage-driver=overlay2"}})
	if got := plan(t, dindSpec(), h); len(got) != 0 {
		t.Fatalf("docker.io/library/docker:27-dind vs docker:27-dind reported as drift: %+v", got)
	}
}

func TestContainerRecreateRemovesAnonymousVolumesKeepsNamed(t *testing.T) {
	h, d := dockerHost(t)
	c := runnerSpec()
	c.Volumes = append(c.Volumes, "runner-cache:/cache", "/scratch")
	tasktest.Converge(t, c, h)
	before := d.Volumes()
	var anon []string
	for _, v := range before {
		if len(v) == 64 {
			anon = append(anon, v)
		}
	}
	// /scratch and the image's /home/gitlab-runner.
	if len(anon) != 2 || !slices.Contains(before, "runner-cache") {
		t.Fatalf("volumes before = %v", before)
	}
	c.Env = map[string]string{"DOCKER_HOST": "tcp://other:2375"}
	changes := plan(t, c, h)
	if len(changes) != 1 || len(changes[0].Warnings) != 1 || !strings.Contains(changes[0].Warnings[0], "/home/gitlab-runner, /scratch") {
		t.Fatalf("want a warning naming the anonymous volumes, got %+v", changes)
	}
	apply(t, c, h, changes)
	after := d.Volumes()
	for _, v := range anon {
		if slices.Contains(after, v) {
			t.Errorf("old anonymous volume %s kept", v)
		}
	}
	if !slices.Contains(after, "runner-cache") {
		t.Error("named volume runner-cache removed")
	}
	if !calledAPI(h, "ContainerRemove", "gitlab-runner") {
		t.Error("old container not removed")
	}
}

// C13: "container name already in use" never surfaces.
func TestContainerNameInUseNeverSurfaces(t *testing.T) {
	t.Run("same spec made by hand is no change", func(t *testing.T) {
		h, d := dockerHost(t)
		runByHand(t, d, "gitlab-dind", "docker:27-dind", byHand{network: "gitlab-runner-net", restart: "always", privileged: true,
			env: []string{"DOCKER_TLS_CERTDIR="}, volumes: []string{"gitlab-dind-storage:/var/lib/docker"}, cmd: []string{"--storage-driver=overlay2"}})
		if got := plan(t, dindSpec(), h); len(got) != 0 {
			t.Fatalf("want no change, got %+v", got)
		}
	})
	t.Run("differing container is recreated in the plan", func(t *testing.T) {
		h, d := dockerHost(t)
		runByHand(t, d, "gitlab-dind", "docker:27-dind", byHand{})
		changes := plan(t, dindSpec(), h)
		if len(changes) != 1 || changes[0].Action != tasks.Update || !strings.HasPrefix(changes[0].Summary, "recreate: ") {
			t.Fatalf("want a recreate, got %+v", changes)
		}
		apply(t, dindSpec(), h, changes)
		if again := plan(t, dindSpec(), h); len(again) != 0 {
			t.Fatalf("plan after apply: %+v", again)
		}
	})
	t.Run("same container appears between plan and apply", func(t *testing.T) {
		h, d := dockerHost(t)
		changes := plan(t, dindSpec(), h)
		runByHand(t, d, "gitlab-dind", "docker:27-dind", byHand{network: "gitlab-runner-net", restart: "always", privileged: true,
			env: []string{"DOCKER_TLS_CERTDIR="}, volumes: []string{"gitlab-dind-storage:/var/lib/docker"}, cmd: []string{"--storage-driver=overlay2"}})
		apply(t, dindSpec(), h, changes)
	})
	t.Run("differing container appears between plan and apply", func(t *testing.T) {
		h, d := dockerHost(t)
		changes := plan(t, dindSpec(), h)
		runByHand(t, d, "gitlab-dind", "docker:27-dind", byHand{})
		err := dindSpec().Apply(context.Background(), h, changes)
		if err == nil || !strings.Contains(err.Error(), "created by something else after the plan") || !strings.Contains(err.Error(), "run plan again") {
			t.Fatalf("want a clear message, got %v", err)
		}
		if strings.Contains(err.Error(), "already in use") {
			t.Errorf("docker's raw message surfaced: %v", err)
		}
	})
}

func TestContainerStoppedIsStarted(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	d.Stop("gitlab-dind")
	changes := plan(t, dindSpec(), h)
	want := []tasks.Field{{Name: "state", Old: "exited", New: "running"}}
	if len(changes) != 1 || changes[0].Summary != "start" || !reflect.DeepEqual(changes[0].Fields, want) {
		t.Fatalf("want a start, got %+v", changes)
	}
	id := d.ContainerID("gitlab-dind")
	apply(t, dindSpec(), h, changes)
	if !d.Running("gitlab-dind") || d.ContainerID("gitlab-dind") != id {
		t.Fatal("container not started in place")
	}
	if again := plan(t, dindSpec(), h); len(again) != 0 {
		t.Fatalf("plan after apply: %+v", again)
	}
}

func TestContainerPausedIsUnpaused(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	d.Pause("gitlab-dind")
	changes := plan(t, dindSpec(), h)
	if len(changes) != 1 || changes[0].Summary != "unpause" {
		t.Fatalf("want an unpause, got %+v", changes)
	}
	apply(t, dindSpec(), h, changes)
	if again := plan(t, dindSpec(), h); len(again) != 0 {
		t.Fatalf("plan after apply: %+v", again)
	}
}

func TestContainerStartFailureCarriesDockerMessage(t *testing.T) {
	h, d := dockerHost(t)
	d.FailStart("gitlab-dind", "failed to create shim task: OCI runtime create failed: unable to apply caps: operation not permitted: unknown")
	changes := plan(t, dindSpec(), h)
	err := dindSpec().Apply(context.Background(), h, changes)
	if err == nil || !strings.Contains(err.Error(), "unable to apply caps") {
		t.Fatalf("want docker's start error, got %v", err)
	}
	// The container exists but is not running: the next plan starts it.
	if got := plan(t, dindSpec(), h); len(got) != 1 || got[0].Summary != "start" {
		t.Fatalf("want a start next, got %+v", got)
	}
}

func TestContainerAbsent(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, runnerSpec(), h)
	gone := &tasks.DockerContainer{Name: "gitlab-runner", State: "absent"}
	changes := tasktest.Converge(t, gone, h)
	if len(changes) != 1 || changes[0].Action != tasks.Delete {
		t.Fatalf("want a delete, got %+v", changes)
	}
	if slices.Contains(d.ContainerNames(), "gitlab-runner") {
		t.Fatal("container still there")
	}
	for _, v := range d.Volumes() {
		if len(v) == 64 {
			t.Errorf("anonymous volume %s left behind", v)
		}
	}
}

func TestContainerNormalisedForms(t *testing.T) {
	// Docker 20.10 stores capabilities, security options and volumes as
	// given: other spellings of the same thing are not drift.
	h, d := dockerHost(t)
	runByHand(t, d, "gitlab-dind", "docker:27-dind", byHand{network: "gitlab-runner-net", restart: "always",
		capAdd: []string{"all"}, capDrop: []string{"CAP_SYS_RESOURCE"}, secOpt: []string{"seccomp:unconfined", "apparmor=unconfined"},
		env: []string{"DOCKER_TLS_CERTDIR="}, volumes: []string{"gitlab-dind-storage:/var/lib/docker:rw", "/sys/fs/cgroup/:/sys/fs/cgroup"},
		cmd: []string{"--storage-driver=overlay2"}})
	if got := plan(t, fleetDindSpec(), h); len(got) != 0 {
		t.Fatalf("normalised forms reported as drift: %+v", got)
	}
}

func TestContainerIdempotent(t *testing.T) {
	three := 3
	specs := map[string]func() *tasks.DockerContainer{
		"shipped dind":   dindSpec,
		"fleet dind":     fleetDindSpec,
		"shipped runner": runnerSpec,
		"minimal":        func() *tasks.DockerContainer { return &tasks.DockerContainer{Name: "min", Image: "docker:27-dind"} },
		"everything": func() *tasks.DockerContainer {
			return &tasks.DockerContainer{Name: "all-options", Image: "gitlab/gitlab-runner:alpine-v17.11.0",
				Entrypoint: []string{"/bin/sh"}, Command: []string{"-c", "sleep infinity"},
				Env:      map[string]string{"A": "1", "EMPTY": "", "SPACES": "  a b  ", "QUOTES": `"x" 'y'`},
				Networks: []string{"gitlab-runner-net", "bridge"}, RestartPolicy: "on-failure",
				CapAdd: []string{"net_admin", "CAP_SYS_PTRACE"}, CapDrop: []string{"mknod"},
				SecurityOpt: []string{"no-new-privileges", "seccomp:unconfined"},
				Volumes:     []string{"data:/data:ro", "/etc/hosts:/etc/extra-hosts:ro,z", "/anon"},
				Labels:      map[string]string{"team": "ci", "empty": ""}, StopTimeout: &three}
		},
		"entrypoint only": func() *tasks.DockerContainer {
			return &tasks.DockerContainer{Name: "ep", Image: "docker:27-dind", Entrypoint: []string{"dockerd"}}
		},
	}
	for _, newer := range []bool{false, true} {
		for name, spec := range specs {
			if newer {
				name = "newer docker/" + name
			}
			t.Run(name, func(t *testing.T) {
				h, d := dockerHost(t)
				d.Newer = newer
				tasktest.Converge(t, spec(), h)
				// A second apply on a converged host changes nothing either.
				tasktest.Converge(t, &tasks.DockerContainer{Name: spec().Name, State: "absent"}, h)
				tasktest.Converge(t, spec(), h)
			})
		}
	}
}

// A host that offers no Docker Engine API fails the plan, saying so.
func TestContainerWithoutDockerAPIIsAnError(t *testing.T) {
	_, err := dindSpec().Plan(context.Background(), tasktest.New())
	if !errors.Is(err, tasks.ErrNoDockerAPI) {
		t.Fatalf("want ErrNoDockerAPI, got %v", err)
	}
}

func TestContainerValidate(t *testing.T) {
	neg := -1
	cases := []struct {
		field  string
		change func(c *tasks.DockerContainer)
	}{
		{"name", func(c *tasks.DockerContainer) { c.Name = "" }},
		{"name", func(c *tasks.DockerContainer) { c.Name = "-rm" }},
		{"image", func(c *tasks.DockerContainer) { c.Image = "" }},
		{"image", func(c *tasks.DockerContainer) { c.Image = "docker 27" }},
		{"state", func(c *tasks.DockerContainer) { c.State = "running" }},
		{"restart_policy", func(c *tasks.DockerContainer) { c.RestartPolicy = "sometimes" }},
		{"pull", func(c *tasks.DockerContainer) { c.Pull = "daily" }},
		{"entrypoint", func(c *tasks.DockerContainer) { c.Entrypoint = []string{"sh", "-c"} }},
		{"env", func(c *tasks.DockerContainer) { c.Env = map[string]string{"": "x"} }},
		{"env", func(c *tasks.DockerContainer) { c.Env = map[string]string{"A B": "x"} }},
		{"env", func(c *tasks.DockerContainer) { c.Env = map[string]string{"A": "line\nbreak"} }},
		{"networks", func(c *tasks.DockerContainer) { c.Networks = []string{"host", "gitlab-runner-net"} }},
		{"networks", func(c *tasks.DockerContainer) { c.Networks = []string{"a-net", "a-net"} }},
		{"cap_add", func(c *tasks.DockerContainer) { c.CapAdd = []string{"NET ADMIN"} }},
		{"cap_drop", func(c *tasks.DockerContainer) { c.CapDrop = []string{""} }},
		{"security_opt", func(c *tasks.DockerContainer) { c.SecurityOpt = []string{"seccomp=/etc/profile.json"} }},
		{"security_opt", func(c *tasks.DockerContainer) { c.SecurityOpt = []string{"bogus"} }},
		{"volumes", func(c *tasks.DockerContainer) { c.Volumes = []string{"relative/path:/x"} }},
		{"volumes", func(c *tasks.DockerContainer) { c.Volumes = []string{"data:relative"} }},
		{"volumes", func(c *tasks.DockerContainer) { c.Volumes = []string{"data:/x:rx"} }},
		{"volumes", func(c *tasks.DockerContainer) { c.Volumes = []string{"data:/x:ro,rw"} }},
		{"volumes", func(c *tasks.DockerContainer) { c.Volumes = []string{"a:/x", "/x"} }},
		{"volumes", func(c *tasks.DockerContainer) { c.Volumes = []string{"a:/b:ro:z"} }},
		{"labels", func(c *tasks.DockerContainer) { c.Labels = map[string]string{"a=b": "c"} }},
		{"stop_timeout", func(c *tasks.DockerContainer) { c.StopTimeout = &neg }},
	}
	for _, tc := range cases {
		c := fleetDindSpec()
		tc.change(c)
		err := c.Validate()
		var fe *tasks.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: want a FieldError for %s, got %v", tc.field, tc.field, err)
		}
	}
	for _, c := range []*tasks.DockerContainer{dindSpec(), fleetDindSpec(), runnerSpec(), {Name: "gone", State: "absent"}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
}

// The options decode from a playbook's YAML under their docker run names.
func TestContainerDecodesFromYAML(t *testing.T) {
	src := `
name: gitlab-dind
image: docker:27-dind
command: [--storage-driver=overlay2]
env:
  DOCKER_TLS_CERTDIR: ""
  WORKERS: 4
networks: [gitlab-runner-net]
restart_policy: always
privileged: true
cap_add: [ALL]
cap_drop: [SYS_RESOURCE]
security_opt: [seccomp=unconfined]
volumes: [gitlab-dind-storage:/var/lib/docker]
labels: {team: ci}
pull: missing
stop_timeout: 10
`
	var c tasks.DockerContainer
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Env["DOCKER_TLS_CERTDIR"] != "" || c.Env["WORKERS"] != "4" || c.StopTimeout == nil || *c.StopTimeout != 10 ||
		!c.Privileged || c.RestartPolicy != "always" || c.Labels["team"] != "ci" {
		t.Errorf("decoded %+v", c)
	}
	var n tasks.DockerNetwork
	dec = yaml.NewDecoder(strings.NewReader("name: gitlab-runner-net\ndriver: bridge\noptions: {com.docker.network.driver.mtu: 1400}\nlabels: {a: b}\nstate: present\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&n); err != nil {
		t.Fatal(err)
	}
	if n.Options["com.docker.network.driver.mtu"] != "1400" {
		t.Errorf("decoded %+v", n)
	}
}

// A key the container sets over its image's value is drift when the task no
// longer names it: the recreated container gets the image's value back
// (DOCKER_TLS_CERTDIR=/certs turns TLS on and dind crash-loops), so the plan
// shows it, for env and labels alike.
func TestContainerDroppedOverrideOfImageValueIsDrift(t *testing.T) {
	h, d := dockerHost(t)
	c := dindSpec()
	c.Labels = map[string]string{"org.opencontainers.image.source": "elsewhere"}
	tasktest.Converge(t, c, h)

	c = dindSpec()
	c.Env = map[string]string{"A": "1"}
	changes := plan(t, c, h)
	if len(changes) != 1 || changes[0].Summary != "recreate: env, labels changed" {
		t.Fatalf("want env and labels to change, got %+v", changes)
	}
	want := []tasks.Field{
		{Name: "env", Old: "DOCKER_TLS_CERTDIR=", New: "A=1\nDOCKER_TLS_CERTDIR=/certs (image default)"},
		{Name: "labels", Old: "org.opencontainers.image.source=elsewhere",
			New: "org.opencontainers.image.source=https://github.com/docker-library/docker (image default)"},
	}
	if !reflect.DeepEqual(changes[0].Fields, want) {
		t.Errorf("fields = %+v\nwant     %+v", changes[0].Fields, want)
	}
	apply(t, c, h, changes)
	if !slices.Contains(d.Env("gitlab-dind"), "DOCKER_TLS_CERTDIR=/certs") {
		t.Errorf("the plan said the image's value comes back; env = %q", d.Env("gitlab-dind"))
	}
	if again := plan(t, c, h); len(again) != 0 {
		t.Fatalf("plan after apply: %+v", again)
	}
}

// When the image changes, the values that came with the container's old
// image change with it: they are part of the image change, not env drift.
// An override the task dropped still is.
func TestContainerNewImageValuesAreNotEnvDrift(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	newer := dindImage
	newer.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DOCKER_VERSION=27.5.2",
		"DOCKER_TLS_CERTDIR=/certs"}
	d.AddImage("docker:27-dind", newer) // the tag moved; DIND_COMMIT is gone

	changes := plan(t, dindSpec(), h)
	if len(changes) != 1 || !reflect.DeepEqual(fieldNames(changes[0].Fields), []string{"image"}) {
		t.Fatalf("want only image to change, got %+v", changes)
	}

	c := dindSpec()
	c.Env = nil
	changes = plan(t, c, h)
	if len(changes) != 1 || !reflect.DeepEqual(fieldNames(changes[0].Fields), []string{"env", "image"}) {
		t.Fatalf("want env and image to change, got %+v", changes)
	}
	if f := changes[0].Fields[0]; f.Old != "DOCKER_TLS_CERTDIR=" || f.New != "DOCKER_TLS_CERTDIR=/certs (image default)" {
		t.Errorf("env field = %+v", f)
	}
	apply(t, c, h, changes)
	if again := plan(t, c, h); len(again) != 0 {
		t.Fatalf("plan after apply: %+v", again)
	}
}

// A container whose spec matches but which docker keeps restarting is not
// up to date: the plan fails, naming it, its state, its last exit code and
// how to see why.
func TestContainerCrashLoopFailsPlan(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	d.CrashLoop("gitlab-dind", 1)
	d.CrashLoop("gitlab-dind", 1)
	h.Freeze()
	changes, err := dindSpec().Plan(context.Background(), h)
	h.Thaw()
	if err == nil {
		t.Fatalf("a crash-looping container planned as %+v", changes)
	}
	for _, want := range []string{"gitlab-dind", "state restarting", "last exit code 1", "restarted 2 times", "docker logs gitlab-dind"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// A spec change still recreates it: that may well be the fix.
	c := dindSpec()
	c.Command = []string{"--storage-driver=vfs"}
	if got := plan(t, c, h); len(got) != 1 || got[0].Summary != "recreate: command changed" {
		t.Fatalf("want a recreate, got %+v", got)
	}
	// Stopped, it is started as before, with a note of how it ended.
	d.Stop("gitlab-dind")
	got := plan(t, dindSpec(), h)
	if len(got) != 1 || got[0].Summary != "start" || len(got[0].Warnings) != 1 ||
		!strings.Contains(got[0].Warnings[0], "exited with code 1") || !strings.Contains(got[0].Warnings[0], "docker logs gitlab-dind") {
		t.Fatalf("want a start with a warning, got %+v", got)
	}
}

func TestContainerStartWarnings(t *testing.T) {
	h, d := dockerHost(t)
	tasktest.Converge(t, dindSpec(), h)
	d.Stop("gitlab-dind")
	if got := plan(t, dindSpec(), h); len(got) != 1 || len(got[0].Warnings) != 0 {
		t.Fatalf("a container stopped by docker stop: %+v", got)
	}
	if err := d.Start("gitlab-dind"); err != nil {
		t.Fatal(err)
	}
	d.Exit("gitlab-dind", 2)
	if got := plan(t, dindSpec(), h); len(got) != 1 || len(got[0].Warnings) != 1 || !strings.Contains(got[0].Warnings[0], "code 2") {
		t.Fatalf("want a warning about exit code 2: %+v", got)
	}
	h, d = dockerHost(t)
	d.FailStart("gitlab-dind", "failed to create shim task: OCI runtime create failed: boom: unknown")
	changes := plan(t, dindSpec(), h)
	if err := dindSpec().Apply(context.Background(), h, changes); err == nil {
		t.Fatal("start did not fail")
	}
	if got := plan(t, dindSpec(), h); len(got) != 1 || len(got[0].Warnings) != 1 || !strings.Contains(got[0].Warnings[0], "OCI runtime create failed: boom") {
		t.Fatalf("want docker's start error as a warning: %+v", got)
	}
}

// A pull sends the registry credentials the host's docker CLI would use
// (inline auths in ~/.docker/config.json of the user docker runs as), in
// the API request's X-Registry-Auth header only: never in a command line
// or in a change.
func TestContainerPullUsesTheHostsRegistryCredentials(t *testing.T) {
	for _, tc := range []struct{ image, key, user, pass string }{
		{"example/app:1", "https://index.docker.io/v1/", "hubuser", "hub-secret-1"},
		{"registry.example.com:5000/team/app:1", "registry.example.com:5000", "ci", "private-secret-2"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			h, d := dockerHost(t)
			d.AddRegistryImage(tc.image, tasktest.DockerImage{Cmd: []string{"app"}})
			auth := base64.StdEncoding.EncodeToString([]byte(tc.user + ":" + tc.pass))
			cfg := `{"auths": {"` + tc.key + `": {"auth": "` + auth + `"}, "other.example.com": {"auth": "b3RoZXI6b3RoZXI="}}}`
			h.Handle("sh", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
				// The script prints ${DOCKER_CONFIG:-$HOME/.docker}/config.json.
				if len(args) == 3 && args[1] == "-c" && strings.Contains(args[2], "config.json") {
					return tasks.Output{Stdout: []byte(cfg)}
				}
				return tasks.Output{ExitCode: 127}
			})
			c := &tasks.DockerContainer{Name: "app", Image: tc.image}
			changes := tasktest.Converge(t, c, h)
			raw, err := base64.URLEncoding.DecodeString(d.PullAuth(tc.image))
			if err != nil {
				t.Fatalf("X-Registry-Auth %q: %v", d.PullAuth(tc.image), err)
			}
			var got struct{ Username, Password, ServerAddress string }
			if err := json.Unmarshal(raw, &got); err != nil || got.Username != tc.user || got.Password != tc.pass || got.ServerAddress != tc.key {
				t.Errorf("X-Registry-Auth = %s (%v)", raw, err)
			}
			if a := d.DistributionAuth(tc.image); a != d.PullAuth(tc.image) {
				t.Errorf("the plan's registry check sent X-Registry-Auth %q, the pull %q", a, d.PullAuth(tc.image))
			}
			for _, cmd := range h.Commands {
				if strings.Contains(strings.Join(cmd, " "), tc.pass) || strings.Contains(strings.Join(cmd, " "), auth) {
					t.Errorf("a secret in a command: %q", cmd)
				}
			}
			if b, _ := json.Marshal(changes); strings.Contains(string(b), tc.pass) || strings.Contains(string(b), auth) {
				t.Error("a secret in a change")
			}
		})
	}
	// No credentials for the registry: the pull goes anonymous.
	h, d := dockerHost(t)
	d.AddRegistryImage("busybox", tasktest.DockerImage{Cmd: []string{"sh"}})
	tasktest.Converge(t, &tasks.DockerContainer{Name: "bb", Image: "busybox"}, h)
	if a := d.PullAuth("busybox"); a != "" {
		t.Errorf("anonymous pull sent %q", a)
	}
}

// What create sends is what `docker run` would: an anonymous "-v /path" in
// Config.Volumes, the others as binds; the first network at create, the
// others connected before the start.
func TestContainerCreateRequest(t *testing.T) {
	h, d := dockerHost(t)
	d.AddNetwork("other-net", client.NetworkCreateOptions{})
	c := runnerSpec()
	c.Networks = []string{"gitlab-runner-net", "other-net"}
	c.Volumes = append(c.Volumes, "/scratch", "cache:/cache:ro")
	tasktest.Converge(t, c, h)
	var order []string
	for _, call := range apiCalls(h) {
		switch call[0] {
		case "ContainerCreate", "NetworkConnect", "ContainerStart":
			order = append(order, strings.Join(call, " "))
		}
	}
	want := []string{"ContainerCreate gitlab-runner", "NetworkConnect other-net gitlab-runner", "ContainerStart gitlab-runner"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("calls %q, want %q", order, want)
	}
	got := d.Container("gitlab-runner")
	if _, ok := got.Config.Volumes["/scratch"]; !ok || !slices.Contains(got.HostConfig.Binds, "cache:/cache:ro") ||
		!slices.Contains(got.HostConfig.Binds, "/srv/gitlab-runner/config:/etc/gitlab-runner") || slices.Contains(got.HostConfig.Binds, "/scratch") {
		t.Errorf("volumes %v, binds %v", got.Config.Volumes, got.HostConfig.Binds)
	}
	if string(got.HostConfig.NetworkMode) != "gitlab-runner-net" || len(d.Endpoints("gitlab-runner")) != 2 {
		t.Errorf("network mode %q, endpoints %v", got.HostConfig.NetworkMode, d.Endpoints("gitlab-runner"))
	}
}

// The runner network deleted (and created anew by the network task) under
// stopped containers: docker cannot start them, so the plan is a
// recreation, which apply makes; then the plan is empty. Before, plan
// predicted "start" on every run and apply failed on every run.
func TestContainerWhoseNetworkWasDeletedWhileStopped(t *testing.T) {
	h, d := dockerHost(t)
	c := dindSpec()
	tasktest.Converge(t, c, h)
	d.Stop("gitlab-dind")
	d.RemoveNetwork("gitlab-runner-net")
	d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{})
	changes := tasktest.Converge(t, c, h)
	if len(changes) != 1 || changes[0].Summary != "recreate: its network gitlab-runner-net was deleted while it was stopped" {
		t.Fatalf("changes %+v", changes)
	}
	if !d.Running("gitlab-dind") {
		t.Fatal("dind does not run after the recreation")
	}
}
