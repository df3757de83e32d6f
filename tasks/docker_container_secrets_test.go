package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

const hubPassword = "dckr_pat_s3cr3t-value"

// mirrorSpec is the shipped playbook's pull-through cache with its Docker
// Hub password from $HUB_TOKEN, changed by mod, then prepared with env as
// the controller's environment.
func mirrorSpec(t *testing.T, env map[string]string, mod func(*tasks.DockerContainer)) *tasks.DockerContainer {
	t.Helper()
	c := &tasks.DockerContainer{
		Name:          "gitlab-registry-mirror",
		Image:         "registry:2",
		Env:           map[string]string{"REGISTRY_PROXY_REMOTEURL": "https://registry-1.docker.io", "REGISTRY_PROXY_USERNAME": "ci"},
		SecretEnv:     map[string]tasks.SecretSource{"REGISTRY_PROXY_PASSWORD": {Env: "HUB_TOKEN"}},
		Networks:      []string{"gitlab-runner-net"},
		RestartPolicy: "always",
		Volumes:       []string{"gitlab-registry-mirror-storage:/var/lib/registry"},
	}
	if mod != nil {
		mod(c)
	}
	prepare(t, c, env)
	return c
}

func prepare(t *testing.T, c *tasks.DockerContainer, env map[string]string) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if err := c.Prepare(secretController(env)); err != nil {
		t.Fatalf("prepare: %v", err)
	}
}

func secretController(env map[string]string) tasks.Controller {
	return tasks.Controller{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		ReadFile:  os.ReadFile,
	}
}

func registryHost(t *testing.T) (*tasktest.Host, *tasktest.Docker) {
	t.Helper()
	h, d := dockerHost(t)
	d.AddImage("registry:2", tasktest.DockerImage{
		Entrypoint: []string{"/entrypoint.sh"}, Cmd: []string{"/etc/docker/registry/config.yml"}, Volumes: []string{"/var/lib/registry"},
	})
	return h, d
}

// noSecret fails when any change, in any rendering, holds one of the
// secrets.
func noSecret(t *testing.T, changes []tasks.Change, secrets ...string) {
	t.Helper()
	b, err := json.Marshal(changes)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			t.Errorf("a change shows the secret: %s", b)
		}
	}
}

func hasLine(s, line string) bool { return slices.Contains(strings.Split(s, "\n"), line) }

func field(changes []tasks.Change, name string) (tasks.Field, bool) {
	for _, c := range changes {
		for _, f := range c.Fields {
			if f.Name == name {
				return f, true
			}
		}
	}
	return tasks.Field{}, false
}

// A secret goes to the container in the API request, the plan shows it
// masked, and plan after apply is empty.
func TestContainerSecretEnvIsSentAndMasked(t *testing.T) {
	h, d := registryHost(t)
	c := mirrorSpec(t, map[string]string{"HUB_TOKEN": hubPassword}, nil)
	changes := tasktest.Converge(t, c, h)
	noSecret(t, changes, hubPassword)
	env, _ := field(changes, "env")
	if !strings.Contains(env.New, "REGISTRY_PROXY_PASSWORD=(sensitive value)\n") || !strings.Contains(env.New, "REGISTRY_PROXY_USERNAME=ci") {
		t.Errorf("create shows env %q", env.New)
	}
	if labels, _ := field(changes, "labels"); labels.New != "io.dindops.secret-env=REGISTRY_PROXY_PASSWORD" {
		t.Errorf("create shows labels %q", labels.New)
	}
	if !slices.Contains(d.Env("gitlab-registry-mirror"), "REGISTRY_PROXY_PASSWORD="+hubPassword) {
		t.Errorf("the container's env lacks the secret: %q", d.Env("gitlab-registry-mirror"))
	}
	if cmds := commands(h); len(cmds) != 0 {
		t.Errorf("commands run on the host: %q", cmds)
	}
}

