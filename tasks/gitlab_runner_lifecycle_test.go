package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/dindops/dindops/fixtures/fakegitlab"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

const patToken = "glpat-createRunnerSECRET"

// patTask is the gitlab_runner task creating its runner with the access
// token in $PAT.
func (f *gitlabFixture) patTask(pat string, mod func(*tasks.GitLabRunner)) *tasks.GitLabRunner {
	g := f.task("", func(g *tasks.GitLabRunner) {
		g.TokenEnv, g.AccessTokenEnv = "", "PAT"
		if mod != nil {
			mod(g)
		}
	})
	delete(f.env, "RUNNER_TOKEN")
	f.env["PAT"] = pat
	return g
}

func fieldValue(c tasks.Change, name string) string {
	for _, f := range c.Fields {
		if f.Name == name {
			o, n := f.Shown()
			if n == "" {
				return o
			}
			return n
		}
	}
	return ""
}

// An access token with create_runner: dindops creates a runner of the
// host's own with POST /api/v4/user/runners and the server-side settings,
// verifies the glrt- token GitLab returns with the host's system ID, and
// keeps that token in config.toml only. A re-run creates nothing.
func TestGitLabRunnerAccessTokenCreatesTheRunner(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{PersonalAccessTokens: []string{patToken}})
	g := f.mustPrepare(f.patTask(patToken, func(g *tasks.GitLabRunner) {
		g.GroupID = 42
		g.Description = "build-1 (dind)"
		g.TagList = []string{"docker", "dind"}
		g.RunUntagged = ptr(false)
		g.Locked = ptr(true)
		g.MaximumTimeout = 3600
	}))
	h := tasktest.New()
	changes := tasktest.Converge(t, g, h)
	f.record(changes)
	c := changes[0]
	if c.Action != tasks.Create || c.Summary != "create runner build-1 with "+f.srv.URL || len(c.Warnings) != 0 {
		t.Errorf("change %v %q %v", c.Action, c.Summary, c.Warnings)
	}
	req := fieldValue(c, "request")
	for _, want := range []string{"POST " + f.srv.URL + "/api/v4/user/runners PRIVATE-TOKEN=(sensitive value) runner_type=group_type group_id=42 description=build-1 (dind) tag_list run_untagged locked maximum_timeout",
		"then POST " + f.srv.URL + "/api/v4/runners/verify token=(sensitive value) system_id=s_"} {
		if !strings.Contains(req, want) {
			t.Errorf("request %q lacks %q", req, want)
		}
	}
	if src := fieldValue(c, "token_source"); src != "environment variable PAT (access token)" {
		t.Errorf("token_source %q", src)
	}

	rs := f.fake.Runners()
	if len(rs) != 1 || f.fake.CountRequests("POST", "/api/v4/user/runners") != 1 {
		t.Fatalf("runners %+v", rs)
	}
	r := rs[0]
	sid, _ := h.File(sysIDPath)
	if r.CreatedVia != fakegitlab.ViaUserRunnersAPI || r.RunnerType != "group_type" || r.Description != "build-1 (dind)" || r.RunUntagged || !r.Locked ||
		r.MaximumTimeout != 3600 || strings.Join(r.TagList, ",") != "docker,dind" || strings.Join(r.VerifiedSystemIDs, ",") != string(sid.Content) {
		t.Errorf("runner in GitLab: %+v", r)
	}
	entry := runnersOf(t, decodeConfig(t, h))[0]
	tok, _ := entry["token"].(string)
	if !strings.HasPrefix(tok, "glrt-") || !strings.HasPrefix(tok, strings.TrimSuffix(r.TokenPrefix, "…")) || entry["id"] != r.ID {
		t.Errorf("entry %v", entry["id"])
	}

	// Re-runs: the token in config.toml is checked, nothing is created,
	// and the access token is not needed any more.
	for i := 0; i < 2; i++ {
		if again, err := f.plan(f.mustPrepare(f.patTask("", nil)), h); err != nil || len(again) != 0 {
			t.Fatalf("re-run: %+v %v", again, err)
		}
	}
	if len(f.fake.Runners()) != 1 || f.fake.CountRequests("POST", "/api/v4/user/runners") != 1 {
		t.Errorf("a re-run created a runner: %v", f.fake.Requests())
	}
	f.assertNoSecrets(h, patToken, tok)
}

