package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/dindops/dindops/fixtures/fakegitlab"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

const (
	cfgPath    = "/srv/gitlab-runner/config/config.toml"
	sysIDPath  = "/srv/gitlab-runner/config/.runner_system_id"
	regToken   = "GR1348941regSECRETtoken"
	wrongToken = "GR1348941wrongSECRET"
)

// gitlabFixture is a fake GitLab behind httptest plus everything a test
// produced, so it can be searched for tokens at the end.
type gitlabFixture struct {
	t      *testing.T
	fake   *fakegitlab.Server
	srv    *httptest.Server
	env    map[string]string
	output []string // changes, errors, commands: whatever dindops would show
}

func newGitLab(t *testing.T, opts fakegitlab.Options) *gitlabFixture {
	t.Helper()
	fake := fakegitlab.New(opts)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return &gitlabFixture{t: t, fake: fake, srv: srv, env: map[string]string{}}
}

func (f *gitlabFixture) controller() tasks.Controller {
	return tasks.Controller{
		LookupEnv: func(k string) (string, bool) { v, ok := f.env[k]; return v, ok },
		ReadFile: func(p string) ([]byte, error) {
			if p == "/controller/token" {
				return []byte(f.env["FILE_TOKEN"]), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
		HTTPClient: f.srv.Client(),
	}
}

// task returns a gitlab_runner task reading its token from $RUNNER_TOKEN,
// the way the shipped playbook configures it, after changing it with mod.
func (f *gitlabFixture) task(token string, mod func(*tasks.GitLabRunner)) *tasks.GitLabRunner {
	f.env["RUNNER_TOKEN"] = token
	g := &tasks.GitLabRunner{
		ConfigFile:  cfgPath,
		Name:        "build-1",
		URL:         f.srv.URL,
		TokenEnv:    "RUNNER_TOKEN",
		TokenFile:   "",
		Concurrent:  4,
		Executor:    "docker",
		Environment: []string{"COMPOSE_PROJECT_NAME=ci-job-$CI_JOB_ID"},
		Docker: tasks.GitLabRunnerDocker{
			Host:       "tcp://gitlab-dind:2375",
			Image:      "docker:27",
			Privileged: ptr(false),
			Volumes:    []string{"/var/run/docker.sock:/var/run/docker.sock", "/cache"},
		},
	}
	if mod != nil {
		mod(g)
	}
	return g
}

// prepare runs Validate and Prepare as the playbook loader does.
func (f *gitlabFixture) prepare(g *tasks.GitLabRunner) error {
	if err := g.Validate(); err != nil {
		f.record(err)
		return err
	}
	err := g.Prepare(f.controller())
	f.record(err)
	return err
}

func (f *gitlabFixture) mustPrepare(g *tasks.GitLabRunner) *tasks.GitLabRunner {
	f.t.Helper()
	if err := f.prepare(g); err != nil {
		f.t.Fatalf("prepare: %v", err)
	}
	return g
}

func (f *gitlabFixture) record(v ...any) {
	for _, x := range v {
		switch y := x.(type) {
		case nil:
		case error:
			if y != nil {
				f.output = append(f.output, y.Error())
			}
		case []tasks.Change:
			b, _ := json.Marshal(y)
			f.output = append(f.output, string(b))
			for _, c := range y {
				f.output = append(f.output, c.Summary, c.Diff, strings.Join(c.Warnings, "\n"))
				for _, fl := range c.Fields {
					o, n := fl.Shown()
					f.output = append(f.output, fl.Name, o, n)
				}
			}
		case *tasktest.Host:
			for _, c := range y.Commands {
				f.output = append(f.output, strings.Join(c, " "))
			}
		default:
			f.output = append(f.output, fmt.Sprint(x))
		}
	}
}

// plan and apply record what they produce.
func (f *gitlabFixture) plan(g *tasks.GitLabRunner, h *tasktest.Host) ([]tasks.Change, error) {
	h.Freeze()
	defer h.Thaw()
	ch, err := g.Plan(context.Background(), h)
	f.record(ch, err)
	return ch, err
}

func (f *gitlabFixture) apply(g *tasks.GitLabRunner, h tasks.Host, ch []tasks.Change) error {
	err := g.Apply(context.Background(), h, ch)
	f.record(err)
	return err
}

// assertNoSecrets fails if any secret appears in anything recorded.
func (f *gitlabFixture) assertNoSecrets(h *tasktest.Host, secrets ...string) {
	f.t.Helper()
	f.record(h)
	all := strings.Join(f.output, "\n")
	for _, s := range secrets {
		if s != "" && strings.Contains(all, s) {
			f.t.Errorf("secret %.8s… appears in dindops's output:\n%s", s, all)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// onlyVerifies returns the first request to the fake GitLab that is not a
// successful POST /api/v4/runners/verify, or nil: a registered runner's
// plan and apply only check its token (beside the read-only GETs of a
// registration's plan).
func onlyVerifies(f *gitlabFixture) *fakegitlab.Request {
	reqs := f.fake.Requests()
	for i, r := range reqs {
		if r.Method == "GET" {
			continue
		}
		if r.Method != "POST" || r.Path != "/api/v4/runners/verify" || r.Status != 200 {
			return &reqs[i]
		}
	}
	return nil
}

func decodeConfig(t *testing.T, h *tasktest.Host) map[string]any {
	t.Helper()
	f, ok := h.File(cfgPath)
	if !ok {
		t.Fatalf("%s was not written", cfgPath)
	}
	var m map[string]any
	if _, err := toml.Decode(string(f.Content), &m); err != nil {
		t.Fatalf("written config.toml does not parse: %v\n%s", err, f.Content)
	}
	return m
}

func runnersOf(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	rs, ok := m["runners"].([]map[string]any)
	if !ok {
		t.Fatalf("runners is %T", m["runners"])
	}
	return rs
}

// verifies reports whether the fake GitLab accepts token as a runner token.
func (f *gitlabFixture) verifies(token string) bool {
	resp, err := f.srv.Client().Post(f.srv.URL+"/api/v4/runners/verify", "application/json",
		strings.NewReader(fmt.Sprintf(`{"token":%q,"system_id":"s_000000000000"}`, token)))
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestGitLabRunnerRegistrationTokenRegistersOnce(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true})
	g := f.mustPrepare(f.task(regToken, func(g *tasks.GitLabRunner) {
		g.TagList = []string{"docker", "dind"}
		g.RunUntagged = ptr(false)
		g.AccessLevel = "ref_protected"
	}))
	h := tasktest.New()

	changes := tasktest.Converge(t, g, h)
	f.record(changes)
	if len(changes) != 1 || changes[0].Action != tasks.Create || changes[0].Resource != "runner" || changes[0].Target != "build-1" {
		t.Fatalf("changes: %+v", changes)
	}
	c := changes[0]
	if c.Summary != "register runner build-1 with "+f.srv.URL {
		t.Errorf("summary %q", c.Summary)
	}
	if !strings.Contains(c.Diff, `+  token = "(sensitive value)"`) || !strings.Contains(c.Diff, `+    host = "tcp://gitlab-dind:2375"`) {
		t.Errorf("diff:\n%s", c.Diff)
	}
	if len(c.Warnings) == 0 || !strings.Contains(c.Warnings[0], "deprecated") {
		t.Errorf("no warning about the registration token: %v", c.Warnings)
	}
	var tokenField *tasks.Field
	for i := range c.Fields {
		if c.Fields[i].Name == "token" {
			tokenField = &c.Fields[i]
		}
	}
	if tokenField == nil || !tokenField.Sensitive {
		t.Errorf("token field missing or not sensitive: %+v", c.Fields)
	}
	// Field values are plain text, not TOML or JSON inside a string.
	shown := map[string]string{}
	for _, fl := range c.Fields {
		shown[fl.Name] = fl.New
	}
	for name, want := range map[string]string{
		"url": f.srv.URL, "executor": "docker", "concurrent": "4", "environment": "COMPOSE_PROJECT_NAME=ci-job-$CI_JOB_ID",
		"docker.image": "docker:27", "docker.privileged": "false", "docker.volumes": "/var/run/docker.sock:/var/run/docker.sock, /cache",
	} {
		if shown[name] != want {
			t.Errorf("field %s = %q, want %q", name, shown[name], want)
		}
	}

	// Exactly one runner, registered with the legacy fields.
	rs := f.fake.Runners()
	if len(rs) != 1 || f.fake.CountRequests("POST", "/api/v4/runners") != 1 {
		t.Fatalf("runners %+v, registrations %d", rs, f.fake.CountRequests("POST", "/api/v4/runners"))
	}
	if r := rs[0]; r.Description != "build-1" || r.CreatedVia != fakegitlab.ViaRegistrationToken || r.RunUntagged ||
		r.AccessLevel != "ref_protected" || strings.Join(r.TagList, ",") != "docker,dind" {
		t.Errorf("runner in GitLab: %+v", r)
	}

	// A valid config.toml holding the issued token, 0600 root, in a 0700 directory made for it.
	file, _ := h.File(cfgPath)
	if file.Mode != 0o600 || file.Owner != "root" {
		t.Errorf("config.toml mode %o owner %s", file.Mode, file.Owner)
	}
	if !h.Ran("mkdir", "-p", "-m0700", "/srv/gitlab-runner/config") {
		t.Errorf("config directory not created: %v", h.Commands)
	}
	m := decodeConfig(t, h)
	if m["concurrent"] != int64(4) {
		t.Errorf("concurrent = %v", m["concurrent"])
	}
	r := runnersOf(t, m)
	if len(r) != 1 {
		t.Fatalf("runners in config.toml: %v", r)
	}
	tok, _ := r[0]["token"].(string)
	if tok == "" || tok == regToken || !f.verifies(tok) || !strings.HasPrefix(rs[0].TokenPrefix, tok[:3]) {
		t.Errorf("config.toml token is not the runner's token (prefix %s)", rs[0].TokenPrefix)
	}
	if r[0]["id"] != int64(rs[0].ID) || r[0]["executor"] != "docker" || r[0]["url"] != f.srv.URL {
		t.Errorf("runner entry %v", r[0])
	}
	d, _ := r[0]["docker"].(map[string]any)
	if d["host"] != "tcp://gitlab-dind:2375" || d["image"] != "docker:27" || d["privileged"] != false ||
		!reflect.DeepEqual(d["volumes"], []any{"/var/run/docker.sock:/var/run/docker.sock", "/cache"}) {
		t.Errorf("[runners.docker] %v", d)
	}
	if _, ok := h.File(sysIDPath); ok {
		t.Errorf("a registration token needs no .runner_system_id")
	}

	// Another full round registers nothing more.
	again, err := f.plan(g, h)
	if err != nil || len(again) != 0 {
		t.Errorf("plan after apply: %v %v", again, err)
	}
	f.assertNoSecrets(h, regToken, tok)
}

func TestGitLabRunnerAuthenticationTokenVerifies(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	id, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{Description: "from the UI"})
	g := f.mustPrepare(f.task(glrt, nil))
	h := tasktest.New()
	h.MkdirAll("/srv/gitlab-runner/config")

	changes := tasktest.Converge(t, g, h)
	f.record(changes)
	c := changes[0]
	var request string
	for _, fl := range c.Fields {
		if fl.Name == "request" {
			request = fl.New
		}
	}
	if !strings.Contains(request, "/api/v4/runners/verify token=(sensitive value) system_id=s_") {
		t.Errorf("request field %q", request)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings %v", c.Warnings)
	}

	// Once to register, once more by the plan after apply, which checks
	// that the token in config.toml is still valid.
	if n := f.fake.CountRequests("POST", "/api/v4/runners/verify"); n != 2 || f.fake.CountRequests("POST", "/api/v4/runners") != 0 {
		t.Errorf("verify requests %d", n)
	}
	sid, ok := h.File(sysIDPath)
	if !ok || sid.Mode != 0o600 {
		t.Fatalf(".runner_system_id not written: %+v", sid)
	}
	rs := f.fake.Runners()
	if len(rs) != 1 || !reflect.DeepEqual(rs[0].VerifiedSystemIDs, []string{string(sid.Content)}) {
		t.Errorf("GitLab saw system ids %v, the host keeps %q", rs[0].VerifiedSystemIDs, sid.Content)
	}
	r := runnersOf(t, decodeConfig(t, h))
	if len(r) != 1 || r[0]["token"] != glrt || r[0]["id"] != id || r[0]["name"] != "build-1" {
		t.Errorf("runner entry %v", r)
	}
	f.assertNoSecrets(h, glrt)
}

func TestGitLabRunnerKeepsAnExistingSystemID(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	g := f.mustPrepare(f.task(glrt, nil))
	h := tasktest.New()
	h.SetFile(sysIDPath, "s_0123456789ab\n", 0o600, "root", "root")
	tasktest.Converge(t, g, h)
	if got := f.fake.Runners()[0].VerifiedSystemIDs; !reflect.DeepEqual(got, []string{"s_0123456789ab"}) {
		t.Errorf("verified with %v", got)
	}
	if sid, _ := h.File(sysIDPath); string(sid.Content) != "s_0123456789ab\n" {
		t.Errorf(".runner_system_id rewritten: %q", sid.Content)
	}
}

// C10: server-side fields with a glrt- token are refused before any host is
// contacted, naming every field set.
func TestGitLabRunnerAuthenticationTokenRefusesServerSideFields(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	g := f.task(glrt, func(g *tasks.GitLabRunner) {
		g.TagList = []string{"docker"}
		g.Locked = ptr(true)
		g.RunUntagged = ptr(false)
	})
	err := f.prepare(g)
	var fe *tasks.FieldError
	if !errors.As(err, &fe) || fe.Field != "tag_list" {
		t.Fatalf("error %v", err)
	}
	for _, want := range []string{"tag_list, run_untagged, locked", "glrt-", "GitLab's UI", "/api/v4/user/runners"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(f.fake.Requests()) != 0 {
		t.Errorf("GitLab was contacted: %v", f.fake.Requests())
	}
	f.assertNoSecrets(tasktest.New(), glrt)
}

// C09: a refused registration token fails once, with the status and the way
// out, and leaves config.toml as it was.
func TestGitLabRunnerRefusedRegistrationToken(t *testing.T) {
	existing := "concurrent = 1\n"
	for _, tc := range []struct {
		name   string
		opts   fakegitlab.Options
		status string
	}{
		{"invalid token (403)", fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true}, "403 Forbidden: 403 Forbidden - invalid token supplied"},
		{"registration disallowed (410)", fakegitlab.Options{RegistrationTokens: []string{wrongToken}}, "410 Gone: 410 Gone - runner registration disallowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newGitLab(t, tc.opts)
			g := f.mustPrepare(f.task(wrongToken, nil))
			h := tasktest.New()
			h.SetFile(cfgPath, existing, 0o600, "root", "root")

			changes, err := f.plan(g, h)
			if err != nil || len(changes) != 1 {
				t.Fatalf("plan: %v %v", changes, err)
			}
			err = f.apply(g, h, changes)
			var apiErr *tasks.GitLabAPIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("apply error %T %v", err, err)
			}
			for _, want := range []string{tc.status, "glrt-", "Settings > CI/CD > Runners", "POST /api/v4/user/runners", "nothing was written"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if n := len(changesOf(f.fake.Requests())); n != 1 {
				t.Errorf("GitLab got %d requests beside plan's read-only checks, want exactly one: %v", n, f.fake.Requests())
			}
			if file, _ := h.File(cfgPath); string(file.Content) != existing || len(h.Writes) != 0 {
				t.Errorf("config.toml touched: %q, writes %v", file.Content, h.Writes)
			}
			if len(f.fake.Runners()) != 0 {
				t.Errorf("a runner was created")
			}
			// On a host without config.toml, not even its directory is made.
			fresh := tasktest.New()
			changes, _ = f.plan(g, fresh)
			if err := f.apply(g, fresh, changes); err == nil || fresh.Ran("mkdir") || len(fresh.Paths()) != 0 {
				t.Errorf("refused on a fresh host: %v, commands %v, paths %v", err, fresh.Commands, fresh.Paths())
			}
			f.assertNoSecrets(h, wrongToken)
		})
	}
}

func TestGitLabRunnerRejectedAuthenticationToken(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	const stale = "glrt-staleSECRETtoken"
	g := f.mustPrepare(f.task(stale, nil))
	h := tasktest.New()
	changes, err := f.plan(g, h)
	if err != nil {
		t.Fatal(err)
	}
	err = f.apply(g, h, changes)
	if err == nil || !strings.Contains(err.Error(), "runner authentication token rejected by "+f.srv.URL+" (403 Forbidden)") ||
		!strings.Contains(err.Error(), "current glrt- token") {
		t.Fatalf("error %v", err)
	}
	if f.fake.CountRequests("POST", "/api/v4/runners/verify") != 1 || len(h.Writes) != 0 {
		t.Errorf("requests %v, writes %v", f.fake.Requests(), h.Writes)
	}
	f.assertNoSecrets(h, stale)
}

// C12: a file that is not TOML stops the task and is never overwritten.
func TestGitLabRunnerInvalidConfigIsNeverOverwritten(t *testing.T) {
	for _, bad := range []string{
		"concurrent = 4\nconcurrent = 5\n",
		"[[runners]]\n  name = \"build-1\"\n  token = glrt-bareSECRETvalue\n",
		"[[runners]\n",
	} {
		f := newGitLab(t, fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true})
		g := f.mustPrepare(f.task(regToken, nil))
		h := tasktest.New()
		h.SetFile(cfgPath, bad, 0o600, "root", "root")
		_, err := f.plan(g, h)
		var te *tasks.TOMLError
		if !errors.As(err, &te) || te.Line < 1 || !strings.Contains(err.Error(), cfgPath+":") || !strings.Contains(err.Error(), "never overwrites") {
			t.Errorf("%q: error %v", bad, err)
		}
		if file, _ := h.File(cfgPath); string(file.Content) != bad || len(f.fake.Requests()) != 0 {
			t.Errorf("%q: file or GitLab touched", bad)
		}
		f.assertNoSecrets(h, regToken, "glrt-bareSECRETvalue")
	}
}

func TestGitLabRunnerDuplicateEntries(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	g := f.mustPrepare(f.task(glrt, nil))
	h := tasktest.New()
	h.SetFile(cfgPath, "[[runners]]\n  name = \"build-1\"\n  token = \"a\"\n\n[[runners]]\n  name = \"x\"\n\n[[runners]]\n  name = \"build-1\"\n  token = \"b\"\n", 0o600, "root", "root")
	_, err := f.plan(g, h)
	if err == nil || !strings.Contains(err.Error(), `2 [[runners]] entries named "build-1" (entries 1, 3)`) {
		t.Errorf("error %v", err)
	}
}

// existingConfig is config.toml as gitlab-runner writes it, with another
// runner, global settings and keys dindops does not know.
const existingConfig = `concurrent = 2
check_interval = 0
log_level = "warning"
listen_address = ":9252"
shutdown_timeout = 0

[session_server]
  session_timeout = 1800

[[runners]]
  name = "other"
  url = "https://gitlab.other.example/"
  id = 7
  token = "glrt-otherRunnerSECRET"
  token_obtained_at = 2024-05-01T10:00:00Z
  token_expires_at = 0001-01-01T00:00:00Z
  executor = "shell"
  future_option = "kept"
  [runners.custom_build_dir]
  [runners.cache]
    MaxUploadedArchiveSize = 0
    [runners.cache.s3]
      ServerAddress = "s3.example"
      AccessKey = "AKIAotherSECRET"
      SecretKey = "s3otherSECRET"
`

func TestGitLabRunnerKeepsWhatItDoesNotManage(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	g := f.mustPrepare(f.task(glrt, nil))
	h := tasktest.New()
	h.SetFile(cfgPath, existingConfig, 0o600, "root", "root")
	var before map[string]any
	if _, err := toml.Decode(existingConfig, &before); err != nil {
		t.Fatal(err)
	}

	changes := tasktest.Converge(t, g, h)
	f.record(changes)
	if len(changes[0].Warnings) != 0 {
		t.Errorf("a file in gitlab-runner's layout got warnings: %v", changes[0].Warnings)
	}
	file, _ := h.File(cfgPath)
	// The file is only extended: the global section (but concurrent) and the
	// other runner keep their exact text.
	wantPrefix := strings.Replace(existingConfig, "concurrent = 2", "concurrent = 4", 1)
	if !strings.HasPrefix(string(file.Content), wantPrefix) {
		t.Errorf("existing text not kept:\n%s", file.Content)
	}
	after := decodeConfig(t, h)
	for _, k := range []string{"check_interval", "log_level", "listen_address", "shutdown_timeout", "session_server"} {
		if !reflect.DeepEqual(after[k], before[k]) {
			t.Errorf("%s: %v → %v", k, before[k], after[k])
		}
	}
	rs := runnersOf(t, after)
	if len(rs) != 2 || !reflect.DeepEqual(rs[0], runnersOf(t, before)[0]) || rs[1]["name"] != "build-1" {
		t.Errorf("runners: %v", rs)
	}
	if strings.Count(string(file.Content), "concurrent =") != 1 {
		t.Errorf("duplicate key:\n%s", file.Content)
	}
	// The plan's diff masks every secret of the file.
	if !strings.Contains(changes[0].Diff, `token = "(sensitive value)"`) {
		t.Errorf("diff:\n%s", changes[0].Diff)
	}
	f.assertNoSecrets(h, glrt, "glrt-otherRunnerSECRET", "AKIAotherSECRET", "s3otherSECRET")
}

// Any TOML survives a rewrite with the same values, whatever its layout; a
// file not in gitlab-runner's layout is announced.
func TestGitLabRunnerRewriteKeepsEveryValue(t *testing.T) {
	const odd = `# managed by hand
"quoted key" = "a \"b\" \\ c\ttab ünï"
multi = """
two
lines"""
float = 1.5
exp = 1e10
neg = -7
date = 1979-05-27
ltime = 07:32:00
ldt = 1979-05-27T07:32:00
odt = 1979-05-27T07:32:00.999-07:00
nested = [[1, 2], ["a"]]
points = [{x = 1, y = 2}, {x = 3}]
inline = {a = 1, b = {c = "d"}}
dotted.key.here = true
empty = []

[[runners]]
  name = "other"
  token = "t"
  [[runners.docker.services]]
    name = "postgres"
  [[runners.docker.services]]
    name = "redis"
    alias = "cache"

[[runners]]
  name = "third"
  [runners.docker]
    image = "alpine"
    [[runners.docker.services]]
      name = "mysql"
`
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	g := f.mustPrepare(f.task(glrt, nil))
	h := tasktest.New()
	h.SetFile(cfgPath, odd, 0o600, "root", "root")
	var before map[string]any
	if _, err := toml.Decode(odd, &before); err != nil {
		t.Fatal(err)
	}
	changes := tasktest.Converge(t, g, h)
	if w := strings.Join(changes[0].Warnings, "\n"); !strings.Contains(w, "comments and formatting are not kept") {
		t.Errorf("warnings %q", w)
	}
	after := decodeConfig(t, h)
	rs := runnersOf(t, after)
	if len(rs) != 3 || rs[2]["name"] != "build-1" {
		t.Fatalf("runners %v", rs)
	}
	after["runners"] = rs[:2]
	delete(after, "concurrent")
	// Arrays of inline tables are written as arrays of tables: the same TOML data.
	before["points"] = []map[string]any{{"x": int64(1), "y": int64(2)}, {"x": int64(3)}}
	if !reflect.DeepEqual(normalizeTimes(before), normalizeTimes(after)) {
		t.Errorf("values changed:\nbefore %#v\nafter  %#v", before, after)
	}
}

// normalizeTimes renders times as text, since time.Time values with equal
// instants may differ in their Location pointer.
func normalizeTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			m[k] = normalizeTimes(e)
		}
		return m
	case []map[string]any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = normalizeTimes(e)
		}
		return s
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = normalizeTimes(e)
		}
		return s
	case fmt.Stringer:
		return x.String()
	}
	return v
}