// Another secret is drift: the container is recreated with it, and the
// plan says the value changed without showing either value.
func TestContainerSecretEnvChangeIsDriftShownMasked(t *testing.T) {
	h, d := registryHost(t)
	tasktest.Converge(t, mirrorSpec(t, map[string]string{"HUB_TOKEN": hubPassword}, nil), h)
	const next = "dckr_pat_another-one"
	c := mirrorSpec(t, map[string]string{"HUB_TOKEN": next}, nil)
	changes := plan(t, c, h)
	if len(changes) != 1 || changes[0].Summary != "recreate: env changed" {
		t.Fatalf("want a recreate for env, got %+v", changes)
	}
	noSecret(t, changes, hubPassword, next)
	env, _ := field(changes, "env")
	if !hasLine(env.Old, "REGISTRY_PROXY_PASSWORD=(sensitive value)") || !hasLine(env.New, "REGISTRY_PROXY_PASSWORD=(sensitive value) (changed)") {
		t.Errorf("env field old %q new %q", env.Old, env.New)
	}
	apply(t, c, h, changes)
	if !slices.Contains(d.Env("gitlab-registry-mirror"), "REGISTRY_PROXY_PASSWORD="+next) {
		t.Errorf("the new secret is not in the container: %q", d.Env("gitlab-registry-mirror"))
	}
	if again := plan(t, c, h); len(again) != 0 {
		t.Errorf("plan after apply: %+v", again)
	}
}

// A secret no longer given (its source empty, or gone from the task) is
// removed from the container, masked: the label names it.
func TestContainerSecretEnvRemovedStaysMasked(t *testing.T) {
	for _, how := range []string{"source empty", "entry gone"} {
		t.Run(how, func(t *testing.T) {
			h, d := registryHost(t)
			tasktest.Converge(t, mirrorSpec(t, map[string]string{"HUB_TOKEN": hubPassword}, nil), h)
			c := mirrorSpec(t, nil, func(c *tasks.DockerContainer) {
				c.SecretEnv = nil
				if how == "source empty" {
					c.SecretEnv = map[string]tasks.SecretSource{"REGISTRY_PROXY_PASSWORD": {}}
				}
			})
			changes := plan(t, c, h)
			noSecret(t, changes, hubPassword)
			env, _ := field(changes, "env")
			if !hasLine(env.Old, "REGISTRY_PROXY_PASSWORD=(sensitive value)") || strings.Contains(env.New, "REGISTRY_PROXY_PASSWORD") {
				t.Errorf("env field old %q new %q", env.Old, env.New)
			}
			if labels, _ := field(changes, "labels"); labels.Old != "io.dindops.secret-env=REGISTRY_PROXY_PASSWORD" || labels.New != "" {
				t.Errorf("labels field %+v", labels)
			}
			apply(t, c, h, changes)
			for _, e := range d.Env("gitlab-registry-mirror") {
				if strings.HasPrefix(e, "REGISTRY_PROXY_PASSWORD=") {
					t.Errorf("the secret stayed: the container has %s", strings.SplitN(e, "=", 2)[0])
				}
			}
			if again := plan(t, c, h); len(again) != 0 {
				t.Errorf("plan after apply: %+v", again)
			}
		})
	}
}

