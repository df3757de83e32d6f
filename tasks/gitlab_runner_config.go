package tasks

// The settings gitlab_runner manages in config.toml, as typed structs with
// gitlab-runner's keys (https://docs.gitlab.com/runner/configuration/advanced-configuration/),
// and how they are merged into the parsed file: a key the structs leave
// out is not managed, and whatever the file has for it is kept.

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// runnerGlobals is what dindops manages of config.toml's global section.
// Zero values are left out (omitzero: BurntSushi/toml's omitempty keeps a
// 0): not managed.
type runnerGlobals struct {
	Concurrent      int    `toml:"concurrent,omitzero"`
	CheckInterval   int    `toml:"check_interval,omitzero"`
	ListenAddress   string `toml:"listen_address,omitempty"`
	ShutdownTimeout int    `toml:"shutdown_timeout,omitzero"`
}

// runnerSection is what dindops manages of one [[runners]] entry, in the
// order a new entry gets its keys (after name, url, id and the token keys
// that registration writes).
type runnerSection struct {
	URL                string              `toml:"url"`
	Executor           string              `toml:"executor"`
	Environment        []string            `toml:"environment,omitempty"`
	RequestConcurrency int                 `toml:"request_concurrency,omitzero"`
	Limit              int                 `toml:"limit,omitzero"`
	OutputLimit        int                 `toml:"output_limit,omitzero"`
	Docker             *GitLabRunnerDocker `toml:"docker,omitempty"`
	Cache              *GitLabRunnerCache  `toml:"cache,omitempty"`
	FeatureFlags       map[string]bool     `toml:"feature_flags,omitempty"`
}

// globals is the global section the task wants.
func (g *GitLabRunner) globals() runnerGlobals {
	return runnerGlobals{Concurrent: g.Concurrent, CheckInterval: g.CheckInterval, ListenAddress: g.ListenAddress, ShutdownTimeout: g.ShutdownTimeout}
}

// section is the [[runners]] entry the task wants.
func (g *GitLabRunner) section() runnerSection {
	s := runnerSection{URL: g.URL, Executor: g.executor(), Environment: g.Environment, RequestConcurrency: g.RequestConcurrency,
		Limit: g.Limit, OutputLimit: g.OutputLimit, Cache: g.Cache, FeatureFlags: g.FeatureFlags}
	if !g.Docker.isZero() {
		d := g.Docker
		s.Docker = &d
	}
	return s
}

// tomlWant is a typed section encoded by BurntSushi/toml and parsed back,
// so its values have the types of a parsed config.toml and its keys their
// struct order.
func tomlWant(v any) (*tomlDoc, error) {
	b, err := toml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %v", v, err)
	}
	return parseTOMLDoc("(wanted settings)", b)
}

// tomlMerge sets, in table (at order path at of doc), every key of want's
// table (at order path from), and returns the fields that changed, named
// prefix + key. Sub-tables are merged key by key (created when missing,
// with want's key order). An empty string removes its key: it comes only
// from an option given as "" (a pointer), which asks for the key to go.
func tomlMerge(doc *tomlDoc, at string, table map[string]any, want *tomlDoc, from string, wt map[string]any, prefix string) []Field {
	var fields []Field
	for _, k := range want.order[from] {
		wv, name := wt[k], prefix+k
		if sub, ok := wv.(map[string]any); ok {
			cur, ok := table[k].(map[string]any)
			if !ok {
				cur = map[string]any{}
				table[k] = cur
				doc.order[joinTOMLPath(at, k)] = slices.Clone(want.order[joinTOMLPath(from, k)])
			}
			fields = append(fields, tomlMerge(doc, joinTOMLPath(at, k), cur, want, joinTOMLPath(from, k), sub, name+".")...)
			continue
		}
		old, had := table[k]
		if s, ok := wv.(string); ok && s == "" {
			if had {
				delete(table, k)
				fields = append(fields, Field{Name: name, Old: displayValue(k, old)})
			}
			continue
		}
		if had && tomlSettingEqual(k, old, wv) {
			continue
		}
		table[k] = wv
		f := Field{Name: name, New: displayValue(k, wv), Sensitive: isSecretKey(k)}
		if had {
			f.Old = displayValue(k, old)
		}
		fields = append(fields, f)
	}
	return fields
}

// applySettings sets the managed settings on doc's runner idx and, when
// globals is not nil, the global section, and returns the fields that
// changed: the global ones first. networkMTU is docker.network_mtu as
// resolved on the host (0: none).
func (g *GitLabRunner) applySettings(doc *tomlDoc, idx int, globals *runnerGlobals, networkMTU int) ([]Field, error) {
	var fields []Field
	if globals != nil {
		want, err := tomlWant(*globals)
		if err != nil {
			return nil, err
		}
		fields = tomlMerge(doc, "", doc.root, want, "", want.root, "")
	}
	want, err := tomlWant(g.section())
	if err != nil {
		return nil, err
	}
	fields = append(fields, tomlMerge(doc, runnerPath(idx), doc.runners()[idx], want, "", want.root, "")...)
	return append(fields, g.applyNetworkMTU(doc, idx, networkMTU)...), nil
}

// applyNetworkMTU sets [runners.docker] network_mtu to the MTU resolved
// on the host, or removes it when there is none to set (a 0, what
// gitlab-runner register writes for "not set", is left as it is).
func (g *GitLabRunner) applyNetworkMTU(doc *tomlDoc, idx int, mtu int) []Field {
	if !g.Docker.NetworkMTU.Managed() {
		return nil
	}
	r := doc.runners()[idx]
	dt, _ := r["docker"].(map[string]any)
	old, had := dt["network_mtu"]
	switch {
	case mtu > 0:
		if had && reflect.DeepEqual(old, int64(mtu)) {
			return nil
		}
		if dt == nil {
			dt = map[string]any{}
			r["docker"] = dt
		}
		dt["network_mtu"] = int64(mtu)
		f := Field{Name: "docker.network_mtu", New: fmt.Sprint(mtu)}
		if had {
			f.Old = displayValue("network_mtu", old)
		}
		return []Field{f}
	case had && !reflect.DeepEqual(old, int64(0)):
		delete(dt, "network_mtu")
		return []Field{{Name: "docker.network_mtu", Old: displayValue("network_mtu", old)}}
	}
	return nil
}

// tomlSettingEqual compares a config.toml value with a wanted one the way
// gitlab-runner reads them: a URL's trailing slash does not matter, and a
// pull_policy may be one string or a list.
func tomlSettingEqual(key string, old, want any) bool {
	switch w := want.(type) {
	case string:
		o, ok := old.(string)
		if key == "url" {
			return ok && strings.TrimRight(o, "/") == strings.TrimRight(w, "/")
		}
		return ok && o == w
	case []any:
		if s, ok := old.(string); ok && key == "pull_policy" {
			old = []any{s}
		}
		o, ok := old.([]any)
		return ok && reflect.DeepEqual(o, w)
	default:
		return reflect.DeepEqual(old, want)
	}
}

// displayValue renders a config.toml value for a plan the way a user
// writes it, with secrets masked: a string as it is, a number or boolean as
// text, an environment one KEY=value per line (shown line by line) and any
// other list as "a, b".
func displayValue(key string, v any) string {
	switch x := maskValue(key, v).(type) {
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = displayValue("", e)
		}
		if key == "environment" {
			return strings.Join(parts, "\n")
		}
		return strings.Join(parts, ", ")
	case time.Time:
		return x.Format(time.RFC3339)
	default:
		return fmt.Sprint(x)
	}
}