func TestGitLabRunnerUpdatesChangedSettings(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	before := decodeConfig(t, h)

	g := f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) {
		g.Docker.Image = "docker:28"
		g.Docker.Privileged = ptr(true)
		g.Docker.Volumes = append(g.Docker.Volumes, "/builds")
		g.Environment = append(g.Environment, "GIT_DEPTH=1")
		g.CheckInterval = 5
		g.URL = f.srv.URL + "/" // the same GitLab
	}))
	changes := tasktest.Converge(t, g, h)
	f.record(changes)
	c := changes[0]
	if c.Action != tasks.Update || c.Summary != "update runner build-1 in "+cfgPath+": check_interval, environment, docker.image, docker.privileged, docker.volumes" {
		t.Errorf("change %v %q", c.Action, c.Summary)
	}
	// Values read as the user writes them: no TOML quoting, an environment
	// one entry per line, other lists joined with ", ".
	want := []tasks.Field{
		{Name: "check_interval", New: "5"},
		{Name: "environment", Old: "COMPOSE_PROJECT_NAME=ci-job-$CI_JOB_ID", New: "COMPOSE_PROJECT_NAME=ci-job-$CI_JOB_ID\nGIT_DEPTH=1"},
		{Name: "docker.image", Old: "docker:27", New: "docker:28"},
		{Name: "docker.privileged", Old: "false", New: "true"},
		{Name: "docker.volumes", Old: "/var/run/docker.sock:/var/run/docker.sock, /cache", New: "/var/run/docker.sock:/var/run/docker.sock, /cache, /builds"},
	}
	if !reflect.DeepEqual(c.Fields, want) {
		t.Errorf("fields %+v", c.Fields)
	}
	if b, _ := json.Marshal(c.Fields); !strings.Contains(string(b), `{"name":"docker.image","old":"docker:27","new":"docker:28"}`) {
		t.Errorf("JSON fields %s", b)
	}
	for _, line := range []string{`-    image = "docker:27"`, `+    image = "docker:28"`, `+check_interval = 5`} {
		if !strings.Contains(c.Diff, line) {
			t.Errorf("diff lacks %q:\n%s", line, c.Diff)
		}
	}
	after := decodeConfig(t, h)
	rb, ra := runnersOf(t, before)[0], runnersOf(t, after)[0]
	if ra["token"] != glrt || ra["id"] != rb["id"] || ra["token_obtained_at"] != rb["token_obtained_at"] {
		t.Errorf("registration data changed: %v → %v", rb, ra)
	}
	if len(f.fake.Runners()) != 1 || onlyVerifies(f) != nil {
		t.Errorf("the update did more than check the token with GitLab: %v", f.fake.Requests())
	}
	f.assertNoSecrets(h, glrt)
}