// A refused access token writes nothing and leaves no runner behind: plan
// refuses it already, from GET /api/v4/personal_access_tokens/self (read
// only); where GitLab cannot say (before 15.5: 404), apply's POST
// /api/v4/user/runners does, and GitLab's answer says what is missing.
func TestGitLabRunnerRefusedAccessToken(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{PersonalAccessTokens: []string{patToken}})
	readOnly := f.fake.AddPersonalAccessToken("read_api")
	revoked := f.fake.AddPersonalAccessToken("create_runner")
	f.fake.RevokePersonalAccessToken(revoked)
	for _, tc := range []struct {
		pat    string
		status int
		want   string
	}{
		{"glpat-unknownSECRET", http.StatusUnauthorized, "access token rejected by " + f.srv.URL},
		{revoked, http.StatusUnauthorized, "access token rejected by " + f.srv.URL},
		{readOnly, 0, "has the scopes [read_api], and creating a runner (POST /api/v4/user/runners) needs create_runner"},
	} {
		g := f.mustPrepare(f.patTask(tc.pat, nil))
		_, err := f.plan(g, tasktest.New())
		var apiErr *tasks.GitLabAPIError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "runner build-1 is not in "+cfgPath) ||
			(tc.status != 0 && (!errors.As(err, &apiErr) || apiErr.StatusCode != tc.status)) {
			t.Errorf("plan with %d: %v", tc.status, err)
		}
		if f.fake.CountRequests("POST", "/api/v4/user/runners") != 0 {
			t.Errorf("plan created a runner")
		}
	}

	// A GitLab that cannot say what a token may do (404 to /self).
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v4/personal_access_tokens/self" {
			http.Error(w, `{"message":"404 Not Found"}`, http.StatusNotFound)
			return
		}
		f.fake.ServeHTTP(w, r)
	})
	defer func() { f.srv.Config.Handler = f.fake }()
	for _, tc := range []struct {
		pat    string
		status int
		want   string
	}{
		{"glpat-unknownSECRET", http.StatusUnauthorized, "access token rejected by " + f.srv.URL},
		{readOnly, http.StatusForbidden, "needs the create_runner scope"},
	} {
		g := f.mustPrepare(f.patTask(tc.pat, nil))
		h := tasktest.New()
		changes, err := f.plan(g, h)
		if err != nil {
			t.Fatal(err)
		}
		err = f.apply(g, h, changes)
		var apiErr *tasks.GitLabAPIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was written") || !tasks.IsUnchanged(err) {
			t.Errorf("%d: %v (changed nothing: %v)", tc.status, err, tasks.IsUnchanged(err))
		}
		if _, ok := h.File(cfgPath); ok || f.fake.CountRequests("POST", "/api/v4/user/runners") == 0 {
			t.Errorf("%d: config.toml written, or GitLab not asked", tc.status)
		}
		f.assertNoSecrets(h, tc.pat)
	}
	if len(f.fake.Runners()) != 0 {
		t.Errorf("runners %+v", f.fake.Runners())
	}

	// Created, but config.toml cannot be written: the runner is deleted
	// again rather than left without a host.
	g := f.mustPrepare(f.patTask(patToken, nil))
	h := tasktest.New()
	changes, _ := f.plan(g, h)
	if err := f.apply(g, failingWrites{h}, changes); err == nil || !strings.Contains(err.Error(), "deleted again") {
		t.Errorf("write failure: %v", err)
	}
	if len(f.fake.Runners()) != 0 {
		t.Errorf("orphan runner: %+v", f.fake.Runners())
	}
	f.assertNoSecrets(h, patToken)
}

