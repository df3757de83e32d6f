package playbooks

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
)

// The shipped playbook's pulls: no cache and no mirror flag by default;
// registry_mirror: true creates the cache on the runner network and points
// dind at it first, before dind_registry_mirrors; the Docker Hub password
// comes from the controller; runner_helper_image goes to config.toml.
func TestShippedPlaybookPulls(t *testing.T) {
	pb, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	play := pb.Plays[1]
	env := map[string]string{"GITLAB_RUNNER_TOKEN": "glrt-test-token", "HUB_TOKEN": "dckr_pat_x"}
	ctl := tasks.Controller{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	compileWith := func(extra map[string]any) (cache, dind *tasks.DockerContainer, runner *tasks.GitLabRunner, order []string) {
		t.Helper()
		hp, err := Compile(play, host(t, nil), CompileOptions{ExtraVars: extra, Controller: ctl})
		if err != nil {
			t.Fatalf("%v: %v", extra, err)
		}
		for _, s := range hp.Tasks {
			switch x := s.Task.(type) {
			case *tasks.DockerContainer:
				order = append(order, x.Name)
				switch x.Name {
				case "gitlab-registry-mirror":
					cache = x
				case "gitlab-dind":
					dind = x
				}
			case *tasks.GitLabRunner:
				runner = x
			}
		}
		return cache, dind, runner, order
	}

	cache, dind, runner, order := compileWith(nil)
	if cache.State != "absent" || strings.Join(dind.Command, " ") != "--storage-driver=overlay2 --tls=true" {
		t.Errorf("default: cache state %q, dind command %q", cache.State, dind.Command)
	}
	if want := []string{"gitlab-registry-mirror", "gitlab-dind", "gitlab-runner"}; !reflect.DeepEqual(order, want) {
		t.Errorf("containers in order %q, want %q (the cache before dind)", order, want)
	}
	if p := runner.Docker.HelperImage; p == nil || *p != "" {
		t.Errorf("default helper_image %v, want \"\" (none written)", p)
	}

	cache, dind, runner, _ = compileWith(map[string]any{
		"registry_mirror": true, "dind_registry_mirrors": []any{"https://mirror.gcr.io", "http://10.0.0.2:5000"},
		"registry_mirror_username": "ci", "registry_mirror_password_env": "HUB_TOKEN",
		"runner_helper_image": "gitlab/gitlab-runner-helper:x86_64-v17.11.0",
	})
	if want := "--storage-driver=overlay2 --tls=true --registry-mirror=http://gitlab-registry-mirror:5000 --registry-mirror=https://mirror.gcr.io --registry-mirror=http://10.0.0.2:5000"; strings.Join(dind.Command, " ") != want {
		t.Errorf("dind command\n  %s\nwant\n  %s", strings.Join(dind.Command, " "), want)
	}
	if cache.State != "started" || cache.Image != "registry:2" || strings.Join(cache.Networks, " ") != "gitlab-runner-net" ||
		strings.Join(cache.Volumes, " ") != "gitlab-registry-mirror-storage:/var/lib/registry" || cache.RestartPolicy != "always" {
		t.Errorf("cache %+v", cache)
	}
	if want := (tasks.MergedMap{"REGISTRY_PROXY_REMOTEURL": "https://registry-1.docker.io", "REGISTRY_PROXY_USERNAME": "ci"}); !reflect.DeepEqual(cache.Env, want) {
		t.Errorf("cache env %v", cache.Env)
	}
	if want := (map[string]tasks.SecretSource{"REGISTRY_PROXY_PASSWORD": {Env: "HUB_TOKEN"}}); !reflect.DeepEqual(cache.SecretEnv, want) {
		t.Errorf("cache secret_env %v", cache.SecretEnv)
	}
	if p := runner.Docker.HelperImage; p == nil || *p != "gitlab/gitlab-runner-helper:x86_64-v17.11.0" {
		t.Errorf("helper_image %v", p)
	}

	// The file wins over the variable; a file that cannot be read, or a
	// variable that is not set, fails before any host is contacted, at the
	// option's line, naming the variable.
	for _, tc := range []struct {
		extra map[string]any
		want  string
	}{
		{map[string]any{"registry_mirror_password_env": "HUB_TOKEN", "registry_mirror_password_file": "/nonexistent/hub"},
			"docker_container.secret_env.REGISTRY_PROXY_PASSWORD.file: cannot read the file on the controller: open /nonexistent/hub"},
		{map[string]any{"registry_mirror_password_env": "NO_SUCH_VAR"},
			"docker_container.secret_env.REGISTRY_PROXY_PASSWORD.env: environment variable NO_SUCH_VAR is not set"},
	} {
		tc.extra["registry_mirror"] = true
		_, err := Compile(play, host(t, nil), CompileOptions{ExtraVars: tc.extra, Controller: ctl})
		if err == nil || !strings.Contains(err.Error(), "(shipped) dind-runner.yml:") || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "set in -e") {
			t.Errorf("%v: %v", tc.extra, err)
		}
	}
}