// Switching the runner from plain TCP to a TLS dind and back: host,
// tls_verify and tls_cert_path change together, and tls_cert_path given as
// "" removes the key (gitlab-runner speaks TLS whenever it is set).
func TestGitLabRunnerSwitchesDockerTLS(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	plain := func(g *tasks.GitLabRunner) { g.Docker.TLSVerify, g.Docker.TLSCertPath = ptr(false), ptr("") }
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, plain)), h)
	if d := runnersOf(t, decodeConfig(t, h))[0]["docker"].(map[string]any); d["tls_verify"] != false || d["tls_cert_path"] != nil {
		t.Fatalf("plain: %v", d)
	}

	changes := tasktest.Converge(t, f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) {
		g.Docker.Host, g.Docker.TLSVerify, g.Docker.TLSCertPath = "tcp://gitlab-dind:2376", ptr(true), ptr("/certs/client")
	})), h)
	want := []tasks.Field{
		{Name: "docker.host", Old: "tcp://gitlab-dind:2375", New: "tcp://gitlab-dind:2376"},
		{Name: "docker.tls_verify", Old: "false", New: "true"},
		{Name: "docker.tls_cert_path", New: "/certs/client"},
	}
	if len(changes) != 1 || !reflect.DeepEqual(changes[0].Fields, want) {
		t.Fatalf("to TLS: %+v", changes)
	}
	for _, line := range []string{`+    host = "tcp://gitlab-dind:2376"`, `+    tls_verify = true`, `+    tls_cert_path = "/certs/client"`} {
		if !strings.Contains(changes[0].Diff, line) {
			t.Errorf("diff lacks %q:\n%s", line, changes[0].Diff)
		}
	}

	changes = tasktest.Converge(t, f.mustPrepare(f.task(glrt, plain)), h)
	want = []tasks.Field{
		{Name: "docker.host", Old: "tcp://gitlab-dind:2376", New: "tcp://gitlab-dind:2375"},
		{Name: "docker.tls_verify", Old: "true", New: "false"},
		{Name: "docker.tls_cert_path", Old: "/certs/client"},
	}
	if len(changes) != 1 || !reflect.DeepEqual(changes[0].Fields, want) {
		t.Fatalf("back to plain: %+v", changes)
	}
	if d := runnersOf(t, decodeConfig(t, h))[0]["docker"].(map[string]any); d["tls_cert_path"] != nil {
		t.Errorf("tls_cert_path kept: %v", d)
	}
	// Left out, tls_cert_path is not managed: a hand-set one stays.
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) {
		g.Docker.Host, g.Docker.TLSVerify, g.Docker.TLSCertPath = "tcp://gitlab-dind:2376", ptr(true), ptr("/certs/client")
	})), h)
	if changes := tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h); len(changes) != 1 || len(changes[0].Fields) != 1 || changes[0].Fields[0].Name != "docker.host" {
		t.Errorf("tls_cert_path left out: %+v", changes)
	}
	if d := runnersOf(t, decodeConfig(t, h))[0]["docker"].(map[string]any); d["tls_cert_path"] != "/certs/client" {
		t.Errorf("unmanaged tls_cert_path removed: %v", d)
	}
}

