package tasks

import (
	"reflect"
	"strings"
	"testing"
)

// The register/verify/replace decision, case by case, apart from its
// wording and from GitLab.
func TestDecideRegistration(t *testing.T) {
	const glrt, other = "glrt-current", "glrt-given"
	// registered is an entry with a legacy-issued token for this GitLab,
	// the host's system ID known.
	registered := runnerFacts{listed: true, token: "t0ken", url: "https://gitlab.example.com", sameGitLab: true, systemIDKnown: true, given: registrationToken, givenToken: "GR1348941reg"}
	with := func(mod func(*runnerFacts)) runnerFacts {
		f := registered
		mod(&f)
		return f
	}
	for _, tc := range []struct {
		name   string
		facts  runnerFacts
		verify bool // the plan must ask GitLab first
		want   registration
	}{
		{"not in config.toml", runnerFacts{sameGitLab: true, given: registrationToken}, false, registration{kind: registerRunner, why: notListed}},
		{"entry without a token", with(func(f *runnerFacts) { f.token = "" }), false, registration{kind: registerRunner, why: listedNoToken}},
		{"entry of another GitLab", with(func(f *runnerFacts) { f.sameGitLab = false }), false, registration{kind: registerRunner, why: otherGitLab}},
		{"token accepted", with(func(f *runnerFacts) { f.verified = tokenAccepted }), true, registration{kind: keepRegistration}},
		{"GitLab does not answer", with(func(f *runnerFacts) { f.verified = gitlabUnanswered }), true, registration{kind: keepRegistration, gitlabDown: true}},
		{"GitLab answers something else", with(func(f *runnerFacts) { f.verified = verifyFailed }), true, registration{kind: cannotVerify}},
		{"token refused", with(func(f *runnerFacts) { f.verified = tokenRefused }), true, registration{kind: refuseInvalidToken}},
		{"token refused, replacing allowed", with(func(f *runnerFacts) { f.verified, f.replaceInvalid = tokenRefused, true }), true, registration{kind: registerRunner, why: replacesRefused}},
		{"token refused, the given glrt- token is that one", with(func(f *runnerFacts) {
			f.token, f.given, f.givenToken, f.verified, f.replaceInvalid = glrt, runnerAuthToken, glrt, tokenRefused, true
		}), true, registration{kind: refuseInvalidToken}},
		{"another glrt- token given", with(func(f *runnerFacts) {
			f.token, f.given, f.givenToken, f.verified = glrt, runnerAuthToken, other, tokenAccepted
		}), true, registration{kind: keepRegistration, swapToken: true}},
		{"the same glrt- token given", with(func(f *runnerFacts) {
			f.token, f.given, f.givenToken, f.verified = glrt, runnerAuthToken, glrt, tokenAccepted
		}), true, registration{kind: keepRegistration}},
		{"glrt- token, no system ID", with(func(f *runnerFacts) { f.token, f.systemIDKnown = glrt, false }), false, registration{kind: keepRegistration, verifyFirst: true}},
		{"glrt- token, no system ID, another given", with(func(f *runnerFacts) {
			f.token, f.systemIDKnown, f.given, f.givenToken = glrt, false, runnerAuthToken, other
		}), false, registration{kind: keepRegistration, verifyFirst: true, swapToken: true}},
		{"legacy token, no system ID", with(func(f *runnerFacts) { f.systemIDKnown, f.verified = false, tokenAccepted }), true, registration{kind: keepRegistration}},
		{"no token given at all", with(func(f *runnerFacts) { f.given, f.givenToken, f.verified = noToken, "", tokenAccepted }), true, registration{kind: keepRegistration}},
	} {
		if got := tc.facts.needsVerify(); got != tc.verify {
			t.Errorf("%s: needsVerify = %v, want %v", tc.name, got, tc.verify)
		}
		if got := decide(tc.facts); got != tc.want {
			t.Errorf("%s: decide = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestDecideReplacementAndUnregister(t *testing.T) {
	for _, tc := range []struct {
		id        int64
		canDelete bool
		inUse     string
		want      bool
	}{
		{7, true, "", true},
		{7, false, "", false},
		{7, true, "GitLab lists other hosts as its managers", false},
		{0, true, "", false},
	} {
		if got := decideReplacement(tc.id, tc.canDelete, tc.inUse); got.deleteFirst != tc.want || got.id != tc.id {
			t.Errorf("decideReplacement(%d, %v, %q) = %+v, want deleteFirst %v", tc.id, tc.canDelete, tc.inUse, got, tc.want)
		}
	}
	for _, tc := range []struct {
		token, how string
		want       unregistration
		gitlab     bool
	}{
		{"", "runner", unregisterNothing, false},
		{"", "manager", unregisterNothing, false},
		{"t", "none", unregisterSkipped, false},
		{"t", "manager", unregisterManager, true},
		{"t", "runner", unregisterRunner, true},
	} {
		got := decideUnregister(tc.token, tc.how)
		if got != tc.want || got.needsGitLab() != tc.gitlab {
			t.Errorf("decideUnregister(%q, %q) = %v (needs GitLab %v), want %v (%v)", tc.token, tc.how, got, got.needsGitLab(), tc.want, tc.gitlab)
		}
	}
}

// GitLabRunnerDocker and GitLabRunnerCache are both the task's options and
// the sections it writes: each field has config.toml's name in both (but
// for dindops's own inputs, toml "-", and what the controller reads, yaml
// "-"), and is left out of config.toml when unset.
func TestGitLabRunnerSectionNamesAreConfigTOMLs(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeOf(GitLabRunnerDocker{}), reflect.TypeOf(GitLabRunnerCache{}), reflect.TypeOf(GitLabRunnerCacheS3{})} {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			y, tm := f.Tag.Get("yaml"), f.Tag.Get("toml")
			if y == "-" || tm == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tm, ",")
			if name != y || (opts != "omitempty" && opts != "omitzero") {
				t.Errorf("%s.%s: yaml %q, toml %q: want the same name, omitempty (omitzero for numbers)", typ.Name(), f.Name, y, tm)
			}
		}
	}
	for _, v := range []any{GitLabRunnerDocker{}, GitLabRunnerCache{}, GitLabRunnerCacheS3{AccessKeyEnv: "A", SecretKeyFile: "/s"}} {
		want, err := tomlWant(v)
		if err != nil || len(want.root) != 0 {
			t.Errorf("an empty %T writes %v (%v), want nothing", v, want.root, err)
		}
	}
}

