package playbooks

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dindops/dindops/inventory"
	"github.com/dindops/dindops/tasks"
)

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"not a list", "name: x\n", `pb.yml:1:1: a playbook is a list of plays`},
		{"play typo", "- name: p\n  host: all\n", `pb.yml:2:3: unknown field "host" in a play; did you mean "hosts"?`},
		{"no hosts", "- name: p\n  tasks: []\n", `pb.yml:1:3: play "p" has no hosts`},
		{"check under tasks", "- hosts: all\n  tasks:\n    - name: t\n      runner_health: {name: r}\n", `pb.yml:4:7: runner_health is a health check, not a task: list it under the play's health:`},
		{"task under health", "- hosts: all\n  health:\n    - name: t\n      docker_network: {name: n}\n", `pb.yml:4:7: docker_network is a task kind, not a health check: move it to the play's tasks (health checks: runner_health)`},
		{"check typo", "- hosts: all\n  health:\n    - name: t\n      runner_helth: {name: r}\n", `pb.yml:4:7: unknown field "runner_helth" in a task; did you mean "runner_health"?`},
		{"check option typo", "- hosts: all\n  health:\n    - name: t\n      runner_health: {nme: r}\n", `pb.yml:4:23: unknown field "nme" in runner_health options; did you mean "name"?`},
		{"check notifies", "- hosts: all\n  health:\n    - name: t\n      notify: x\n      runner_health: {name: r}\n", `pb.yml:4:7: health checks change nothing, so they cannot notify handlers`},
		{"kind typo", "- hosts: all\n  tasks:\n    - name: t\n      dokcer_network: {name: n}\n", `pb.yml:4:7: unknown field "dokcer_network" in a task; did you mean "docker_network"?`},
		{"option typo", "- hosts: all\n  tasks:\n    - name: t\n      docker_network:\n        name: n\n        drivr: bridge\n", `pb.yml:6:9: unknown field "drivr" in docker_network options; did you mean "driver"?`},
		{"nested option typo", "- hosts: all\n  tasks:\n    - name: t\n      gitlab_runner:\n        name: r\n        url: u\n        token_env: T\n        docker: {hots: x}\n", `pb.yml:8:18: unknown field "hots" in gitlab_runner options; did you mean "host"?`},
		{"two kinds", "- hosts: all\n  tasks:\n    - name: t\n      file: {path: /a}\n      command: {argv: [x]}\n", `pb.yml:5:7: task "t" has two task kinds (file and command)`},
		{"no kind", "- hosts: all\n  tasks:\n    - name: t\n", `pb.yml:3:7: task "t" has no task kind`},
		{"no name", "- hosts: all\n  tasks:\n    - file: {path: /a}\n", `pb.yml:3:7: every task needs a name`},
		{"missing handler", "- hosts: all\n  tasks:\n    - name: t\n      file: {path: /a}\n      notify: restart dockr\n  handlers:\n    - name: restart docker\n      service: {name: docker, state: restarted}\n", `pb.yml:3:7: task "t" notifies "restart dockr", but the play has no handler of that name; did you mean "restart docker"?`},
		{"options not mapping", "- hosts: all\n  tasks:\n    - name: t\n      file: /a\n", `pb.yml:4:13: file options must be a mapping`},
		{"bad yaml", "- hosts: all\n  tasks: [\n", `pb.yml:2:`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("pb.yml", []byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err =\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}
}

func host(t *testing.T, vars map[string]any) *inventory.Host {
	t.Helper()
	return &inventory.Host{Name: "build-1", Address: "10.0.0.1", Port: 22, Vars: vars, Groups: []string{"runners"}}
}

func compile(t *testing.T, src string, vars map[string]any, extra map[string]any) (*HostPlay, error) {
	t.Helper()
	pb, err := Parse("pb.yml", []byte(src))
	if err != nil {
		return nil, err // options without templates are checked at load time
	}
	return Compile(pb.Plays[0], host(t, vars), CompileOptions{ExtraVars: extra})
}