// A glrt- token reset in GitLab and given anew replaces the one in
// config.toml, after GitLab accepts it; the rest of the entry stays.
func TestGitLabRunnerReplacesARotatedAuthenticationToken(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, old := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(old, nil)), h)
	sid, _ := h.File(sysIDPath)

	id2, rotated := f.fake.CreateRunner(fakegitlab.NewRunner{})
	g := f.mustPrepare(f.task(rotated, nil))
	changes := tasktest.Converge(t, g, h)
	f.record(changes)
	c := changes[0]
	if c.Action != tasks.Update || tasks.FieldNames(c.Fields) != "token, token_source, request" || !c.Fields[0].Sensitive {
		t.Errorf("change %v %+v", c.Action, c.Fields)
	}
	r := runnersOf(t, decodeConfig(t, h))[0]
	if r["token"] != rotated || r["id"] != id2 || r["executor"] != "docker" {
		t.Errorf("entry %v", r)
	}
	if got := f.fake.Runners()[1].VerifiedSystemIDs; !reflect.DeepEqual(got, []string{string(sid.Content)}) {
		t.Errorf("verified with %v, host keeps %q", got, sid.Content)
	}

	// A token GitLab refuses leaves config.toml alone.
	before, _ := h.File(cfgPath)
	g = f.mustPrepare(f.task("glrt-revokedSECRET", nil))
	changes, err := f.plan(g, h)
	if err != nil || len(changes) != 1 {
		t.Fatalf("plan: %v %v", changes, err)
	}
	if err := f.apply(g, h, changes); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("apply: %v", err)
	}
	if after, _ := h.File(cfgPath); string(after.Content) != string(before.Content) {
		t.Errorf("config.toml changed after a refused token")
	}
	f.assertNoSecrets(h, old, rotated, "glrt-revokedSECRET")
}