// Each input holds its own kind of token; a mix-up is caught before any
// host is contacted.
func TestGitLabRunnerTokenKindMustMatchItsInput(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	var fe *tasks.FieldError
	if err := f.patTask("glrt-notAnAccessTokenSECRET", nil).Prepare(f.controller()); !errors.As(err, &fe) || fe.Field != "access_token_env" || !strings.Contains(err.Error(), "give it with token_env") {
		t.Errorf("glrt- as access token: %v", err)
	}
	if err := f.task(patToken, nil).Prepare(f.controller()); !errors.As(err, &fe) || fe.Field != "token_env" || !strings.Contains(err.Error(), "access_token_env") {
		t.Errorf("glpat- as runner token: %v", err)
	}
	// Server-side settings are fine with an access token.
	if err := f.patTask(patToken, func(g *tasks.GitLabRunner) { g.TagList = []string{"x"} }).Prepare(f.controller()); err != nil {
		t.Errorf("tags with an access token: %v", err)
	}
	f.assertNoSecrets(tasktest.New(), patToken, "glrt-notAnAccessTokenSECRET")
}

// A runner deleted in GitLab (or whose token was reset) is reported, never
// silently registered again; replace_invalid_token allows a new
// registration, exactly one.
func TestGitLabRunnerInvalidTokenIsReportedAndReplacedOnlyWhenAllowed(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(regToken, nil)), h)
	before, _ := h.File(cfgPath)
	old := runnersOf(t, decodeConfig(t, h))[0]["token"].(string)
	oldID := runnersOf(t, decodeConfig(t, h))[0]["id"]
	f.fake.DeleteRunner(f.fake.Runners()[0].ID)

	_, err := f.plan(f.mustPrepare(f.task(regToken, nil)), h)
	var invalid *tasks.InvalidTokenError
	if !errors.As(err, &invalid) || invalid.Runner != "build-1" || !strings.Contains(err.Error(), "no longer valid") || !strings.Contains(err.Error(), "replace_invalid_token: true") {
		t.Fatalf("plan: %v", err)
	}
	if after, _ := h.File(cfgPath); string(after.Content) != string(before.Content) || f.fake.CountRequests("POST", "/api/v4/runners") != 1 {
		t.Errorf("a refused token changed something")
	}

	g := f.mustPrepare(f.task(regToken, func(g *tasks.GitLabRunner) { g.ReplaceInvalidToken = true }))
	changes := tasktest.Converge(t, g, h)
	f.record(changes)
	if c := changes[0]; c.Action != tasks.Create || !strings.Contains(c.Summary, "its token in "+cfgPath+" is no longer valid (403 from GitLab): replace_invalid_token is set") {
		t.Errorf("change %v %q", c.Action, c.Summary)
	}
	// The old runner's id is named: dindops cannot delete it with a refused token.
	if w := strings.Join(changes[0].Warnings, "\n"); !strings.Contains(w, fmt.Sprintf("the runner this replaces (id %v)", oldID)) {
		t.Errorf("warnings %q do not name the old runner's id %v", w, oldID)
	}
	rs := runnersOf(t, decodeConfig(t, h))
	if len(f.fake.Runners()) != 1 || f.fake.CountRequests("POST", "/api/v4/runners") != 2 || len(rs) != 1 || rs[0]["token"] == old {
		t.Errorf("runners in GitLab %+v, entries %d", f.fake.Runners(), len(rs))
	}
	// A re-run with the permission still given registers nothing more.
	if again, err := f.plan(g, h); err != nil || len(again) != 0 || f.fake.CountRequests("POST", "/api/v4/runners") != 2 {
		t.Errorf("re-run: %+v %v", again, err)
	}
	f.assertNoSecrets(h, regToken, old, rs[0]["token"].(string))
}

