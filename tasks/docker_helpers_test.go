package tasks_test

// What the tests of the docker task kinds share: images shaped like the
// real ones, the shipped playbook's container specs, a host with a fake
// engine, and plan/apply helpers.

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// Images shaped like the real ones the shipped playbook uses.
var (
	dindImage = tasktest.DockerImage{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DOCKER_VERSION=27.5.1",
			"DOCKER_TLS_CERTDIR=/certs", "DIND_COMMIT=65cfcc28ab37cb75e1560e4b4738719c07c6618e"},
		Entrypoint: []string{"dockerd-entrypoint.sh"},
		Volumes:    []string{"/var/lib/docker"},
		Labels:     map[string]string{"org.opencontainers.image.source": "https://github.com/docker-library/docker"},
	}
	runnerImage = tasktest.DockerImage{
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Entrypoint: []string{"/usr/bin/dumb-init", "/entrypoint"},
		Cmd:        []string{"run", "--user=gitlab-runner", "--working-directory=/home/gitlab-runner"},
		Volumes:    []string{"/etc/gitlab-runner", "/home/gitlab-runner"},
	}
)

// dockerHost is a test host with a fake docker that has both images and the
// runner network.
func dockerHost(t *testing.T) (*tasktest.Host, *tasktest.Docker) {
	t.Helper()
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.AddImage("docker:27-dind", dindImage)
	d.AddImage("gitlab/gitlab-runner:alpine-v17.11.0", runnerImage)
	d.AddNetwork("gitlab-runner-net", client.NetworkCreateOptions{})
	return h, d
}

// dindSpec is the shipped playbook's dind container with its defaults.
func dindSpec() *tasks.DockerContainer {
	return &tasks.DockerContainer{
		Name:          "gitlab-dind",
		Image:         "docker:27-dind",
		Command:       []string{"--storage-driver=overlay2"},
		Env:           map[string]string{"DOCKER_TLS_CERTDIR": ""},
		Networks:      []string{"gitlab-runner-net"},
		RestartPolicy: "always",
		Privileged:    true,
		CapAdd:        []string{},
		CapDrop:       []string{},
		SecurityOpt:   []string{},
		Volumes:       []string{"gitlab-dind-storage:/var/lib/docker"},
	}
}

// fleetDindSpec is the variant the local fleet of nested containers uses.
func fleetDindSpec() *tasks.DockerContainer {
	c := dindSpec()
	c.Privileged = false
	c.CapAdd = []string{"ALL"}
	c.CapDrop = []string{"SYS_RESOURCE"}
	c.SecurityOpt = []string{"seccomp=unconfined", "apparmor=unconfined"}
	c.Volumes = []string{"gitlab-dind-storage:/var/lib/docker", "/sys/fs/cgroup:/sys/fs/cgroup:rw"}
	return c
}

// runnerSpec is the shipped playbook's runner container.
func runnerSpec() *tasks.DockerContainer {
	return &tasks.DockerContainer{
		Name:          "gitlab-runner",
		Image:         "gitlab/gitlab-runner:alpine-v17.11.0",
		Env:           map[string]string{"DOCKER_HOST": "tcp://gitlab-dind:2375"},
		Networks:      []string{"gitlab-runner-net"},
		RestartPolicy: "always",
		Volumes:       []string{"/srv/gitlab-runner/config:/etc/gitlab-runner"},
	}
}

func plan(t *testing.T, task tasks.Task, h *tasktest.Host) []tasks.Change {
	t.Helper()
	h.Freeze()
	defer h.Thaw()
	changes, err := task.Plan(context.Background(), h)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return changes
}

func apply(t *testing.T, task tasks.Task, h *tasktest.Host, changes []tasks.Change) {
	t.Helper()
	if err := task.Apply(context.Background(), h, changes); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func fieldNames(fs []tasks.Field) []string {
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	return names
}

// apiCalls lists the Docker Engine API calls the host answered, in order,
// each as {method, args...}.
func apiCalls(h *tasktest.Host) [][]string {
	var calls [][]string
	for _, c := range h.Commands {
		if c[0] == "API" {
			calls = append(calls, c[1:])
		}
	}
	return calls
}

// calledAPI reports whether the host answered an API call starting with
// prefix ({method, args...}).
func calledAPI(h *tasktest.Host, prefix ...string) bool {
	for _, c := range apiCalls(h) {
		if len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

// commands lists the commands the host ran (not the API calls).
func commands(h *tasktest.Host) [][]string {
	var cmds [][]string
	for _, c := range h.Commands {
		if c[0] != "API" {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// byHand is a container as `docker run -d` would make it from these flags.
type byHand struct {
	network    string   // --network
	restart    string   // --restart
	privileged bool     // --privileged
	env        []string // -e KEY=value
	labels     map[string]string
	volumes    []string // -v: "src:/dst[:opts]" are binds, "/path" anonymous
	cmd        []string // after the image
	capAdd     []string
	capDrop    []string
	secOpt     []string // --security-opt
}

// runByHand creates and starts a container on the fake engine the way
// `docker run -d --name NAME ... IMAGE CMD...` would, as a test's set-up.
func runByHand(t *testing.T, d *tasktest.Docker, name, image string, m byHand) {
	t.Helper()
	cfg := &container.Config{Image: image, Env: m.env, Labels: m.labels, Cmd: m.cmd}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(m.network), Privileged: m.privileged,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(m.restart)},
		CapAdd:        m.capAdd, CapDrop: m.capDrop, SecurityOpt: m.secOpt}
	for _, v := range m.volumes {
		if strings.Contains(v, ":") {
			hc.Binds = append(hc.Binds, v)
			continue
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		cfg.Volumes[v] = struct{}{}
	}
	if err := d.RunContainer(client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc}); err != nil {
		t.Fatalf("docker run %s: %v", name, err)
	}
}