func TestGitLabRunnerFixesModeAndOwner(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	g := f.mustPrepare(f.task(glrt, nil))
	tasktest.Converge(t, g, h)
	file, _ := h.File(cfgPath)
	h.SetFile(cfgPath, string(file.Content), 0o644, "deploy", "deploy")
	changes := tasktest.Converge(t, g, h)
	if c := changes[0]; c.Action != tasks.Update || tasks.FieldNames(c.Fields) != "mode, owner" || c.Fields[0].Old != "0644" {
		t.Errorf("change %+v", c)
	}
	if file, _ := h.File(cfgPath); file.Mode != 0o600 || file.Owner != "root" {
		t.Errorf("file %o %s", file.Mode, file.Owner)
	}
}

func TestGitLabRunnerEntryWithoutTokenIsRegistered(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	h.SetFile(cfgPath, "[[runners]]\n  name = \"build-1\"\n  url = \"https://old\"\n", 0o600, "root", "root")
	changes := tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	if !strings.Contains(changes[0].Summary, "has no token") {
		t.Errorf("summary %q", changes[0].Summary)
	}
	rs := runnersOf(t, decodeConfig(t, h))
	if len(rs) != 1 || rs[0]["token"] != glrt || rs[0]["url"] != f.srv.URL {
		t.Errorf("runners %v", rs)
	}
}