// A glrt- token reset in GitLab: giving the old one again cannot help, even
// when replacing is allowed; the new one replaces it when allowed.
func TestGitLabRunnerResetAuthenticationToken(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	id, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	fresh := f.fake.ResetRunnerToken(id)

	_, err := f.plan(f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) { g.ReplaceInvalidToken = true })), h)
	var invalid *tasks.InvalidTokenError
	if !errors.As(err, &invalid) || !invalid.SameAsGiven || !strings.Contains(err.Error(), "the same one") {
		t.Fatalf("old token given again: %v", err)
	}
	if _, err := f.plan(f.mustPrepare(f.task(fresh, nil)), h); !errors.As(err, &invalid) {
		t.Fatalf("new token without permission: %v", err)
	}
	tasktest.Converge(t, f.mustPrepare(f.task(fresh, func(g *tasks.GitLabRunner) { g.ReplaceInvalidToken = true })), h)
	if r := runnersOf(t, decodeConfig(t, h))[0]; r["token"] != fresh || r["id"] != id {
		t.Errorf("entry %v", r["id"])
	}
	if len(f.fake.Runners()) != 1 {
		t.Errorf("runners %+v", f.fake.Runners())
	}
	f.assertNoSecrets(h, glrt, fresh)
}

// GitLab out of reach, or a config.toml that cannot be read: neither ever
// means "not registered". GitLab out of reach is a warning on a registered
// host (its runner keeps working), and fails the plan of a registration
// (apply could not make it); an unreadable config.toml fails the plan.
func TestGitLabRunnerNeverGuessesNotRegistered(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(regToken, nil)), h)
	registrations := f.fake.CountRequests("POST", "/api/v4/runners")

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"message":"502 Bad Gateway"}`, http.StatusBadGateway)
	}))
	defer down.Close()
	g := f.mustPrepare(f.task(regToken, func(g *tasks.GitLabRunner) { g.ReplaceInvalidToken = true }))
	g.URL = f.srv.URL
	f.srv.Config.Handler = down.Config.Handler
	changes, err := f.plan(g, h)
	ws, ok := tasks.IsWarnings(err)
	if !ok || len(changes) != 0 || len(ws) != 1 || !strings.Contains(ws[0], "GitLab at "+f.srv.URL+" does not answer") || !strings.Contains(ws[0], "502") ||
		!strings.Contains(ws[0], "the runner keeps it and retries on its own") {
		t.Errorf("GitLab down (502): %v %v", changes, err)
	}
	_, err = f.plan(g, tasktest.New())
	var unreach *tasks.GitLabUnreachableError
	if !errors.As(err, &unreach) || !strings.Contains(err.Error(), "runner build-1 is not in "+cfgPath) || !strings.Contains(err.Error(), "apply would fail") {
		t.Errorf("GitLab down (502), registration: %v", err)
	}
	f.srv.Config.Handler = f.fake

	// A GitLab that drops every connection without an answer.
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	changes, err = f.plan(g, h)
	if ws, ok := tasks.IsWarnings(err); !ok || len(changes) != 0 || !strings.Contains(ws[0], "EOF") {
		t.Errorf("GitLab gone: %v %v", changes, err)
	}
	if _, err := f.plan(g, tasktest.New()); !errors.As(err, &unreach) || !strings.Contains(err.Error(), "EOF") {
		t.Errorf("GitLab gone, registration: %v", err)
	}
	f.srv.Config.Handler = f.fake

	_, err = g.Plan(context.Background(), unreadable{h})
	if err == nil || !strings.Contains(err.Error(), "reading "+cfgPath) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("unreadable config.toml: %v", err)
	}
	if f.fake.CountRequests("POST", "/api/v4/runners") != registrations {
		t.Errorf("registered again")
	}
}

// unreadable is a host whose config.toml cannot be read.
type unreadable struct{ *tasktest.Host }

func (u unreadable) ReadFile(ctx context.Context, p string) (tasks.RemoteFile, error) {
	if p == cfgPath {
		return tasks.RemoteFile{}, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}
	}
	return u.Host.ReadFile(ctx, p)
}

// A glrt- token in config.toml without .runner_system_id (gitlab-runner
// never started there): the plan cannot verify without a system ID, so
// apply writes one and verifies then.
func TestGitLabRunnerVerifiesWithANewSystemID(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	h.RemoveFile(sysIDPath)
	changes := tasktest.Converge(t, f.mustPrepare(f.task("", nil)), h)
	if c := changes[0]; c.Action != tasks.Update || !strings.HasPrefix(tasks.FieldNames(c.Fields), "system_id, request") {
		t.Errorf("change %+v", c)
	}
	sid, ok := h.File(sysIDPath)
	if !ok || !strings.Contains(strings.Join(f.fake.Runners()[0].VerifiedSystemIDs, ","), string(sid.Content)) {
		t.Errorf("system ID %q not written or not verified: %v", sid.Content, f.fake.Runners()[0].VerifiedSystemIDs)
	}

	// The same with a token GitLab refuses: apply reports it, writes nothing.
	h.RemoveFile(sysIDPath)
	f.fake.DeleteRunner(f.fake.Runners()[0].ID)
	g := f.mustPrepare(f.task("", nil))
	changes, err := f.plan(g, h)
	if err != nil {
		t.Fatal(err)
	}
	var invalid *tasks.InvalidTokenError
	if err := f.apply(g, h, changes); !errors.As(err, &invalid) {
		t.Errorf("apply: %v", err)
	}
	if _, ok := h.File(sysIDPath); ok {
		t.Errorf(".runner_system_id written for a refused token")
	}
	f.assertNoSecrets(h, glrt)
}

// No system ID, and another glrt- token given than the one in config.toml:
// one new system ID serves both verifications (the current token's, then
// the given one's), and it is the one written.
func TestGitLabRunnerSwapsATokenWithOneNewSystemID(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	_, fresh := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	h.RemoveFile(sysIDPath)
	changes := tasktest.Converge(t, f.mustPrepare(f.task(fresh, nil)), h)
	c := changes[0]
	sid, _ := h.File(sysIDPath)
	if n := strings.Count(tasks.FieldNames(c.Fields), "system_id"); n != 1 || !strings.HasPrefix(fieldValue(c, "system_id"), string(sid.Content)+" ") {
		t.Errorf("system_id fields %d (want 1), %q, written %q", n, fieldValue(c, "system_id"), sid.Content)
	}
	for _, r := range f.fake.Runners() {
		if got := strings.Join(r.VerifiedSystemIDs, ","); !strings.Contains(got, string(sid.Content)) {
			t.Errorf("runner %d verified with %q, not %q", r.ID, got, sid.Content)
		}
	}
	f.assertNoSecrets(h, glrt, fresh)
}

func ExampleInvalidTokenError() {
	err := &tasks.InvalidTokenError{Runner: "build-1", ConfigFile: "/etc/gitlab-runner/config.toml", URL: "https://gitlab.example.com"}
	fmt.Println(strings.SplitN(err.Error(), ";", 2)[0])
	// Output: runner build-1: the token in /etc/gitlab-runner/config.toml is no longer valid for https://gitlab.example.com (403 Forbidden to POST /api/v4/runners/verify): the runner was deleted in GitLab, or its token was reset or revoked, and gitlab-runner cannot take jobs with it
}

// The host's only runner decommissioned: config.toml keeps its global
// settings and has no [[runners]] left.
func TestGitLabRunnerAbsentLastRunner(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{RegistrationTokens: []string{regToken}, AllowRegistrationTokens: true})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(regToken, nil)), h)
	g := f.mustPrepare(&tasks.GitLabRunner{ConfigFile: cfgPath, Name: "build-1", URL: f.srv.URL, State: "absent"})
	changes := tasktest.Converge(t, g, h)
	if !strings.Contains(changes[0].Diff, "-[[runners]]") {
		t.Errorf("diff:\n%s", changes[0].Diff)
	}
	if file, _ := h.File(cfgPath); string(file.Content) != "concurrent = 4\n" {
		t.Errorf("config.toml:\n%s", file.Content)
	}
	if len(f.fake.Runners()) != 0 {
		t.Errorf("runner left in GitLab")
	}
}

// Probe fails the read of config.toml in a batch as ReadFile does.
func (u unreadable) Probe(ctx context.Context, probes []tasks.Probe) ([]tasks.ProbeResult, error) {
	res, err := u.Host.Probe(ctx, probes)
	for i, p := range probes {
		if err == nil && p.Path == cfgPath {
			res[i] = tasks.ProbeResult{Err: &fs.PathError{Op: "open", Path: p.Path, Err: fs.ErrPermission}}
		}
	}
	return res, err
}

// A runner whose token was reset in GitLab stays listed there. Replacing it
// with an access token that may delete runners (api or manage_runner)
// deletes it first, by id, as plan says; with one that may not, the old
// runner stays and the warning names it.
func TestGitLabRunnerReplacingAnInvalidTokenDeletesTheOldRunner(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	for _, tc := range []struct {
		scopes  []string
		deletes bool
	}{
		{[]string{"create_runner", "manage_runner"}, true},
		{[]string{"api"}, true},
		{[]string{"create_runner"}, false},
	} {
		f.fake.Reset()
		pat := f.fake.AddPersonalAccessToken(tc.scopes...)
		h := tasktest.New()
		tasktest.Converge(t, f.mustPrepare(f.patTask(pat, nil)), h)
		oldID := f.fake.Runners()[0].ID
		f.fake.ResetRunnerToken(oldID)

		g := f.mustPrepare(f.patTask(pat, func(g *tasks.GitLabRunner) { g.ReplaceInvalidToken = true }))
		changes := tasktest.Converge(t, g, h)
		c := changes[0]
		del := fmt.Sprintf("DELETE %s/api/v4/runners/%d", f.srv.URL, oldID)
		deleted := f.fake.CountRequests("DELETE", fmt.Sprintf("/api/v4/runners/%d", oldID))
		ids := []int64{}
		for _, r := range f.fake.Runners() {
			ids = append(ids, r.ID)
		}
		if tc.deletes {
			if !strings.Contains(c.Summary, fmt.Sprintf("the runner it replaces (id %d) is deleted in GitLab first", oldID)) || !strings.Contains(fieldValues(c, "replaced_runner"), del) || len(c.Warnings) != 0 {
				t.Errorf("%v: change %q %v warnings %q", tc.scopes, c.Summary, c.Fields, c.Warnings)
			}
			if deleted != 1 || len(ids) != 1 || ids[0] == oldID {
				t.Errorf("%v: DELETE sent %d times, runners %v", tc.scopes, deleted, ids)
			}
		} else {
			if w := strings.Join(c.Warnings, "\n"); !strings.Contains(w, fmt.Sprintf("the runner this replaces (id %d)", oldID)) || !strings.Contains(w, "no api or manage_runner scope") || fieldValues(c, "replaced_runner") != "" {
				t.Errorf("%v: warnings %q, fields %v", tc.scopes, w, c.Fields)
			}
			if deleted != 0 || len(ids) != 2 {
				t.Errorf("%v: DELETE sent %d times, runners %v", tc.scopes, deleted, ids)
			}
		}
		f.assertNoSecrets(h, pat)
	}

	// The old runner deleted in GitLab between plan and apply (404): the
	// replacement goes on.
	f.fake.Reset()
	pat := f.fake.AddPersonalAccessToken("api")
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.patTask(pat, nil)), h)
	oldID := f.fake.Runners()[0].ID
	f.fake.ResetRunnerToken(oldID)
	g := f.mustPrepare(f.patTask(pat, func(g *tasks.GitLabRunner) { g.ReplaceInvalidToken = true }))
	changes, err := f.plan(g, h)
	if err != nil {
		t.Fatal(err)
	}
	f.fake.DeleteRunner(oldID)
	if err := f.apply(g, h, changes); err != nil || len(f.fake.Runners()) != 1 {
		t.Errorf("apply after the old runner went: %v, runners %+v", err, f.fake.Runners())
	}

	// The token may no longer delete it at apply (revoked): nothing changes.
	f.fake.Reset()
	pat = f.fake.AddPersonalAccessToken("api")
	h = tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.patTask(pat, nil)), h)
	oldID = f.fake.Runners()[0].ID
	f.fake.ResetRunnerToken(oldID)
	before, _ := h.File(cfgPath)
	g = f.mustPrepare(f.patTask(pat, func(g *tasks.GitLabRunner) { g.ReplaceInvalidToken = true }))
	if changes, err = f.plan(g, h); err != nil {
		t.Fatal(err)
	}
	f.fake.RevokePersonalAccessToken(pat)
	err = f.apply(g, h, changes)
	after, _ := h.File(cfgPath)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("deleting the runner it replaces (id %d)", oldID)) || !strings.Contains(err.Error(), "nothing was changed") ||
		string(after.Content) != string(before.Content) || len(f.fake.Runners()) != 1 {
		t.Errorf("refused delete: %v; config changed %v; runners %+v", err, string(after.Content) != string(before.Content), f.fake.Runners())
	}
	f.assertNoSecrets(h, pat)
}

// fieldValues joins the new values of c's fields called name.
func fieldValues(c tasks.Change, name string) string {
	var out []string
	for _, f := range c.Fields {
		if f.Name == name {
			out = append(out, f.New)
		}
	}
	return strings.Join(out, "\n")
}

// A runner two hosts share (one glrt- token), its token reset and given
// anew to one host: the other host's replacement must not delete it, as
// GitLab lists the first host as its manager; the warning says why.
func TestGitLabRunnerReplacementNeverDeletesARunnerOtherHostsUse(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	id, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	a, b := tasktest.New(), tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), a)
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), b)
	fresh := f.fake.ResetRunnerToken(id)
	tasktest.Converge(t, f.mustPrepare(f.task(fresh, func(g *tasks.GitLabRunner) { g.ReplaceInvalidToken = true })), a)

	pat := f.fake.AddPersonalAccessToken("api")
	changes := tasktest.Converge(t, f.mustPrepare(f.patTask(pat, func(g *tasks.GitLabRunner) { g.ReplaceInvalidToken = true })), b)
	w := strings.Join(changes[0].Warnings, "\n")
	if f.fake.CountRequests("DELETE", fmt.Sprintf("/api/v4/runners/%d", id)) != 0 || fieldValues(changes[0], "replaced_runner") != "" ||
		!strings.Contains(w, "GitLab lists other hosts as its managers") || !strings.Contains(w, "it is not deleted") {
		t.Errorf("shared runner: deleted %d times; warnings %q", f.fake.CountRequests("DELETE", fmt.Sprintf("/api/v4/runners/%d", id)), w)
	}
	if !slices.ContainsFunc(f.fake.Runners(), func(r fakegitlab.Runner) bool { return r.ID == id }) {
		t.Errorf("runner %d is gone: %+v", id, f.fake.Runners())
	}
	f.assertNoSecrets(b, pat, glrt, fresh)
}

// Changes that need GitLab fail the plan when it does not answer, as apply
// would fail: unregistering (state: absent) and putting a new glrt- token
// in place (apply verifies it first).
func TestGitLabRunnerChangesThatNeedGitLabFailWhenItIsDown(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	_, other := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, nil)), h)
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"message":"503 Service Unavailable"}`, http.StatusServiceUnavailable)
	})
	defer func() { f.srv.Config.Handler = f.fake }()

	var down *tasks.GitLabUnreachableError
	_, err := f.plan(f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) { g.State = "absent" })), h)
	if !errors.As(err, &down) || !strings.Contains(err.Error(), "unregistering it needs GitLab") || !strings.Contains(err.Error(), "runner_unregister=none") {
		t.Errorf("decommission: %v", err)
	}
	if changes, err := f.plan(f.mustPrepare(f.task(glrt, func(g *tasks.GitLabRunner) { g.State, g.Unregister = "absent", "none" })), h); err != nil || len(changes) != 1 {
		t.Errorf("decommission without GitLab (unregister: none): %v %v", changes, err)
	}
	_, err = f.plan(f.mustPrepare(f.task(other, nil)), h)
	if !errors.As(err, &down) || !strings.Contains(err.Error(), "the update verifies a token with GitLab") {
		t.Errorf("new token: %v", err)
	}
	f.assertNoSecrets(h, glrt, other)
}
