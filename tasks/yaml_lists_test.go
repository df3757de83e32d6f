package tasks_test

import (
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dindops/dindops/tasks"
)

func TestMergedMapAndStringList(t *testing.T) {
	var c tasks.DockerContainer
	src := `
name: dind
env:
  - {DOCKER_TLS_CERTDIR: /certs, DOCKER_TLS_SAN: "DNS:gitlab-dind"}
  - null
  - {DOCKER_TLS_SAN: "DNS:gitlab-dind,DNS:dind.example.com", EXTRA: "1"}
volumes:
  - [storage:/var/lib/docker, /sys/fs/cgroup:/sys/fs/cgroup:rw]
  - ""
  - certs-ca:/certs/ca
command:
  - --storage-driver=overlay2
  - ""
  - [--registry-mirror=http://a:5000, --registry-mirror=https://b]
`
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	if want := (tasks.MergedMap{"DOCKER_TLS_CERTDIR": "/certs", "DOCKER_TLS_SAN": "DNS:gitlab-dind,DNS:dind.example.com", "EXTRA": "1"}); !reflect.DeepEqual(c.Env, want) {
		t.Errorf("env %v", c.Env)
	}
	if want := (tasks.StringList{"storage:/var/lib/docker", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "certs-ca:/certs/ca"}); !reflect.DeepEqual(c.Volumes, want) {
		t.Errorf("volumes %q", c.Volumes)
	}
	if want := (tasks.StringList{"--storage-driver=overlay2", "--registry-mirror=http://a:5000", "--registry-mirror=https://b"}); !reflect.DeepEqual(c.Command, want) {
		t.Errorf("command %q", c.Command)
	}

	// One mapping and a plain list stay what they were.
	c = tasks.DockerContainer{}
	if err := yaml.Unmarshal([]byte("env: {A: \"\"}\nvolumes: [a:/a]\n"), &c); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Env, tasks.MergedMap{"A": ""}) || !reflect.DeepEqual(c.Volumes, tasks.StringList{"a:/a"}) {
		t.Errorf("%v %q", c.Env, c.Volumes)
	}
	for _, bad := range []string{"env: [[a]]\n", "env: [x]\n", "volumes: {a: b}\n", "volumes: [{a: b}]\n"} {
		err := yaml.Unmarshal([]byte(bad), &tasks.DockerContainer{})
		if err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