func TestGitLabRunnerAbsent(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true})
	h := tasktest.New()
	h.SetFile(cfgPath, existingConfig, 0o600, "root", "root")
	tasktest.Converge(t, f.mustPrepare(f.task(regToken, nil)), h)
	if len(f.fake.Runners()) != 1 {
		t.Fatal("not registered")
	}
	tok := runnersOf(t, decodeConfig(t, h))[1]["token"].(string)

	// No token input is needed to decommission.
	absent := func(mod func(*tasks.GitLabRunner)) *tasks.GitLabRunner {
		g := &tasks.GitLabRunner{ConfigFile: cfgPath, Name: "build-1", URL: f.srv.URL, State: "absent"}
		if mod != nil {
			mod(g)
		}
		return f.mustPrepare(g)
	}
	changes := tasktest.Converge(t, absent(nil), h)
	f.record(changes)
	c := changes[0]
	if c.Action != tasks.Delete || c.Summary != "unregister runner build-1 (id 1) from "+f.srv.URL+" and remove it from "+cfgPath || !strings.Contains(c.Diff, `-  name = "build-1"`) {
		t.Errorf("change %+v", c)
	}
	if len(c.Fields) != 1 || c.Fields[0].New != "DELETE "+f.srv.URL+"/api/v4/runners token=(sensitive value)" || len(c.Warnings) != 0 {
		t.Errorf("fields %+v warnings %v", c.Fields, c.Warnings)
	}
	if len(f.fake.Runners()) != 0 || f.fake.CountRequests("DELETE", "/api/v4/runners") != 1 {
		t.Errorf("runner not deleted in GitLab: %v", f.fake.Requests())
	}
	file, _ := h.File(cfgPath)
	if want := strings.Replace(existingConfig, "concurrent = 2", "concurrent = 4", 1); string(file.Content) != want {
		t.Errorf("config.toml is not back to what it was:\n%s", file.Content)
	}

	// A glrt- runner is deleted too, with a word for hosts that share it;
	// unregister: manager removes only this host's runner manager, and
	// none leaves GitLab alone.
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	if !f.verifies(glrt) { // another host's runner manager (system ID s_000000000000)
		t.Fatal("glrt- token refused")
	}
	sid, _ := h.File(sysIDPath)
	changes = tasktest.Converge(t, absent(func(g *tasks.GitLabRunner) { g.Unregister = "manager" }), h)
	f.record(changes)
	if c := changes[0]; !strings.Contains(c.Summary, "unregister this host's runner manager (system ID "+string(sid.Content)+") of runner build-1 (id 2)") ||
		c.Fields[0].New != "DELETE "+f.srv.URL+"/api/v4/runners/managers token=(sensitive value) system_id="+string(sid.Content) {
		t.Errorf("change %+v", c)
	}
	if rs := f.fake.Runners(); len(rs) != 1 || strings.Join(rs[0].VerifiedSystemIDs, ",") != "s_000000000000" {
		t.Errorf("the runner or its other manager is gone: %+v", rs)
	}

	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	changes = tasktest.Converge(t, absent(nil), h)
	if w := strings.Join(changes[0].Warnings, "\n"); !strings.Contains(w, "other hosts registered with the same glrt- token lose it too; unregister: manager removes only this host") {
		t.Errorf("warnings %q", w)
	}
	if len(f.fake.Runners()) != 0 {
		t.Errorf("glrt- runner not deleted in GitLab")
	}

	_, glrt2 := f.fake.CreateRunner(fakegitlab.NewRunner{})
	tasktest.Converge(t, f.mustPrepare(f.task(glrt2, nil)), h)
	deletes := f.fake.CountRequests("DELETE", "/api/v4/runners")
	changes = tasktest.Converge(t, absent(func(g *tasks.GitLabRunner) { g.Unregister = "none" }), h)
	if w := strings.Join(changes[0].Warnings, "\n"); changes[0].Summary != "remove runner build-1 from "+cfgPath || !strings.Contains(w, "stays in "+f.srv.URL+" (unregister: none)") {
		t.Errorf("change %+v", changes[0])
	}
	if len(f.fake.Runners()) != 1 || f.fake.CountRequests("DELETE", "/api/v4/runners") != deletes {
		t.Errorf("unregister: none touched GitLab")
	}

	// A runner GitLab no longer knows is gone already: removed from
	// config.toml all the same. .runner_system_id stays.
	_, glrt3 := f.fake.CreateRunner(fakegitlab.NewRunner{})
	tasktest.Converge(t, f.mustPrepare(f.task(glrt3, nil)), h)
	f.fake.DeleteRunner(f.fake.Runners()[1].ID)
	tasktest.Converge(t, absent(nil), h)
	if rs := runnersOf(t, decodeConfig(t, h)); len(rs) != 1 {
		t.Errorf("runners left: %v", rs)
	}
	if after, ok := h.File(sysIDPath); !ok || string(after.Content) != string(sid.Content) {
		t.Errorf(".runner_system_id not kept")
	}
	// unregister: manager without a system ID cannot say which manager.
	h.RemoveFile(sysIDPath)
	tasktest.Converge(t, f.mustPrepare(f.task(regToken, nil)), h)
	_, err := f.plan(absent(func(g *tasks.GitLabRunner) { g.Unregister = "manager" }), h)
	if err == nil || !strings.Contains(err.Error(), ".runner_system_id does not exist") {
		t.Errorf("manager without a system ID: %v", err)
	}
	f.assertNoSecrets(h, regToken, tok, glrt, glrt2, glrt3)
}

func TestGitLabRunnerApplyRefusesAFileChangedSincePlan(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	g := f.mustPrepare(f.task(glrt, nil))
	h := tasktest.New()
	changes, err := f.plan(g, h)
	if err != nil {
		t.Fatal(err)
	}
	h.SetFile(cfgPath, "concurrent = 9\n", 0o600, "root", "root")
	if err := f.apply(g, h, changes); err == nil || !strings.Contains(err.Error(), "changed on the host since it was planned") {
		t.Errorf("error %v", err)
	}
	if reqs := changesOf(f.fake.Requests()); len(reqs) != 0 {
		t.Errorf("GitLab contacted: %v", reqs)
	}
}

// changesOf drops the GET requests (plan's read-only checks) from reqs.
func changesOf(reqs []fakegitlab.Request) []fakegitlab.Request {
	var out []fakegitlab.Request
	for _, r := range reqs {
		if r.Method != "GET" {
			out = append(out, r)
		}
	}
	return out
}

// failingWrites is a host whose config.toml cannot be written.
type failingWrites struct{ *tasktest.Host }

func (f failingWrites) WriteFile(ctx context.Context, p string, b []byte, o tasks.WriteOptions) error {
	if p == cfgPath {
		return fmt.Errorf("write %s: disk full", p)
	}
	return f.Host.WriteFile(ctx, p, b, o)
}

func TestGitLabRunnerDeletesARegistrationItCouldNotWrite(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true})
	g := f.mustPrepare(f.task(regToken, nil))
	h := tasktest.New()
	changes, err := f.plan(g, h)
	if err != nil {
		t.Fatal(err)
	}
	err = f.apply(g, failingWrites{h}, changes)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "deleted again") {
		t.Errorf("error %v", err)
	}
	if len(f.fake.Runners()) != 0 || f.fake.CountRequests("DELETE", "/api/v4/runners") != 1 {
		t.Errorf("orphan runner left in GitLab: %+v", f.fake.Runners())
	}
	f.assertNoSecrets(h, regToken)
}

