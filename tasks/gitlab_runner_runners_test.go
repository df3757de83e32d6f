package tasks_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dindops/dindops/fixtures/fakegitlab"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// twoRunners is f.task with two runners of their own glrt- tokens (in
// $TOKEN_A and $TOKEN_B) instead of build-1, over the task's options.
func (f *gitlabFixture) twoRunners(a, b string, mod func(*tasks.GitLabRunner)) *tasks.GitLabRunner {
	f.env["TOKEN_A"], f.env["TOKEN_B"] = a, b
	return f.task("", func(g *tasks.GitLabRunner) {
		g.Name, g.TokenEnv = "", ""
		g.Runners = []tasks.GitLabRunner{
			{Name: "big-1", TokenEnv: "TOKEN_A", Limit: 2, Environment: []string{"COMPOSE_PROJECT_NAME=big-$CI_JOB_ID", "EXTRA=1"},
				FeatureFlags: map[string]bool{"FF_NETWORK_PER_BUILD": true}},
			{Name: "big-2", TokenEnv: "TOKEN_B", RequestConcurrency: 3, Docker: tasks.GitLabRunnerDocker{Image: "docker:28", PullPolicy: []string{"if-not-present"}}},
		}
		if mod != nil {
			mod(g)
		}
	})
}

// Two runners in one config.toml: each is registered once with its own
// token and the host's one system ID, gets its own settings over the
// task's, and the global settings are written once.
func TestGitLabRunnerSeveralRunnersInOneConfig(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	idA, a := f.fake.CreateRunner(fakegitlab.NewRunner{})
	idB, b := f.fake.CreateRunner(fakegitlab.NewRunner{})
	g := f.mustPrepare(f.twoRunners(a, b, func(g *tasks.GitLabRunner) { g.ListenAddress, g.ShutdownTimeout = ":9252", 30 }))
	h := tasktest.New()
	changes := tasktest.Converge(t, g, h)
	f.record(changes)
	if len(changes) != 2 || changes[0].Target != "big-1" || changes[1].Target != "big-2" || changes[0].Action != tasks.Create || changes[1].Action != tasks.Create {
		t.Fatalf("changes %+v", changes)
	}
	// The global settings (and the new system ID) go with the first.
	if got := tasks.FieldNames(changes[0].Fields); !strings.Contains(got, "concurrent, listen_address, shutdown_timeout") || !strings.Contains(got, "system_id") {
		t.Errorf("first change's fields: %s", got)
	}
	if got := tasks.FieldNames(changes[1].Fields); strings.Contains(got, "concurrent") || strings.Contains(got, "system_id") {
		t.Errorf("second change's fields: %s", got)
	}
	// Each diff shows its own entry only.
	if strings.Contains(changes[1].Diff, `+  name = "big-1"`) || !strings.Contains(changes[1].Diff, `+  name = "big-2"`) {
		t.Errorf("second diff:\n%s", changes[1].Diff)
	}

	m := decodeConfig(t, h)
	if m["concurrent"] != int64(4) || m["listen_address"] != ":9252" || m["shutdown_timeout"] != int64(30) {
		t.Errorf("globals %v", m)
	}
	rs := runnersOf(t, m)
	if len(rs) != 2 {
		t.Fatalf("entries %v", rs)
	}
	one, two := rs[0], rs[1]
	d1, _ := one["docker"].(map[string]any)
	d2, _ := two["docker"].(map[string]any)
	if one["name"] != "big-1" || one["token"] != a || one["id"] != idA || one["limit"] != int64(2) ||
		!reflect.DeepEqual(one["environment"], []any{"COMPOSE_PROJECT_NAME=big-$CI_JOB_ID", "EXTRA=1"}) ||
		!reflect.DeepEqual(one["feature_flags"], map[string]any{"FF_NETWORK_PER_BUILD": true}) || d1["image"] != "docker:27" {
		t.Errorf("big-1: %v", one)
	}
	if two["name"] != "big-2" || two["token"] != b || two["id"] != idB || two["request_concurrency"] != int64(3) || two["limit"] != nil ||
		!reflect.DeepEqual(two["environment"], []any{"COMPOSE_PROJECT_NAME=ci-job-$CI_JOB_ID"}) ||
		d2["image"] != "docker:28" || d2["host"] != "tcp://gitlab-dind:2375" || !reflect.DeepEqual(d2["pull_policy"], []any{"if-not-present"}) ||
		!reflect.DeepEqual(d2["volumes"], d1["volumes"]) {
		t.Errorf("big-2: %v", two)
	}
	sid, _ := h.File(sysIDPath)
	for _, r := range f.fake.Runners() {
		if !slices.Equal(r.VerifiedSystemIDs, []string{string(sid.Content)}) {
			t.Errorf("runner %d verified with %v, want the host's %s only", r.ID, r.VerifiedSystemIDs, sid.Content)
		}
	}
	if n := f.fake.CountRequests("POST", "/api/v4/runners/verify"); n != 2+2 {
		t.Errorf("%d verifications, want one per runner in apply and one each in the plan after", n)
	}
	f.assertNoSecrets(h, a, b)
}