// A secret read from a file: its trailing newline is not part of it; a
// file other users can read is refused before any host is contacted.
func TestContainerSecretEnvFromFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hub-token")
	if err := os.WriteFile(path, []byte(hubPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, d := registryHost(t)
	c := mirrorSpec(t, nil, func(c *tasks.DockerContainer) {
		c.SecretEnv = map[string]tasks.SecretSource{"REGISTRY_PROXY_PASSWORD": {File: path}}
	})
	tasktest.Converge(t, c, h)
	if !slices.Contains(d.Env("gitlab-registry-mirror"), "REGISTRY_PROXY_PASSWORD="+hubPassword) {
		t.Errorf("the container's env lacks the secret from the file")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Prepare(secretController(nil))
	var fe *tasks.FieldError
	if !errors.As(err, &fe) || fe.Field != "secret_env.REGISTRY_PROXY_PASSWORD.file" || !strings.Contains(err.Error(), "readable by other users") {
		t.Errorf("a file readable by others: %v", err)
	}
}

// What is wrong with a secret fails Validate or Prepare, naming the
// option, and never shows a value.
func TestContainerSecretEnvErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		mod   func(*tasks.DockerContainer)
		env   map[string]string
		field string
		want  string
	}{
		{"also in env", func(c *tasks.DockerContainer) { c.Env["REGISTRY_PROXY_PASSWORD"] = "x" }, nil, "secret_env.REGISTRY_PROXY_PASSWORD", "in env too"},
		{"both sources", func(c *tasks.DockerContainer) {
			c.SecretEnv["REGISTRY_PROXY_PASSWORD"] = tasks.SecretSource{Env: "HUB_TOKEN", File: "/x"}
		}, nil, "secret_env.REGISTRY_PROXY_PASSWORD", "not both"},
		{"bad name", func(c *tasks.DockerContainer) { c.SecretEnv["A B"] = tasks.SecretSource{Env: "HUB_TOKEN"} }, nil, "secret_env", "invalid variable name"},
		{"own label", func(c *tasks.DockerContainer) { c.Labels = map[string]string{"io.dindops.secret-env": "X"} }, nil, "labels", "dindops's own label"},
		{"variable unset", func(*tasks.DockerContainer) {}, map[string]string{}, "secret_env.REGISTRY_PROXY_PASSWORD.env", "HUB_TOKEN is not set"},
		{"variable empty", func(*tasks.DockerContainer) {}, map[string]string{"HUB_TOKEN": ""}, "secret_env.REGISTRY_PROXY_PASSWORD", "is empty"},
		{"two lines", func(*tasks.DockerContainer) {}, map[string]string{"HUB_TOKEN": hubPassword + "\nx"}, "secret_env.REGISTRY_PROXY_PASSWORD", "several lines"},
		{"file missing", func(c *tasks.DockerContainer) {
			c.SecretEnv["REGISTRY_PROXY_PASSWORD"] = tasks.SecretSource{File: missing}
		}, nil, "secret_env.REGISTRY_PROXY_PASSWORD.file", "cannot read"},
		{"file empty", func(c *tasks.DockerContainer) {
			c.SecretEnv["REGISTRY_PROXY_PASSWORD"] = tasks.SecretSource{File: empty}
		}, nil, "secret_env.REGISTRY_PROXY_PASSWORD", "is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &tasks.DockerContainer{
				Name: "mirror", Image: "registry:2", Env: map[string]string{},
				SecretEnv: map[string]tasks.SecretSource{"REGISTRY_PROXY_PASSWORD": {Env: "HUB_TOKEN"}},
			}
			tc.mod(c)
			err := c.Validate()
			if err == nil {
				err = c.Prepare(secretController(tc.env))
			}
			var fe *tasks.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (field %v), want field %s saying %q", err, fe, tc.field, tc.want)
			}
			if strings.Contains(err.Error(), hubPassword) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

// A container to be removed needs no secret: nothing is read.
func TestContainerSecretEnvNotReadWhenAbsent(t *testing.T) {
	c := &tasks.DockerContainer{Name: "mirror", State: "absent", SecretEnv: map[string]tasks.SecretSource{"P": {File: "/nonexistent"}}}
	ctl := tasks.Controller{ReadFile: func(string) ([]byte, error) { return nil, fs.ErrPermission }}
	if err := c.Prepare(ctl); err != nil {
		t.Errorf("prepare of an absent container: %v", err)
	}
	h, _ := registryHost(t)
	if _, err := c.Plan(context.Background(), h); err != nil {
		t.Errorf("plan: %v", err)
	}
}