func TestGitLabRunnerValidate(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	for _, tc := range []struct {
		mod   func(*tasks.GitLabRunner)
		field string
		msg   string
	}{
		{func(g *tasks.GitLabRunner) { g.Name = "" }, "name", "required"},
		{func(g *tasks.GitLabRunner) { g.URL = "gitlab.example.com" }, "url", "not a GitLab URL"},
		{func(g *tasks.GitLabRunner) { g.URL = "https://user:pw@gitlab.example.com" }, "url", "no user or password"},
		// A token in the URL is never echoed.
		{func(g *tasks.GitLabRunner) { g.URL = "https://oauth2:glpat-inURLsecret@gitlab.example.com" }, "url", `"https://oauth2:xxxxx@gitlab.example.com" is not a GitLab URL`},
		{func(g *tasks.GitLabRunner) { g.URL = "https://glpat-inURLsecret@gitlab.example.com" }, "url", `"https://xxxxx@gitlab.example.com" is not a GitLab URL`},
		{func(g *tasks.GitLabRunner) { g.TokenEnv = "" }, "token_env", "token_file"},
		{func(g *tasks.GitLabRunner) { g.TokenFile = "/controller/token" }, "token_file", "token_env, token_file are all set: set only one"},
		{func(g *tasks.GitLabRunner) { g.AccessTokenEnv = "PAT" }, "access_token_env", "token_env, access_token_env are all set"},
		{func(g *tasks.GitLabRunner) { g.RunnerType = "group_type" }, "runner_type", "sent to POST /api/v4/user/runners"},
		{func(g *tasks.GitLabRunner) { g.TokenEnv, g.AccessTokenEnv, g.RunnerType = "", "PAT", "group_type" }, "group_id", "needs group_id"},
		{func(g *tasks.GitLabRunner) { g.TokenEnv, g.AccessTokenEnv, g.RunnerType = "", "PAT", "project_type" }, "project_id", "needs project_id"},
		{func(g *tasks.GitLabRunner) { g.TokenEnv, g.AccessTokenEnv, g.GroupID, g.ProjectID = "", "PAT", 1, 2 }, "project_id", "not both"},
		{func(g *tasks.GitLabRunner) {
			g.TokenEnv, g.AccessTokenEnv, g.RunnerType, g.GroupID = "", "PAT", "instance_type", 3
		}, "runner_type", "no group_id or project_id"},
		{func(g *tasks.GitLabRunner) { g.TokenEnv, g.AccessTokenEnv, g.RunnerType = "", "PAT", "shared" }, "runner_type", "not instance_type"},
		{func(g *tasks.GitLabRunner) { g.Unregister = "all" }, "unregister", "runner (delete the runner in GitLab), manager"},
		{func(g *tasks.GitLabRunner) { g.State = "gone" }, "state", "present or absent"},
		{func(g *tasks.GitLabRunner) { g.Docker.Image = "" }, "docker.image", "default image"},
		{func(g *tasks.GitLabRunner) { g.Docker.PullPolicy = []string{"sometimes"} }, "docker.pull_policy", "always"},
		{func(g *tasks.GitLabRunner) { g.Environment = []string{"NOEQUALS"} }, "environment", "KEY=value"},
		{func(g *tasks.GitLabRunner) { g.AccessLevel = "everyone" }, "access_level", "ref_protected"},
		{func(g *tasks.GitLabRunner) { g.ConfigFile = "config.toml" }, "config_file", "absolute"},
		{func(g *tasks.GitLabRunner) { g.Concurrent = -1 }, "concurrent", "at least 1"},
	} {
		err := f.task("x", tc.mod).Validate()
		var fe *tasks.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
	if err := f.task("x", nil).Validate(); err != nil {
		t.Errorf("valid task: %v", err)
	}
	// The shipped playbook passes token_file: "" beside token_env.
	if err := f.task("x", func(g *tasks.GitLabRunner) { g.TokenFile = "" }).Validate(); err != nil {
		t.Errorf("empty token_file: %v", err)
	}
}

// A token that is not there fails the plan of a host that needs it, with
// the reason Prepare found; a malformed one fails Prepare.
func TestGitLabRunnerPrepare(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	var fe *tasks.FieldError
	planErr := func(g *tasks.GitLabRunner) error {
		t.Helper()
		if err := g.Prepare(f.controller()); err != nil {
			t.Fatalf("prepare: %v", err)
		}
		_, err := f.plan(g, tasktest.New())
		return err
	}

	g := f.task("", nil)
	delete(f.env, "RUNNER_TOKEN")
	err := planErr(g)
	if !errors.As(err, &fe) || fe.Field != "token_env" || !strings.Contains(err.Error(), "RUNNER_TOKEN is not set") ||
		!strings.Contains(err.Error(), "runner build-1 is not in "+cfgPath) || !strings.Contains(err.Error(), "runner_token_file") {
		t.Errorf("unset: %v", err)
	}
	f.env["RUNNER_TOKEN"] = "  \n"
	if err := planErr(g); !errors.As(err, &fe) || !strings.Contains(err.Error(), "environment variable RUNNER_TOKEN is empty") {
		t.Errorf("blank: %v", err)
	}
	f.env["RUNNER_TOKEN"] = "glrt-two words"
	if err := g.Prepare(f.controller()); !errors.As(err, &fe) || fe.Field != "token_env" || strings.Contains(err.Error(), "words") {
		t.Errorf("malformed: %v", err)
	}

	fileTask := f.task("", func(g *tasks.GitLabRunner) { g.TokenEnv, g.TokenFile = "", "/controller/token" })
	f.env["FILE_TOKEN"] = "glrt-fromFILEsecret\n"
	if err := fileTask.Prepare(f.controller()); err != nil {
		t.Errorf("token_file: %v", err)
	}
	missing := f.task("", func(g *tasks.GitLabRunner) { g.TokenEnv, g.TokenFile = "", "/controller/nope" })
	if err := planErr(missing); !errors.As(err, &fe) || fe.Field != "token_file" || !strings.Contains(err.Error(), "/controller/nope") {
		t.Errorf("missing token_file: %v", err)
	}
	f.assertNoSecrets(tasktest.New(), "glrt-fromFILEsecret")
}

// A token file others can read is refused, as ssh refuses such a key.
func TestGitLabRunnerTokenFileMustBePrivate(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	path := filepath.Join(t.TempDir(), "runner-token")
	if err := os.WriteFile(path, []byte("glrt-fileSECRETtoken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl := f.controller()
	ctl.ReadFile = os.ReadFile
	task := func() *tasks.GitLabRunner {
		return f.task("", func(g *tasks.GitLabRunner) { g.TokenEnv, g.TokenFile = "", path })
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		err := task().Prepare(ctl)
		var fe *tasks.FieldError
		if !errors.As(err, &fe) || fe.Field != "token_file" || !strings.Contains(err.Error(), fmt.Sprintf("token file %s ", path)) ||
			!strings.Contains(err.Error(), fmt.Sprintf("by other users (mode %04o); chmod 600 %s", mode, path)) {
			t.Errorf("mode %04o: %v", mode, err)
		}
		f.record(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := task().Prepare(ctl); err == nil || !strings.Contains(err.Error(), "is readable by other users (mode 0644); chmod 600 "+path) {
		t.Errorf("0644: %v", err)
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		g := task()
		if err := g.Prepare(ctl); err != nil {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	f.assertNoSecrets(tasktest.New(), "glrt-fileSECRETtoken")
}

// Day 2: a host whose runner is registered plans and applies its settings
// without the token; only a host that must register needs it.
func TestGitLabRunnerTokenIsNeededOnlyToRegister(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	requests := len(f.fake.Requests())

	unset := func(mod func(*tasks.GitLabRunner)) *tasks.GitLabRunner {
		g := f.task("", mod)
		delete(f.env, "RUNNER_TOKEN")
		return f.mustPrepare(g)
	}
	if changes, err := f.plan(unset(nil), h); err != nil || len(changes) != 0 {
		t.Errorf("registered host without the token: %v %v", changes, err)
	}
	changes := tasktest.Converge(t, unset(func(g *tasks.GitLabRunner) { g.Docker.Image = "docker:28" }), h)
	if len(changes) != 1 || changes[0].Action != tasks.Update || tasks.FieldNames(changes[0].Fields) != "docker.image" {
		t.Errorf("settings update without the token: %+v", changes)
	}
	if r := runnersOf(t, decodeConfig(t, h))[0]; r["token"] != glrt {
		t.Errorf("token lost: %v", r)
	}
	// Only to check that the token in config.toml is still valid.
	if reqs := f.fake.Requests()[requests:]; len(reqs) == 0 || onlyVerifies(f) != nil {
		t.Errorf("GitLab contacted for more than checking the token: %v", reqs)
	}

	// A host without the runner cannot register it.
	_, err := f.plan(unset(nil), tasktest.New())
	if err == nil || !strings.Contains(err.Error(), "runner build-1 is not in "+cfgPath) || !strings.Contains(err.Error(), "token_env: environment variable RUNNER_TOKEN is not set") {
		t.Errorf("unregistered host without the token: %v", err)
	}
	// Nor register it again with another GitLab.
	_, err = f.plan(unset(func(g *tasks.GitLabRunner) { g.URL = "https://gitlab.example.com" }), h)
	if err == nil || !strings.Contains(err.Error(), "url changed from "+f.srv.URL+" to https://gitlab.example.com") || !strings.Contains(err.Error(), "RUNNER_TOKEN is not set") {
		t.Errorf("changed url without the token: %v", err)
	}
	f.assertNoSecrets(h, glrt)
}

// A changed url is another GitLab: the runner is registered there, its
// entry's token, id and url replaced, and the old registration announced.
func TestGitLabRunnerChangedURLRegistersWithTheNewGitLab(t *testing.T) {
	a := newGitLab(t, fakegitlab.Options{})
	idA, glrtA := a.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	h.SetFile(cfgPath, existingConfig, 0o600, "root", "root")
	tasktest.Converge(t, a.mustPrepare(a.task(glrtA, nil)), h)

	for _, tc := range []struct {
		name  string
		opts  fakegitlab.Options
		token func(b *gitlabFixture) string
		call  string
	}{
		{"runner authentication token", fakegitlab.Options{}, func(b *gitlabFixture) string { _, t := b.fake.CreateRunner(fakegitlab.NewRunner{}); return t }, "/api/v4/runners/verify"},
		{"registration token", fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true}, func(*gitlabFixture) string { return regToken }, "/api/v4/runners"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runnersOf(t, decodeConfig(t, h))[1]
			b := newGitLab(t, tc.opts)
			token := tc.token(b)
			g := a.mustPrepare(a.task(token, func(g *tasks.GitLabRunner) { g.URL = b.srv.URL }))
			changes := tasktest.Converge(t, g, h)
			a.record(changes)
			c := changes[0]
			if len(changes) != 1 || c.Action != tasks.Create {
				t.Fatalf("changes %+v", changes)
			}
			if !strings.Contains(c.Summary, "register runner build-1 with "+b.srv.URL) || !strings.Contains(c.Summary, fmt.Sprintf("registered with %s: its token and url are replaced", before["url"])) {
				t.Errorf("summary %q", c.Summary)
			}
			warning := fmt.Sprintf("runner build-1 (id %d) stays registered with %s: dindops does not remove it from that GitLab; delete it there", before["id"], before["url"])
			if w := strings.Join(c.Warnings, "\n"); !strings.Contains(w, warning) {
				t.Errorf("warnings %q lack %q", w, warning)
			}
			// Registered once; the plan after apply checks the token again.
			if n := b.fake.CountRequests("POST", tc.call); n != 1 && !(tc.call == "/api/v4/runners/verify" && n == 2) {
				t.Errorf("GitLab B got %v", b.fake.Requests())
			}
			rs := runnersOf(t, decodeConfig(t, h))
			r := rs[1]
			reg := b.fake.Runners()[len(b.fake.Runners())-1]
			if len(rs) != 2 || r["name"] != "build-1" || r["url"] != b.srv.URL || r["id"] != reg.ID || r["token"] == before["token"] ||
				!strings.HasPrefix(reg.TokenPrefix, r["token"].(string)[:3]) || r["executor"] != "docker" || rs[0]["name"] != "other" {
				t.Errorf("runners %v", rs)
			}
			a.assertNoSecrets(h, glrtA, token, r["token"].(string))
		})
	}
	if len(a.fake.Runners()) != 1 || a.fake.Runners()[0].ID != idA {
		t.Errorf("the runner in GitLab A was touched: %+v", a.fake.Runners())
	}
}

// A renamed runner is registered under its new name; the old entry stays,
// and the plan says so.
func TestGitLabRunnerRenameWarnsOfTheOldEntry(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	h.SetFile(cfgPath, existingConfig, 0o600, "root", "root")
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)

	changes := tasktest.Converge(t, f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) { g.Name = "build-2" })), h)
	c := changes[0]
	want := cfgPath + " also has runner build-1 for the same GitLab; it keeps running: remove it with state: absent under its name if it was renamed to build-2"
	if c.Action != tasks.Create || !reflect.DeepEqual(c.Warnings, []string{want}) {
		t.Errorf("change %v, warnings %q", c.Action, c.Warnings)
	}
	var names []string
	for _, r := range runnersOf(t, decodeConfig(t, h)) {
		names = append(names, r["name"].(string))
	}
	if strings.Join(names, ",") != "other,build-1,build-2" {
		t.Errorf("runners %v: nothing is removed", names)
	}

	changes = tasktest.Converge(t, f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) { g.Name = "build-3" })), h)
	if w := strings.Join(changes[0].Warnings, "\n"); !strings.Contains(w, "also has runners build-1, build-2 for the same GitLab; they keep running") {
		t.Errorf("warnings %q", w)
	}
}