// One runner of several decommissioned: it leaves GitLab and config.toml,
// the other stays as it was. Then a third added: registered beside them,
// with no warning about the others.
func TestGitLabRunnerDecommissionsOneOfSeveral(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, a := f.fake.CreateRunner(fakegitlab.NewRunner{})
	idB, b := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.twoRunners(a, b, nil)), h)
	before := runnersOf(t, decodeConfig(t, h))[0]

	g := f.mustPrepare(f.twoRunners(a, b, func(g *tasks.GitLabRunner) { g.Runners[1].State = "absent" }))
	changes := tasktest.Converge(t, g, h)
	if len(changes) != 1 || changes[0].Action != tasks.Delete || changes[0].Target != "big-2" {
		t.Fatalf("changes %+v", changes)
	}
	rs := runnersOf(t, decodeConfig(t, h))
	if len(rs) != 1 || !reflect.DeepEqual(normalizeTimes(rs[0]), normalizeTimes(before)) {
		t.Errorf("left %v, want big-1 as it was %v", rs, before)
	}
	if slices.ContainsFunc(f.fake.Runners(), func(r fakegitlab.Runner) bool { return r.ID == idB }) || len(f.fake.Runners()) != 1 {
		t.Errorf("runners in GitLab %+v", f.fake.Runners())
	}

	_, c := f.fake.CreateRunner(fakegitlab.NewRunner{})
	f.env["TOKEN_C"] = c
	g = f.mustPrepare(f.twoRunners(a, b, func(g *tasks.GitLabRunner) {
		g.Runners[1].State = "absent"
		g.Runners = append(g.Runners, tasks.GitLabRunner{Name: "big-3", TokenEnv: "TOKEN_C"})
	}))
	changes = tasktest.Converge(t, g, h)
	if len(changes) != 1 || changes[0].Action != tasks.Create || changes[0].Target != "big-3" || len(changes[0].Warnings) != 0 {
		t.Errorf("changes %+v", changes)
	}
	if rs := runnersOf(t, decodeConfig(t, h)); len(rs) != 2 || rs[1]["name"] != "big-3" {
		t.Errorf("entries %v", rs)
	}
	// The task's state absent decommissions them all.
	changes = tasktest.Converge(t, f.mustPrepare(f.twoRunners(a, b, func(g *tasks.GitLabRunner) {
		g.State = "absent"
		g.Runners = append(g.Runners, tasks.GitLabRunner{Name: "big-3", State: "present"})
	})), h)
	if len(changes) != 2 || len(f.fake.Runners()) != 0 {
		t.Errorf("changes %+v, runners %+v", changes, f.fake.Runners())
	}
	if _, ok := decodeConfig(t, h)["runners"]; ok {
		t.Errorf("entries left: %v", decodeConfig(t, h))
	}
	f.assertNoSecrets(h, a, b, c)
}