func TestCompileExpandsTemplatesWithTypes(t *testing.T) {
	src := `- hosts: all
  vars:
    net: runners-net
    dind: "{{ .prefix }}-dind"
    prefix: gitlab
    env: {DOCKER_TLS_CERTDIR: ""}
    privileged: true
    mode: "0600"
  tasks:
    - name: "dind on {{ .inventory_hostname }}"
      docker_container:
        name: "{{ .dind }}"
        image: docker:dind
        env: "{{ .env }}"
        privileged: "{{ .privileged }}"
        networks: ["{{ .net }}"]
    - name: file
      file:
        path: /etc/x
        mode: "{{ .mode }}"
        content: "groups={{ index .group_names 0 }}\n"
`
	hp, err := compile(t, src, map[string]any{"net": "from-inventory"}, map[string]any{"privileged": false})
	if err != nil {
		t.Fatal(err)
	}
	if hp.Tasks[0].Name != "dind on build-1" {
		t.Errorf("name = %q", hp.Tasks[0].Name)
	}
	c := hp.Tasks[0].Task.(*tasks.DockerContainer)
	if c.Name != "gitlab-dind" || c.Privileged || c.Networks[0] != "from-inventory" {
		t.Errorf("container = %+v (want vars resolved, inventory over play vars, -e over all)", c)
	}
	if v, ok := c.Env["DOCKER_TLS_CERTDIR"]; !ok || v != "" {
		t.Errorf("env = %v, want the map from the variable", c.Env)
	}
	f := hp.Tasks[1].Task.(*tasks.File)
	if f.Mode == nil || f.Mode.Perm() != 0o600 || f.Content != "groups=runners\n" {
		t.Errorf("file = %+v", f)
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"undefined var", "- hosts: all\n  tasks:\n    - name: t\n      docker_network:\n        name: \"{{ .netwrk }}\"\n", `pb.yml:5:15: task "t": undefined variable "netwrk"`},
		{"undefined in text", "- hosts: all\n  vars: {network: n}\n  tasks:\n    - name: t\n      docker_network:\n        name: \"x-{{ .netwrk }}\"\n", `undefined variable "netwrk"; did you mean "network"?`},
		{"wrong type", "- hosts: all\n  vars: {p: [1]}\n  tasks:\n    - name: t\n      docker_container: {name: a, image: b, privileged: \"{{ .p }}\"}\n", `pb.yml:5:`},
		{"bare mode", "- hosts: all\n  tasks:\n    - name: t\n      file: {path: /a, mode: 644}\n", `pb.yml:4:30: task "t": ambiguous mode 644: quote it or write 0644`},
		{"mode from int var", "- hosts: all\n  vars: {m: 644}\n  tasks:\n    - name: t\n      file: {path: /a, mode: \"{{ .m }}\"}\n", `ambiguous mode 644`},
		{"validate", "- hosts: all\n  tasks:\n    - name: t\n      file:\n        path: relative\n", `pb.yml:5:9: task "t": file.path: must be an absolute path`},
		{"json content", "- hosts: all\n  tasks:\n    - name: t\n      file:\n        path: /etc/docker/daemon.json\n        content: '{\"storage-driver\":\"overlay2\",}'\n", `file.content: /etc/docker/daemon.json is not valid JSON: line 1, column 30`},
		{"type error names the variable", "- hosts: all\n  vars: {n: lots}\n  tasks:\n    - name: t\n      docker_container: {name: a, image: b, stop_timeout: \"{{ .n }}\"}\n", "cannot unmarshal !!str `lots` into int (the value of variable n, set in the play's vars)"},
		{"var loop", "- hosts: all\n  vars: {a: \"{{ .b }}\", b: \"{{ .a }}\"}\n  tasks: []\n", `variables refer to each other in a loop: a, b`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := compile(t, c.src, nil, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err =\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}
}

// A template inside a longer text keeps that text: whitespace and the final
// newline are not trimmed away.
func TestCompileKeepsWhitespaceAroundOneVariable(t *testing.T) {
	src := "- hosts: all\n  vars: {v: x}\n  tasks:\n" +
		"    - {name: a, file: {path: /a, content: \"{{ .v }}\\n\"}}\n" +
		"    - name: b\n      file:\n        path: /b\n        content: |\n          {{ .v }}\n" +
		"    - {name: c, file: {path: /c, content: \"  {{ .v }}  \"}}\n"
	hp, err := compile(t, src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"x\n", "x\n", "  x  "} {
		if got := hp.Tasks[i].Task.(*tasks.File).Content; got != want {
			t.Errorf("task %d content = %q, want %q", i, got, want)
		}
	}
}

func TestCompileTypeErrorNamesInventoryVariable(t *testing.T) {
	src := "- hosts: all\n  vars: {env: {A: \"1\"}}\n  tasks:\n    - name: t\n      docker_container:\n        name: a\n        image: b\n        env: \"{{ .env }}\"\n"
	_, err := compile(t, src, map[string]any{"env": []any{"A=1"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "pb.yml:8") || !strings.Contains(err.Error(), "(the value of variable env, set in the inventory)") {
		t.Fatalf("err = %v", err)
	}
}

func TestShippedPlaybookCompiles(t *testing.T) {
	pb, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	if len(pb.Plays) != 2 {
		t.Fatalf("plays = %d", len(pb.Plays))
	}
	ctl := tasks.Controller{LookupEnv: func(k string) (string, bool) {
		if k == "GITLAB_RUNNER_TOKEN" {
			return "glrt-test-token", true
		}
		return "", false
	}}
	for _, play := range pb.Plays {
		hp, err := Compile(play, host(t, map[string]any{"gitlab_url": "https://gitlab.example.com"}), CompileOptions{Controller: ctl})
		if err != nil {
			t.Fatalf("play %q: %v", play.Name, err)
		}
		for _, s := range hp.Tasks {
			if s.Task == nil || !s.Become {
				t.Errorf("task %q: %+v", s.Name, s)
			}
		}
	}
	noEnv := func(string) (string, bool) { return "", false }
	runnerTask := func(hp *HostPlay) *tasks.GitLabRunner {
		t.Helper()
		for _, s := range hp.Tasks {
			if g, ok := s.Task.(*tasks.GitLabRunner); ok {
				return g
			}
		}
		t.Fatal("no gitlab_runner task")
		return nil
	}
	// TLS is the default: dind makes certificates that name dind_name, the
	// runner gets only the client certificates, read-only, and config.toml
	// port 2376 with tls_verify and tls_cert_path; no warning. dind_env is
	// merged over the playbook's environment.
	containers := func(hp *HostPlay) (dind, runner *tasks.DockerContainer, dindStep *Step) {
		t.Helper()
		for _, s := range hp.Tasks {
			if c, ok := s.Task.(*tasks.DockerContainer); ok {
				switch c.Name {
				case "gitlab-dind":
					dind, dindStep = c, s
				case "gitlab-runner":
					runner = c
				}
			}
		}
		if dind == nil || runner == nil {
			t.Fatal("no dind or runner container")
		}
		return dind, runner, dindStep
	}
	hp, err := Compile(pb.Plays[1], host(t, map[string]any{"dind_env": map[string]any{"DOCKER_TLS_SAN": "DNS:gitlab-dind,DNS:dind.example.com", "EXTRA": "1"}}), CompileOptions{Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	dind, runner, step := containers(hp)
	if want := (tasks.MergedMap{"DOCKER_TLS_CERTDIR": "/certs", "DOCKER_TLS_SAN": "DNS:gitlab-dind,DNS:dind.example.com", "EXTRA": "1"}); !reflect.DeepEqual(dind.Env, want) {
		t.Errorf("dind env %v", dind.Env)
	}
	if want := "gitlab-dind-storage:/var/lib/docker gitlab-dind-certs-ca:/certs/ca gitlab-dind-certs-client:/certs/client"; strings.Join(dind.Volumes, " ") != want {
		t.Errorf("dind volumes %q", dind.Volumes)
	}
	if strings.Join(dind.Command, " ") != "--storage-driver=overlay2 --tls=true" || step.Warn != "" {
		t.Errorf("dind command %q, warn %q", dind.Command, step.Warn)
	}
	if want := (tasks.MergedMap{"DOCKER_HOST": "tcp://gitlab-dind:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs/client"}); !reflect.DeepEqual(runner.Env, want) {
		t.Errorf("runner env %v", runner.Env)
	}
	if want := "/srv/gitlab-runner/config:/etc/gitlab-runner gitlab-dind-certs-client:/certs/client:ro"; strings.Join(runner.Volumes, " ") != want {
		t.Errorf("runner volumes %q", runner.Volumes)
	}
	if d := runnerTask(hp).Docker; d.Host != "tcp://gitlab-dind:2376" || d.TLSVerify == nil || !*d.TLSVerify || d.TLSCertPath == nil || *d.TLSCertPath != "/certs/client" {
		t.Errorf("TLS docker settings: %+v", d)
	}
	// dind_tls: false is plain TCP with an explicit --tls=false, no
	// certificate volumes, tls_cert_path removed, and a warning.
	hp, err = Compile(pb.Plays[1], host(t, nil), CompileOptions{ExtraVars: map[string]any{"dind_tls": false}, Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	dind, runner, step = containers(hp)
	if !reflect.DeepEqual(dind.Env, tasks.MergedMap{"DOCKER_TLS_CERTDIR": "", "DOCKER_TLS_SAN": "DNS:gitlab-dind"}) || strings.Join(dind.Volumes, " ") != "gitlab-dind-storage:/var/lib/docker" ||
		strings.Join(dind.Command, " ") != "--storage-driver=overlay2 --tls=false" {
		t.Errorf("plain dind: env %v, volumes %q, command %q", dind.Env, dind.Volumes, dind.Command)
	}
	if !strings.Contains(step.Warn, "plain TCP") || !strings.Contains(step.Warn, "trusted networks only") {
		t.Errorf("plain dind warn %q", step.Warn)
	}
	if runner.Env["DOCKER_HOST"] != "tcp://gitlab-dind:2375" || runner.Env["DOCKER_TLS_VERIFY"] != "" || len(runner.Volumes) != 1 {
		t.Errorf("plain runner: env %v, volumes %q", runner.Env, runner.Volumes)
	}
	if d := runnerTask(hp).Docker; d.Host != "tcp://gitlab-dind:2375" || d.TLSVerify == nil || *d.TLSVerify || d.TLSCertPath == nil || *d.TLSCertPath != "" {
		t.Errorf("plain docker settings: %+v", d)
	}

	// Without the token, the play still compiles: only a host whose runner
	// must be registered needs it, and that host's plan says so.
	hp, err = Compile(pb.Plays[1], host(t, nil), CompileOptions{Controller: tasks.Controller{LookupEnv: noEnv}})
	if err != nil {
		t.Fatalf("missing token: err = %v", err)
	}
	if g := runnerTask(hp); g.TokenEnv != "GITLAB_RUNNER_TOKEN" || g.TokenFile != "" {
		t.Errorf("default token options: token_env %q, token_file %q", g.TokenEnv, g.TokenFile)
	}
	// A malformed token fails before any connection.
	bad := tasks.Controller{LookupEnv: func(string) (string, bool) { return "glrt-two words", true }}
	if _, err := Compile(pb.Plays[1], host(t, nil), CompileOptions{Controller: bad}); err == nil || !strings.Contains(err.Error(), "token_env") {
		t.Fatalf("malformed token: err = %v", err)
	}
	// -e runner_token_file=PATH alone replaces runner_token_env.
	var read []string
	fromFile := tasks.Controller{LookupEnv: noEnv, ReadFile: func(p string) ([]byte, error) {
		read = append(read, p)
		return []byte("glrt-file-token\n"), nil
	}}
	hp, err = Compile(pb.Plays[1], host(t, nil), CompileOptions{ExtraVars: map[string]any{"runner_token_file": "/controller/runner-token"}, Controller: fromFile})
	if err != nil {
		t.Fatalf("runner_token_file: %v", err)
	}
	if g := runnerTask(hp); g.TokenEnv != "" || g.TokenFile != "/controller/runner-token" || strings.Join(read, " ") != "/controller/runner-token" {
		t.Errorf("runner_token_file: token_env %q, token_file %q, read %v", g.TokenEnv, g.TokenFile, read)
	}

	// The default is one runner, named runner_name; global settings and
	// the restart that listen_address needs are the task's.
	hp, err = Compile(pb.Plays[1], host(t, nil), CompileOptions{Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	g := runnerTask(hp)
	if len(g.Runners) != 1 || g.Runners[0].Name != "build-1" || g.Name != "" || g.Restart == nil || strings.Join(g.Restart.Containers, " ") != "gitlab-runner" ||
		g.ListenAddress != "" || g.Cache != nil || len(g.FeatureFlags) != 0 || len(g.Docker.PullPolicy) != 0 {
		t.Errorf("default runners %+v, restart %+v, listen %q, cache %v", g.Runners, g.Restart, g.ListenAddress, g.Cache)
	}
	// runner_tag_list belongs to the default runner: with a glrt- token it
	// is refused, as GitLab keeps that runner's tags.
	if _, err := Compile(pb.Plays[1], host(t, nil), CompileOptions{ExtraVars: map[string]any{"runner_tag_list": []any{"docker"}}, Controller: ctl}); err == nil || !strings.Contains(err.Error(), "tag_list cannot be set with a glrt- runner authentication token") {
		t.Errorf("runner_tag_list with a glrt- token: %v", err)
	}
	// Several runners from the inventory, with settings of their own and
	// the playbook's; an S3 cache whose keys the controller reads.
	env := map[string]string{"GITLAB_RUNNER_TOKEN": "glrt-test-token", "BIG": "glrt-big-token", "S3_ACCESS": "AKIA", "S3_SECRET": "s3cr3t"}
	inv := host(t, map[string]any{
		"runner_listen_address": ":9252",
		"runner_feature_flags":  map[string]any{"FF_NETWORK_PER_BUILD": true},
		"runner_cache":          map[string]any{"Type": "s3", "s3": map[string]any{"BucketName": "ci", "access_key_env": "S3_ACCESS", "secret_key_env": "S3_SECRET"}},
		"runners": []any{
			map[string]any{"name": "{{ .inventory_hostname }}-big", "token_env": "BIG", "limit": 2},
			map[string]any{"name": "{{ .inventory_hostname }}-small", "docker": map[string]any{"image": "alpine:3"}},
		},
	})
	hp, err = Compile(pb.Plays[1], inv, CompileOptions{Controller: tasks.Controller{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}})
	if err != nil {
		t.Fatal(err)
	}
	g = runnerTask(hp)
	if hc := hp.Health[0].Check.(*tasks.RunnerHealth); len(hc.Runners) != 2 || hc.Runners[1].Name != "build-1-small" || hc.Name != "" {
		t.Errorf("health check runners %+v, name %q", hc.Runners, hc.Name)
	}
	if len(g.Runners) != 2 || g.Runners[0].Name != "build-1-big" || g.Runners[0].Limit != 2 || g.Runners[1].Docker.Image != "alpine:3" || g.ListenAddress != ":9252" ||
		g.Cache == nil || g.Cache.S3.AccessKey != "AKIA" || !g.FeatureFlags["FF_NETWORK_PER_BUILD"] {
		t.Errorf("runners %+v, listen %q, cache %+v", g.Runners, g.ListenAddress, g.Cache)
	}
	// A bad item is named by its place in the list.
	inv.Vars["runners"] = []any{map[string]any{"name": "a"}, map[string]any{"name": "b", "docker": map[string]any{"pull_policy": []any{"sometimes"}}}}
	if _, err := Compile(pb.Plays[1], inv, CompileOptions{Controller: ctl}); err == nil || !strings.Contains(err.Error(), "gitlab_runner.runners[1].docker.pull_policy") || !strings.Contains(err.Error(), "variable runners, set in the inventory") {
		t.Errorf("bad item: %v", err)
	}
}

// A variable whose default is a boolean, set as text ("no" in an
// inventory, -e dind_tls=off), is that boolean, not a non-empty string
// that templates take for true; other text is an error naming it.
func TestBoolVariablesFromText(t *testing.T) {
	const src = `- name: p
  hosts: all
  vars:
    tls: true
  tasks:
    - name: t
      file:
        path: /tmp/x
        content: "{{ if .tls }}on{{ else }}off{{ end }}"
`
	for in, want := range map[string]string{"no": "off", "off": "off", "false": "off", "False": "off", "yes": "on", "true": "on"} {
		hp, err := compile(t, src, nil, map[string]any{"tls": in})
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := hp.Tasks[0].Task.(*tasks.File).Content; got != want {
			t.Errorf("tls=%s: content %q, want %q", in, got, want)
		}
	}
	_, err := compile(t, src, nil, map[string]any{"tls": "nope"})
	if err == nil || !strings.Contains(err.Error(), `variable tls (set in -e) must be true or false`) {
		t.Errorf("tls=nope: %v", err)
	}
}
