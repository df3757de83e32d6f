package tasks

// Several runners in one config.toml: the items of runners, each resolved
// over the task's own options.

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// runnerSpecs returns the runners the task manages, in order: the task
// itself when runners is empty, else one per item of runners, resolved
// over the task's options:
//
//   - an option the item leaves unset (empty, zero, null) is the task's:
//     url, unregister, executor, request_concurrency, limit, output_limit,
//     cache, each field of docker;
//   - the server-side settings (tag_list, run_untagged, locked,
//     access_level, maximum_timeout, paused) go together: an item that
//     sets none has the task's, which a glrt- token (whose runner GitLab
//     already has) then leaves out; runner_type, group_id and project_id
//     go together too, to an item that creates its runner with an access
//     token;
//   - the four token inputs go together: an item that sets none of them
//     has the task's;
//   - environment is merged by variable name and feature_flags by flag
//     name, the item's winning;
//   - description is not inherited: it defaults to the item's name;
//   - state absent on the task decommissions every runner;
//     replace_invalid_token set on either allows replacing;
//   - config_file and the global settings (concurrent, check_interval,
//     listen_address, shutdown_timeout, restart) belong to the task: an
//     item that sets them is an error, as is a task name beside runners.
//
// Names must differ. The result is kept (Prepare reads each runner's
// token into it); Validate computes it anew.
func (g *GitLabRunner) runnerSpecs() ([]*GitLabRunner, error) {
	if g.specs != nil {
		return g.specs, nil
	}
	if len(g.Runners) == 0 {
		return []*GitLabRunner{g}, nil
	}
	if g.Name != "" {
		return nil, FieldErrorf("name", "name is the runner's when the task has one runner; with runners, each item has its own name (%q is given beside %d runners)", g.Name, len(g.Runners))
	}
	var specs []*GitLabRunner
	names := map[string]int{}
	for i := range g.Runners {
		item := &g.Runners[i]
		field := fmt.Sprintf("runners[%d]", i)
		if set := item.globalFields(); len(set) > 0 {
			return nil, FieldErrorf(field+"."+set[0], "%s belong to config.toml as a whole: set them on the task, not on one of its runners", strings.Join(set, ", "))
		}
		s := g.resolve(item)
		if j, ok := names[s.Name]; ok && s.Name != "" {
			return nil, FieldErrorf(field+".name", "runners[%d] and runners[%d] are both named %q: each runner of config.toml needs a name of its own", j, i, s.Name)
		}
		names[s.Name] = i
		specs = append(specs, s)
	}
	g.specs = specs
	return specs, nil
}

// globalFields lists the options of the task as a whole that are set.
func (g *GitLabRunner) globalFields() []string {
	var set []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"config_file", g.ConfigFile != ""}, {"concurrent", g.Concurrent != 0}, {"check_interval", g.CheckInterval != 0},
		{"listen_address", g.ListenAddress != ""}, {"shutdown_timeout", g.ShutdownTimeout != 0}, {"restart", g.Restart != nil}, {"runners", len(g.Runners) > 0}} {
		if f.set {
			set = append(set, f.name)
		}
	}
	return set
}

// resolve returns item with what it leaves unset taken from g (see
// runnerSpecs).
func (g *GitLabRunner) resolve(item *GitLabRunner) *GitLabRunner {
	s := *item
	s.ConfigFile, s.Runners, s.specs = g.ConfigFile, nil, nil
	s.client, s.now = g.client, g.now
	or := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	or(&s.URL, g.URL)
	or(&s.Unregister, g.Unregister)
	or(&s.Executor, g.Executor)
	if s.TokenEnv == "" && s.TokenFile == "" && s.AccessTokenEnv == "" && s.AccessTokenFile == "" {
		s.TokenEnv, s.TokenFile, s.AccessTokenEnv, s.AccessTokenFile = g.TokenEnv, g.TokenFile, g.AccessTokenEnv, g.AccessTokenFile
	}
	if g.state() == "absent" {
		s.State = "absent"
	}
	s.ReplaceInvalidToken = s.ReplaceInvalidToken || g.ReplaceInvalidToken
	for _, n := range []struct {
		v   *int
		def int
	}{{&s.RequestConcurrency, g.RequestConcurrency}, {&s.Limit, g.Limit}, {&s.OutputLimit, g.OutputLimit}} {
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	if s.usesAccessToken() && s.RunnerType == "" && s.GroupID == 0 && s.ProjectID == 0 {
		s.RunnerType, s.GroupID, s.ProjectID = g.RunnerType, g.GroupID, g.ProjectID
	}
	if s.Cache == nil {
		s.Cache = g.Cache
	}
	inheritUnset(&s.Docker, g.Docker)
	if len(item.GitLabRunnerServerSettings.names()) == 0 {
		s.GitLabRunnerServerSettings, s.serverInherited = g.GitLabRunnerServerSettings, len(g.GitLabRunnerServerSettings.names()) > 0
	}
	s.Environment = mergeEnvironment(g.Environment, item.Environment)
	if len(g.FeatureFlags) > 0 {
		s.FeatureFlags = maps.Clone(g.FeatureFlags)
		maps.Copy(s.FeatureFlags, item.FeatureFlags)
	}
	return &s
}

// inheritUnset sets every field of *dst that is unset (its zero value:
// "", 0, nil, an empty list) to src's.
func inheritUnset[T any](dst *T, src T) {
	d, sv := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for i := 0; i < d.NumField(); i++ {
		f := d.Field(i)
		if !f.CanSet() {
			continue
		}
		if f.IsZero() || (f.Kind() == reflect.Slice && f.Len() == 0) {
			f.Set(sv.Field(i))
		}
	}
}

// mergeEnvironment is base's KEY=value entries with over's: an entry of
// over replaces base's of the same variable in place, the others follow.
func mergeEnvironment(base, over []string) []string {
	if len(over) == 0 {
		return base
	}
	out := slices.Clone(base)
	for _, e := range over {
		k, _, _ := strings.Cut(e, "=")
		if i := slices.IndexFunc(out, func(b string) bool { bk, _, _ := strings.Cut(b, "="); return bk == k }); i >= 0 {
			out[i] = e
		} else {
			out = append(out, e)
		}
	}
	return out
}