// A host that had a runner (its .runner_system_id is there) but whose
// config.toml lost it may leave a registration behind in GitLab.
func TestGitLabRunnerWarnsOfALostRegistration(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	for _, token := range []string{regToken, glrt} {
		h := tasktest.New()
		h.SetFile(sysIDPath, "s_0123456789ab\n", 0o600, "root", "root")
		h.SetFile(cfgPath, "concurrent = 4\n", 0o600, "root", "root")
		changes, err := f.plan(f.mustPrepare(f.task(token, nil)), h)
		if err != nil || len(changes) != 1 {
			t.Fatalf("plan: %v %v", changes, err)
		}
		want := sysIDPath + " exists (system ID s_0123456789ab): this host had a runner before, but " + cfgPath + " has no entry for build-1; " +
			"if it was registered with another token than this one and config.toml was lost, that registration remains in GitLab"
		if w := strings.Join(changes[0].Warnings, "\n"); !strings.Contains(w, want) {
			t.Errorf("%.4s: warnings %q", token, w)
		}
	}
}

func TestGitLabRunnerIsAKind(t *testing.T) {
	mk, ok := tasks.Kinds()["gitlab_runner"]
	if !ok {
		t.Fatal("gitlab_runner is not registered in tasks.Kinds")
	}
	if _, ok := mk().(*tasks.GitLabRunner); !ok {
		t.Fatalf("gitlab_runner makes %T", mk())
	}
}