func TestGitLabRunnerRunnersValidate(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	for _, tc := range []struct {
		mod         func(*tasks.GitLabRunner)
		field, want string
	}{
		{func(g *tasks.GitLabRunner) { g.Name = "build-1" }, "name", "each item has its own name"},
		{func(g *tasks.GitLabRunner) { g.Runners[1].Name = "big-1" }, "runners[1].name", "both named"},
		{func(g *tasks.GitLabRunner) { g.Runners[1].Name = "" }, "runners[1].name", "required"},
		{func(g *tasks.GitLabRunner) { g.Runners[0].Concurrent = 2 }, "runners[0].concurrent", "set them on the task"},
		{func(g *tasks.GitLabRunner) { g.Runners[0].ListenAddress = ":9252" }, "runners[0].listen_address", "config.toml as a whole"},
		{func(g *tasks.GitLabRunner) { g.Runners[1].Docker.PullPolicy = []string{"sometimes"} }, "runners[1].docker.pull_policy", "sometimes"},
		{func(g *tasks.GitLabRunner) { g.Runners[1].TokenFile = "/controller/token" }, "runners[1].token_file", "only one of them"},
		{func(g *tasks.GitLabRunner) { g.Runners[0].Limit = -1 }, "runners[0].limit", "at least 1"},
		{func(g *tasks.GitLabRunner) { g.Runners[0].FeatureFlags = map[string]bool{"NETWORK_PER_BUILD": true} }, "runners[0].feature_flags", "FF_"},
		{func(g *tasks.GitLabRunner) { g.ListenAddress = "9252" }, "listen_address", "HOST:PORT"},
		{func(g *tasks.GitLabRunner) { g.ShutdownTimeout = -1 }, "shutdown_timeout", "seconds"},
		{func(g *tasks.GitLabRunner) { g.Restart = &tasks.Drain{} }, "restart.containers", "name the containers"},
	} {
		err := f.twoRunners("glrt-a", "glrt-b", tc.mod).Validate()
		var fe *tasks.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want field %s: …%s…", err, tc.field, tc.want)
		}
	}
	// One glrt- token for two runners is one runner in GitLab.
	err := f.prepare(f.twoRunners("glrt-same", "glrt-same", nil))
	var fe *tasks.FieldError
	if !errors.As(err, &fe) || fe.Field != "runners[1].token_env" || !strings.Contains(err.Error(), "same glrt-") {
		t.Errorf("same token: %v", err)
	}
	// The task's server-side settings are for the runners dindops creates:
	// glrt- items (created in GitLab already) leave them out, but may not
	// set them.
	if err := f.prepare(f.twoRunners("glrt-a", "glrt-b", func(g *tasks.GitLabRunner) { g.TagList = []string{"big"} })); err != nil {
		t.Errorf("inherited tag_list with glrt- tokens: %v", err)
	}
	err = f.prepare(f.twoRunners("glrt-a", "glrt-b", func(g *tasks.GitLabRunner) { g.Runners[0].TagList = []string{"big"} }))
	if !errors.As(err, &fe) || fe.Field != "runners[0].tag_list" {
		t.Errorf("own tag_list with a glrt- token: %v", err)
	}
	// Without runners of their own, the items take the task's token input:
	// a registration token registers each.
	g := f.task(regToken, func(g *tasks.GitLabRunner) {
		g.Name, g.Runners = "", []tasks.GitLabRunner{{Name: "r-1"}, {Name: "r-2"}}
	})
	if err := f.prepare(g); err != nil {
		t.Errorf("inherited token input: %v", err)
	}
	f.assertNoSecrets(tasktest.New(), "glrt-same", "glrt-a", "glrt-b", regToken)
}