// An item of runners over the task's options: unset options are the
// task's, environment and feature_flags merge by name, the token inputs
// go together, description is the item's own.
func TestRunnerItemResolvesOverTheTask(t *testing.T) {
	yes, no := true, false
	g := &GitLabRunner{URL: "https://gitlab.example.com", AccessTokenEnv: "PAT", Unregister: "manager", Limit: 4, GroupID: 7, Description: "shared",
		Environment:  []string{"X=1", "Y=2"},
		FeatureFlags: map[string]bool{"FF_A": true, "FF_B": false},
		Docker:       GitLabRunnerDocker{Host: "tcp://gitlab-dind:2376", Image: "docker:27", Privileged: &no, Volumes: []string{"/cache"}},
		Cache:        &GitLabRunnerCache{Type: "s3"},
		Runners: []GitLabRunner{
			{Name: "a", TokenEnv: "TOK_A", Environment: []string{"Y=3", "Z=4"}, FeatureFlags: map[string]bool{"FF_B": true},
				Docker: GitLabRunnerDocker{Image: "docker:28", Privileged: &yes}},
			{Name: "b", State: "absent", Limit: 1},
		}}
	specs, err := g.runnerSpecs()
	if err != nil || len(specs) != 2 {
		t.Fatalf("%v %v", specs, err)
	}
	a, b := specs[0], specs[1]
	if a.URL != g.URL || a.Unregister != "manager" || a.Limit != 4 || a.Description != "" || a.description() != "a" || a.Cache != g.Cache {
		t.Errorf("a inherits: %+v", a)
	}
	if a.TokenEnv != "TOK_A" || a.AccessTokenEnv != "" || a.GroupID != 0 || b.GroupID != 7 {
		t.Errorf("a's token inputs: token_env %q access_token_env %q group %d", a.TokenEnv, a.AccessTokenEnv, a.GroupID)
	}
	if strings.Join(a.Environment, " ") != "X=1 Y=3 Z=4" || !reflect.DeepEqual(a.FeatureFlags, map[string]bool{"FF_A": true, "FF_B": true}) {
		t.Errorf("a merges: %v %v", a.Environment, a.FeatureFlags)
	}
	if d := a.Docker; d.Host != "tcp://gitlab-dind:2376" || d.Image != "docker:28" || !*d.Privileged || strings.Join(d.Volumes, " ") != "/cache" {
		t.Errorf("a's docker %+v", d)
	}
	if b.AccessTokenEnv != "PAT" || b.Limit != 1 || b.state() != "absent" || strings.Join(b.Environment, " ") != "X=1 Y=2" || !reflect.DeepEqual(b.FeatureFlags, g.FeatureFlags) {
		t.Errorf("b: %+v", b)
	}
	if g.FeatureFlags["FF_B"] || g.Environment[1] != "Y=2" {
		t.Errorf("the task's own options changed: %v %v", g.FeatureFlags, g.Environment)
	}
	g.State = "absent"
	g.specs = nil
	if specs, _ := g.runnerSpecs(); specs[0].state() != "absent" {
		t.Errorf("the task's state absent does not decommission a")
	}
}
