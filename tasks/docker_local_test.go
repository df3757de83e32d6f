package tasks_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// sleeperSource is the program of the test image: it says "ready" once
// its signal handlers are in place, then waits for SIGTERM. (A signal that
// reaches PID 1 before the Go runtime has its handlers is dropped by the
// kernel: the tests wait for "ready" before they send one.)
const sleeperSource = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("ready")
	<-c
}
`

// TestDockerTasksOnLocalEngine runs both task kinds against the local docker
// engine through its Engine API (the real moby client on
// /var/run/docker.sock, its version negotiated), to prove that what they
// send comes back through the API's inspect exactly as they compare it. It
// is skipped when there is no working docker. The docker CLI serves only
// the test's own set-up and checks.
func TestDockerTasksOnLocalEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no real docker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	err := exec.CommandContext(ctx, "docker", "info").Run()
	cancel()
	if err != nil {
		t.Skipf("no working local docker engine (docker info: %v)", err)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain to build the test image's program")
	}

	sfx := randomSuffix(t)
	image := "dindops-test-" + sfx + ":1"
	buildTestImage(t, gobin, image)
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "-f", image).Run() })

	h := &tasktest.LocalHost{}
	t.Cleanup(func() { h.Close() })
	runOnLocalEngine(t, h, image, randomSuffix(t))
	for _, c := range h.Commands {
		if c[0] == "docker" {
			t.Errorf("a task ran the docker CLI: %q", c)
		}
	}
}

func randomSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// buildTestImage builds a static program that waits for SIGTERM and imports
// it as an image with ENV, LABEL, CMD and VOLUME of its own, like
// docker:dind has.
func buildTestImage(t *testing.T, gobin, image string) {
	t.Helper()
	src, root := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(sleeperSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module sleeper\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command(gobin, "build", "-o", filepath.Join(root, "sleeper"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tar := exec.Command("tar", "-C", root, "-c", ".")
	imp := exec.Command("docker", "import",
		"-c", `CMD ["/sleeper"]`, "-c", "ENV IMAGE_VAR=from-image PATH=/", "-c", "LABEL image.label=yes",
		"-c", "VOLUME /var/lib/docker", "-", image)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	imp.Stdin = pipe
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	if err := tar.Wait(); err != nil {
		t.Fatal(err)
	}
}

func runOnLocalEngine(t *testing.T, h *tasktest.LocalHost, image, sfx string) {
	ctx := context.Background()
	name, net1, net2, vol := "dindops-test-c-"+sfx, "dindops-test-a-"+sfx, "dindops-test-b-"+sfx, "dindops-test-v-"+sfx
	t.Cleanup(func() {
		docker := "docker"
		exec.Command(docker, "rm", "-f", "-v", name).Run()
		exec.Command(docker, "network", "rm", net1, net2).Run()
		exec.Command(docker, "volume", "rm", vol).Run()
	})
	converge := func(task tasks.Task) []tasks.Change {
		t.Helper()
		changes, err := task.Plan(ctx, h)
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		if len(changes) == 0 {
			t.Fatal("first plan reported no changes")
		}
		if err := task.Apply(ctx, h, changes); err != nil {
			t.Fatalf("apply: %v", err)
		}
		again, err := task.Plan(ctx, h)
		if err != nil {
			t.Fatalf("plan after apply: %v", err)
		}
		if len(again) != 0 {
			t.Fatalf("plan after apply still reports: %+v", again)
		}
		return changes
	}

	n1 := &tasks.DockerNetwork{Name: net1, Labels: map[string]string{"team": "ci"},
		Options: map[string]string{"com.docker.network.driver.mtu": "1400"}}
	n2 := &tasks.DockerNetwork{Name: net2}
	converge(n1)
	converge(n2)

	three := 3
	c := &tasks.DockerContainer{
		Name:          name,
		Image:         image,
		Entrypoint:    []string{"/sleeper"},
		Command:       []string{"--storage-driver=overlay2"},
		Env:           map[string]string{"DOCKER_TLS_CERTDIR": "", "SPACED": " a b "},
		Networks:      []string{net1, net2},
		RestartPolicy: "always",
		CapAdd:        []string{"ALL"},
		CapDrop:       []string{"SYS_RESOURCE"},
		SecurityOpt:   []string{"seccomp=unconfined", "apparmor=unconfined"},
		Volumes:       []string{vol + ":/var/lib/docker", t.TempDir() + ":/host:ro", "/scratch"},
		Labels:        map[string]string{"managed-by": "dindops"},
		StopTimeout:   &three,
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	converge(c)

	// Change env: the plan shows exactly env, and apply converges.
	c.Env["SPACED"] = "changed"
	changes, err := c.Plan(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !reflect.DeepEqual(fieldNames(changes[0].Fields), []string{"env"}) {
		t.Fatalf("want exactly env to differ, got %+v", changes)
	}
	if err := c.Apply(ctx, h, changes); err != nil {
		t.Fatal(err)
	}
	if again, err := c.Plan(ctx, h); err != nil || len(again) != 0 {
		t.Fatalf("plan after apply: %+v, %v", again, err)
	}

	// Network drift with the container attached: recreated, reconnected.
	n1.Labels = map[string]string{"team": "platform"}
	changes, err = n1.Plan(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || len(changes[0].Warnings) != 2 || !strings.Contains(changes[0].Warnings[1], name) {
		t.Fatalf("want a recreate warning naming %s, got %+v", name, changes)
	}
	// The recreate keeps the subnet and gateway (the task names none) and
	// the MTU option the task gives: only the labels change.
	if got := fieldNames(changes[0].Fields); !reflect.DeepEqual(got, []string{"labels"}) {
		t.Fatalf("recreate fields = %v: %+v", got, changes[0].Fields)
	}
	before, _ := exec.Command("docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", n1.Name).Output()
	if err := n1.Apply(ctx, h, changes); err != nil {
		t.Fatal(err)
	}
	if after, _ := exec.Command("docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", n1.Name).Output(); string(after) != string(before) || len(before) < 8 {
		t.Errorf("recreated network's subnet and gateway %q, were %q", after, before)
	}
	if again, err := n1.Plan(ctx, h); err != nil || len(again) != 0 {
		t.Fatalf("network plan after apply: %+v, %v", again, err)
	}
	if again, err := c.Plan(ctx, h); err != nil || len(again) != 0 {
		t.Fatalf("container plan after the network's recreation: %+v, %v", again, err)
	}

	// Internal, attachable, subnet and gateway come back through docker
	// network inspect as they are compared; a subnet written with host bits
	// is the same network.
	net3 := "dindops-test-i-" + sfx
	t.Cleanup(func() { exec.Command("docker", "network", "rm", net3).Run() })
	third := 100 + int(sfx[0])%100
	n3 := &tasks.DockerNetwork{Name: net3, Internal: true, Attachable: true,
		Subnet: fmt.Sprintf("10.231.%d.0/24", third), Gateway: fmt.Sprintf("10.231.%d.254", third)}
	if err := n3.Validate(); err != nil {
		t.Fatal(err)
	}
	converge(n3)
	n3.Subnet = fmt.Sprintf("10.231.%d.7/24", third)
	if again, err := n3.Plan(ctx, h); err != nil || len(again) != 0 {
		t.Fatalf("subnet with host bits: %+v, %v", again, err)
	}
	n3.Internal, n3.Attachable = false, false
	changes, err = n3.Plan(ctx, h)
	if err != nil || len(changes) != 1 || changes[0].Summary != "recreate: attachable, internal changed" {
		t.Fatalf("want internal and attachable to change: %+v, %v", changes, err)
	}
	if err := n3.Apply(ctx, h, changes); err != nil {
		t.Fatal(err)
	}
	if again, err := n3.Plan(ctx, h); err != nil || len(again) != 0 {
		t.Fatalf("network plan after apply: %+v, %v", again, err)
	}

	drainOnLocalEngine(t, h, image, sfx)

	// Remove everything.
	converge(&tasks.DockerContainer{Name: name, State: "absent"})
	converge(&tasks.DockerNetwork{Name: net1, State: "absent"})
	converge(&tasks.DockerNetwork{Name: net2, State: "absent"})
	converge(&tasks.DockerNetwork{Name: net3, State: "absent"})
}

// drainOnLocalEngine checks the docker behaviour drains rely on: a
// container of restart policy always that exits after `docker kill
// --signal` with its own stop signal stays stopped (moby's ExitOnNext),
// while one whose stop signal is another comes straight back, which is
// what a drain's plan warns of. The test image's program dies of SIGQUIT
// (Go's default), as gitlab-runner exits after its graceful shutdown.
func drainOnLocalEngine(t *testing.T, h *tasktest.LocalHost, image, sfx string) {
	ctx := context.Background()
	const docker = "docker"
	for _, tc := range []struct {
		stopSignal  string
		wantRestart bool
	}{{"SIGQUIT", false}, {"SIGTERM", true}} {
		name := "dindops-test-drain-" + strings.ToLower(tc.stopSignal) + "-" + sfx
		t.Cleanup(func() { exec.Command(docker, "rm", "-f", "-v", name).Run() })
		c := &tasks.DockerContainer{Name: name, Image: image, RestartPolicy: "always", StopSignal: tc.stopSignal,
			Drain: &tasks.Drain{Containers: []string{name}, Timeout: 3}}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		changes, err := c.Plan(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(ctx, h, changes); err != nil {
			t.Fatal(err)
		}
		gone := &tasks.DockerContainer{Name: name, State: "absent", Drain: c.Drain}
		changes, err = gone.Plan(ctx, h)
		if err != nil || len(changes) != 1 {
			t.Fatalf("plan of the removal: %+v %v", changes, err)
		}
		if w := strings.Join(changes[0].Warnings, "\n"); tc.wantRestart != strings.Contains(w, "docker restarts it") {
			t.Errorf("stop signal %s: warnings %q", tc.stopSignal, w)
		}
		for i := 0; i < 300; i++ {
			if out, _ := exec.Command(docker, "logs", name).Output(); strings.Contains(string(out), "ready") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if out, err := exec.Command(docker, "kill", "--signal=SIGQUIT", name).CombinedOutput(); err != nil {
			t.Fatalf("docker kill: %v %s", err, out)
		}
		var state string
		// Up to 30 s for the restart: a loaded machine is slow to restart a
		// container (the loop ends as soon as it has).
		for i := 0; i < 300; i++ {
			time.Sleep(100 * time.Millisecond)
			out, err := exec.Command(docker, "inspect", "-f", "{{.State.Running}} {{.RestartCount}}", name).Output()
			if err != nil {
				t.Fatal(err)
			}
			state = strings.TrimSpace(string(out))
			if (tc.wantRestart && state == "true 1") || (!tc.wantRestart && state == "false 0" && i >= 20) {
				break
			}
		}
		if want := map[bool]string{true: "true 1", false: "false 0"}[tc.wantRestart]; state != want {
			t.Errorf("stop signal %s: after docker kill --signal=SIGQUIT the container is %q (running, restarts), want %q", tc.stopSignal, state, want)
		}
		if err := gone.Apply(ctx, h, changes); err != nil {
			t.Fatal(err)
		}
	}
}