// The S3 cache: its keys come from the controller (an environment variable
// or a 0600 file), land in config.toml and are shown nowhere; a rotated key
// is an update whose values stay hidden.
func TestGitLabRunnerCacheKeysFromTheController(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	const access, secret, rotated = "AKIAEXAMPLEACCESS", "s3cr3tKEYexample/+", "n3wS3CRETkey"
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.env["S3_ACCESS"] = access
	withCache := func(file string) func(*tasks.GitLabRunner) {
		return func(g *tasks.GitLabRunner) {
			g.Cache = &tasks.GitLabRunnerCache{Type: "s3", Path: "ci", Shared: ptr(true), S3: &tasks.GitLabRunnerCacheS3{
				ServerAddress: "s3.example.com", BucketName: "ci-cache", BucketLocation: "eu-west-1", Insecure: ptr(false),
				AccessKeyEnv: "S3_ACCESS", SecretKeyFile: file}}
		}
	}
	ctl := f.controller()
	ctl.ReadFile = os.ReadFile
	prep := func(g *tasks.GitLabRunner) *tasks.GitLabRunner {
		t.Helper()
		if err := g.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := g.Prepare(ctl); err != nil {
			t.Fatal(err)
		}
		return g
	}
	h := tasktest.New()
	changes := tasktest.Converge(t, prep(f.task(glrt, withCache(keyFile))), h)
	f.record(changes)
	s3 := runnersOf(t, decodeConfig(t, h))[0]["cache"].(map[string]any)["s3"].(map[string]any)
	if s3["AccessKey"] != access || s3["SecretKey"] != secret || s3["BucketName"] != "ci-cache" || s3["Insecure"] != false {
		t.Errorf("[runners.cache.s3] %v", s3)
	}
	for _, fl := range changes[0].Fields {
		if strings.HasSuffix(fl.Name, "Key") && !fl.Sensitive {
			t.Errorf("field %s is not sensitive", fl.Name)
		}
	}
	if !strings.Contains(changes[0].Diff, `SecretKey = "(sensitive value)"`) {
		t.Errorf("diff:\n%s", changes[0].Diff)
	}

	if err := os.WriteFile(keyFile, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	changes = tasktest.Converge(t, prep(f.task(glrt, withCache(keyFile))), h)
	f.record(changes)
	if len(changes) != 1 || tasks.FieldNames(changes[0].Fields) != "cache.s3.SecretKey" || !changes[0].Fields[0].Sensitive {
		t.Errorf("rotation: %+v", changes)
	}

	os.Chmod(keyFile, 0o644)
	g := f.task(glrt, withCache(keyFile))
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := g.Prepare(ctl); err == nil || !strings.Contains(err.Error(), "readable by other users") || !strings.Contains(err.Error(), "cache.s3.secret_key_file") {
		t.Errorf("a 0644 key file: %v", err)
	}
	delete(f.env, "S3_ACCESS")
	g = f.task(glrt, withCache(keyFile))
	g.Validate()
	if err := g.Prepare(ctl); err == nil || !strings.Contains(err.Error(), "S3_ACCESS is not set") {
		t.Errorf("no access key: %v", err)
	}
	f.assertNoSecrets(h, access, secret, rotated, glrt)
}

// listen_address is read by gitlab-runner only when it starts: setting it
// restarts the running runner container, drained first; without restart,
// the plan says so.
func TestGitLabRunnerListenAddressRestartsTheRunner(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h, d, _ := runnerHost(t)
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)

	g := f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) { g.ListenAddress = ":9252" }))
	changes, err := f.plan(g, h)
	if err != nil || len(changes) != 1 || !strings.Contains(strings.Join(changes[0].Warnings, "\n"), "reads listen_address only when it starts") {
		t.Errorf("without restart: %+v %v", changes, err)
	}

	g = f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) {
		g.ListenAddress, g.Restart = ":9252", &tasks.Drain{Containers: []string{"gitlab-runner"}}
	}))
	id := d.ContainerID("gitlab-runner")
	changes = tasktest.Converge(t, g, h)
	if len(changes) != 2 || changes[1].Action != tasks.Restart || changes[1].Target != "gitlab-runner" || !strings.Contains(changes[1].Summary, "drains gitlab-runner first") {
		t.Fatalf("changes %+v", changes)
	}
	if !slices.Equal(d.Signals("gitlab-runner"), []string{"SIGQUIT"}) || !d.Running("gitlab-runner") || d.ContainerID("gitlab-runner") != id {
		t.Errorf("signals %v, running %v, same container %v", d.Signals("gitlab-runner"), d.Running("gitlab-runner"), d.ContainerID("gitlab-runner") == id)
	}
	if m := decodeConfig(t, h); m["listen_address"] != ":9252" {
		t.Errorf("listen_address %v", m["listen_address"])
	}
	// Another setting changed: no restart (gitlab-runner reloads it).
	changes = tasktest.Converge(t, f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) {
		g.ListenAddress, g.Restart, g.Concurrent = ":9252", &tasks.Drain{Containers: []string{"gitlab-runner"}}, 8
	})), h)
	if len(changes) != 1 {
		t.Errorf("changes %+v", changes)
	}
	f.assertNoSecrets(h, glrt)
}

// Feature flags config.toml has that the task does not name are kept.
func TestGitLabRunnerFeatureFlagsMerge(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	file, _ := h.File(cfgPath)
	h.SetFile(cfgPath, string(file.Content)+"  [runners.feature_flags]\n    FF_USE_FASTZIP = true\n", 0o600, "root", "root")
	changes := tasktest.Converge(t, f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) {
		g.FeatureFlags = map[string]bool{"FF_NETWORK_PER_BUILD": true}
	})), h)
	if len(changes) != 1 || tasks.FieldNames(changes[0].Fields) != "feature_flags.FF_NETWORK_PER_BUILD" {
		t.Errorf("changes %+v", changes)
	}
	ff := runnersOf(t, decodeConfig(t, h))[0]["feature_flags"]
	if !reflect.DeepEqual(ff, map[string]any{"FF_USE_FASTZIP": true, "FF_NETWORK_PER_BUILD": true}) {
		t.Errorf("feature_flags %v", ff)
	}
}
