package tasks

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// GitLabRunner registers a GitLab runner once and keeps its [[runners]]
// entry in gitlab-runner's config.toml
// (https://docs.gitlab.com/runner/configuration/advanced-configuration/).
//
//	tasks:
//	  - name: runner is registered exactly once
//	    gitlab_runner:
//	      config_file: /srv/gitlab-runner/config/config.toml
//	      name: build-1
//	      url: https://gitlab.example.com
//	      token_env: GITLAB_RUNNER_TOKEN
//	      concurrent: 4
//	      environment: ["COMPOSE_PROJECT_NAME=ci-job-$CI_JOB_ID"]
//	      docker:
//	        host: tcp://gitlab-dind:2375
//	        image: docker:27
//	        volumes: ["/var/run/docker.sock:/var/run/docker.sock", "/cache"]
//
// # Tokens
//
// Which input is given chooses how the runner gets its token. Each is read
// on the controller (Prepare), from an environment variable or a file (one
// other users cannot read, as ssh demands of private keys), and is used
// only there: every GitLab API call is made by dindops itself through
// Controller.HTTPClient, so no token ever appears on a host's command line.
//
//   - token_env / token_file holding a runner authentication token
//     ("glrt-"), from a runner created in GitLab (Settings > CI/CD > Runners
//     > New runner): it is checked with POST /api/v4/runners/verify (with
//     the system_id kept in .runner_system_id beside config.toml, as
//     gitlab-runner does) and written to config.toml. Tags, run_untagged,
//     locked, access_level, maximum_timeout and paused belong to that runner
//     in GitLab; setting them here is an error.
//   - access_token_env / access_token_file holding a personal access token
//     with the create_runner scope: dindops creates the runner with POST
//     /api/v4/user/runners (runner_type, group_id or project_id,
//     description, tag_list and the other server-side settings), verifies
//     the glrt- token GitLab answers with, and keeps it in config.toml only:
//     it is shown nowhere, and each host gets a runner of its own.
//   - token_env / token_file holding anything else: a legacy registration
//     token (deprecated since GitLab 15.6, disabled by default since 17.0).
//     POST /api/v4/runners creates the runner with description = name and
//     the server-side settings. A 403 (invalid token) or 410 (registration
//     disallowed) fails the task once, writes nothing, and says how to switch
//     to a runner authentication token.
//
// The token is needed only where a runner is registered: a host whose
// config.toml has the runner plans and applies without it.
//
// # Never twice
//
// A runner whose name is in config.toml with a token is never registered
// again while GitLab accepts that token: every plan verifies it (POST
// /api/v4/runners/verify with the token from config.toml and the host's
// system ID, which is what gitlab-runner itself does whenever it starts).
// A token GitLab refuses (the runner was deleted, or its token reset or
// revoked) fails the plan with what happened; the runner is registered
// anew only when replace_invalid_token is true. A GitLab that cannot be
// reached fails the plan too: it never means "not registered". The plan
// compares the settings this task manages (executor, environment,
// request_concurrency, limit, output_limit, docker.*, cache.*,
// feature_flags.*, and the global concurrent, check_interval,
// listen_address and shutdown_timeout) and shows a diff of config.toml
// when they differ. When a glrt- token is given and config.toml
// holds another valid one, the given one replaces it after GitLab verifies
// it. Options left unset (empty strings and lists, zero numbers, unset
// booleans) are not managed: whatever config.toml has for them is kept.
//
// A url naming another GitLab than the entry's is a new registration there:
// the entry's token, id and url are replaced, and the plan warns that the
// runner stays registered with the old GitLab (dindops does not remove it).
// A runner registered under a new name gets a new entry; the plan warns when
// config.toml has other entries for the same GitLab (a renamed runner's old
// entry keeps running until removed with state: absent), and when
// .runner_system_id shows the host had a runner that config.toml lost.
//
// # config.toml
//
// config.toml is edited as parsed TOML: other runners, global settings and
// keys this task does not know are kept, in their order; the result is parsed
// again before it replaces the file, so it never has duplicate keys. A file
// that is not valid TOML, or that cannot be read, fails the task with the
// reason and is never overwritten. gitlab-runner reloads config.toml by
// itself when it changes, so no restart is needed. It is written mode 0600,
// owner root; every token in it shows as "(sensitive value)" in plans and
// diffs. .runner_system_id is kept as it is (written only when missing).
//
// # Several runners
//
// With runners, the task manages several [[runners]] entries of one
// config.toml (one gitlab-runner process runs them all, as on a big build
// server): each item is a runner with its own name, token input and
// settings, over the task's options (see runnerSpecs). Each is planned as
// above, in order, with a change of its own; the global settings go with
// the first runner present. Entries of config.toml the task does not name
// are kept.
//
//	gitlab_runner:
//	  config_file: /srv/gitlab-runner/config/config.toml
//	  url: https://gitlab.example.com
//	  concurrent: 8
//	  listen_address: ":9252"
//	  restart: {containers: [gitlab-runner]}
//	  docker: {host: "tcp://gitlab-dind:2376", image: "docker:27"}
//	  runners:
//	    - {name: big-1-heavy, token_env: HEAVY_TOKEN, limit: 2}
//	    - {name: big-1-light, token_file: /etc/dindops/light-token}
//
// # Decommission
//
// With state: absent the runner is unregistered from GitLab and its entry
// removed from config.toml. unregister says how: "runner" (the default)
// deletes the runner with DELETE /api/v4/runners and its token; "manager"
// deletes only this host's runner manager with DELETE
// /api/v4/runners/managers (token and system_id), for a glrt- token that
// other hosts share; "none" leaves GitLab alone. A token GitLab no longer
// knows means the runner is gone already. No token input is needed.
type GitLabRunner struct {
	// ConfigFile is gitlab-runner's configuration file on the host
	// (default /etc/gitlab-runner/config.toml).
	ConfigFile string `yaml:"config_file"`
	// Name is the [[runners]] name; it identifies the runner in config.toml
	// and is its description in GitLab when dindops creates the runner.
	Name string `yaml:"name"`
	// URL is the GitLab instance URL ([[runners]] url).
	URL string `yaml:"url"`
	// TokenEnv names an environment variable of the dindops process holding
	// a glrt- runner authentication token or a legacy registration token.
	// Exactly one of TokenEnv, TokenFile, AccessTokenEnv and AccessTokenFile
	// must be non-empty (state present).
	TokenEnv string `yaml:"token_env"`
	// TokenFile is a file on the controller holding that token, readable by
	// its owner only (chmod 600).
	TokenFile string `yaml:"token_file"`
	// AccessTokenEnv names an environment variable holding a personal (or
	// group, project) access token with the create_runner scope, used to
	// create the runner with POST /api/v4/user/runners.
	AccessTokenEnv string `yaml:"access_token_env"`
	// AccessTokenFile is a file on the controller holding that access
	// token, readable by its owner only.
	AccessTokenFile string `yaml:"access_token_file"`
	// State is present (default) or absent.
	State string `yaml:"state"`
	// ReplaceInvalidToken allows registering the runner anew when GitLab
	// refuses the token in config.toml (403 to POST /api/v4/runners/verify).
	// Off, such a token fails the plan.
	ReplaceInvalidToken bool `yaml:"replace_invalid_token"`
	// Unregister is how state: absent leaves GitLab: runner (default,
	// DELETE /api/v4/runners), manager (DELETE /api/v4/runners/managers:
	// only this host's runner manager) or none.
	Unregister string `yaml:"unregister"`

	// Concurrent is the global limit of jobs run at once (config.toml
	// concurrent); 0 leaves it as it is.
	Concurrent int `yaml:"concurrent"`
	// CheckInterval is the global interval, in seconds, between job requests
	// (config.toml check_interval); 0 leaves it as it is.
	CheckInterval int `yaml:"check_interval"`
	// ListenAddress is the HOST:PORT where gitlab-runner serves its
	// Prometheus metrics (config.toml listen_address; ":9252" is the port
	// of gitlab-runner's docs, https://docs.gitlab.com/runner/monitoring/);
	// "" leaves it as it is. gitlab-runner reads it only when it starts:
	// see Restart.
	ListenAddress string `yaml:"listen_address"`
	// ShutdownTimeout is how long, in seconds, gitlab-runner's forceful
	// shutdown may take before the process exits (config.toml
	// shutdown_timeout; gitlab-runner's default is 30); 0 leaves it.
	ShutdownTimeout int `yaml:"shutdown_timeout"`
	// Restart names the runner containers to restart, drained first (see
	// Drain), when a setting changes that gitlab-runner reads only when it
	// starts (listen_address); containers that do not run are left alone.
	// Without it, the plan warns that the setting waits for the runner's
	// next start.
	Restart *Drain `yaml:"restart"`
	// Runners are the runners of config.toml this task manages, when there
	// are several (on one host, one gitlab-runner process runs them all):
	// each item takes the options of one runner (name, url, the token
	// inputs, state, unregister, replace_invalid_token, executor,
	// environment, request_concurrency, limit, output_limit, docker, cache,
	// feature_flags and the server-side settings), and what it leaves unset
	// comes from this task's own options (see runnerSpecs). Empty: the
	// task's own options are the one runner.
	Runners []GitLabRunner `yaml:"runners"`
	// Executor is the [[runners]] executor (default docker).
	Executor string `yaml:"executor"`
	// Environment is the [[runners]] environment, KEY=value entries.
	Environment []string `yaml:"environment"`
	// Docker is the [runners.docker] section.
	Docker GitLabRunnerDocker `yaml:"docker"`
	// RequestConcurrency is how many requests for new jobs the runner may
	// have open with GitLab at once ([[runners]] request_concurrency); 0
	// leaves it.
	RequestConcurrency int `yaml:"request_concurrency"`
	// Limit is the most jobs this runner runs at once ([[runners]] limit,
	// within the global concurrent); 0 leaves it (gitlab-runner's own 0 is
	// no limit of its own).
	Limit int `yaml:"limit"`
	// OutputLimit is the largest job log, in kilobytes ([[runners]]
	// output_limit; gitlab-runner's default is 4096); 0 leaves it.
	OutputLimit int `yaml:"output_limit"`
	// Cache is the [runners.cache] section: the cache shared by the jobs
	// of several hosts, in S3 or another object store.
	Cache *GitLabRunnerCache `yaml:"cache"`
	// FeatureFlags is the [runners.feature_flags] section: gitlab-runner's
	// feature flags by name, e.g. FF_NETWORK_PER_BUILD: true
	// (https://docs.gitlab.com/runner/configuration/feature-flags/). Flags
	// not named are left as they are.
	FeatureFlags map[string]bool `yaml:"feature_flags"`

	// RunnerType, GroupID, ProjectID and Description are sent to POST
	// /api/v4/user/runners when dindops creates the runner with an access
	// token. RunnerType is instance_type, group_type or project_type; it
	// defaults to group_type when GroupID is set, project_type when
	// ProjectID is, instance_type otherwise. Description defaults to Name.
	RunnerType  string `yaml:"runner_type"`
	GroupID     int    `yaml:"group_id"`
	ProjectID   int    `yaml:"project_id"`
	Description string `yaml:"description"`

	// GitLabRunnerServerSettings are the runner's settings in GitLab
	// (tag_list, run_untagged, locked, access_level, maximum_timeout,
	// paused).
	GitLabRunnerServerSettings `yaml:",inline"`

	token       string
	kind        tokenKind
	tokenSource string
	// tokenErr says why token is empty; Plan returns it where the token is
	// needed.
	tokenErr error
	client   *http.Client
	now      func() time.Time
	// specs are the runners, resolved once (runnerSpecs).
	specs []*GitLabRunner
	// serverInherited says the server-side settings are the task's, not
	// this runner's own (an item of runners).
	serverInherited bool
}

// tokenKind is what the given token is, which decides how the runner is
// registered.
type tokenKind int

const (
	noToken tokenKind = iota
	runnerAuthToken
	registrationToken
	accessToken
)

func (k tokenKind) String() string {
	switch k {
	case runnerAuthToken:
		return "runner authentication token"
	case registrationToken:
		return "legacy registration token"
	case accessToken:
		return "access token"
	}
	return "no token"
}

// GitLabRunnerDocker is the [runners.docker] section of a runner, with
// config.toml's names
// (https://docs.gitlab.com/runner/configuration/advanced-configuration/#the-runnersdocker-section).
// It is also how the section is written: its toml tags are config.toml's
// keys, in the order a new section gets them, and an option left unset is
// left out (not managed).
type GitLabRunnerDocker struct {
	// Host is the Docker endpoint jobs run on, e.g. tcp://gitlab-dind:2375.
	Host string `yaml:"host" toml:"host,omitempty"`
	// TLSVerify turns on TLS verification of the connection to Host.
	TLSVerify *bool `yaml:"tls_verify" toml:"tls_verify,omitempty"`
	// TLSCertPath is the directory of the client certificates (ca.pem,
	// cert.pem, key.pem) for a TLS Host, as the runner sees it; given as
	// "" it removes tls_cert_path (plain TCP), left out it is not managed.
	TLSCertPath *string `yaml:"tls_cert_path" toml:"tls_cert_path,omitempty"`
	// Image is the default image of jobs.
	Image string `yaml:"image" toml:"image,omitempty"`
	// HelperImage replaces the helper image gitlab-runner pulls from
	// registry.gitlab.com (for sites that cannot reach it; GitLab publishes
	// the same images on Docker Hub as gitlab/gitlab-runner-helper); given
	// as "" it removes helper_image, left out it is not managed
	// (https://docs.gitlab.com/runner/configuration/advanced-configuration/#helper-image).
	HelperImage *string `yaml:"helper_image" toml:"helper_image,omitempty"`
	// Privileged runs job containers privileged.
	Privileged *bool `yaml:"privileged" toml:"privileged,omitempty"`
	// DisableCache turns off the local cache volumes.
	DisableCache *bool `yaml:"disable_cache" toml:"disable_cache,omitempty"`
	// Volumes are extra volumes of job containers, in docker -v syntax.
	Volumes []string `yaml:"volumes" toml:"volumes,omitempty"`
	// PullPolicy lists pull policies: always, if-not-present, never.
	PullPolicy []string `yaml:"pull_policy" toml:"pull_policy,omitempty"`
	// NetworkMode puts job containers on a network.
	NetworkMode string `yaml:"network_mode" toml:"network_mode,omitempty"`
	// ShmSize is the size of /dev/shm in job containers, in bytes.
	ShmSize *int64 `yaml:"shm_size" toml:"shm_size,omitempty"`
	// NetworkMTU is the MTU of the network gitlab-runner creates for each
	// job with FF_NETWORK_PER_BUILD (its driver option
	// com.docker.network.driver.mtu): auto, a number, or left out (see
	// MTU; auto reads the host's default-route interface). It is written
	// as the number it resolves to on the host (applySettings); with no
	// MTU to set, network_mtu is removed (0, gitlab-runner's "not set",
	// counts as none).
	NetworkMTU MTU `yaml:"network_mtu" toml:"-"`
}

func (d GitLabRunnerDocker) isZero() bool {
	return d.Host == "" && d.Image == "" && d.HelperImage == nil && d.Privileged == nil && d.TLSVerify == nil && d.TLSCertPath == nil && len(d.Volumes) == 0 &&
		len(d.PullPolicy) == 0 && d.NetworkMode == "" && d.DisableCache == nil && d.ShmSize == nil && !d.NetworkMTU.Managed()
}

// runnerAuthPrefix starts every runner authentication token.
const runnerAuthPrefix = "glrt-"

const defaultRunnerConfig = "/etc/gitlab-runner/config.toml"

// TOMLError is a configuration file that is not valid TOML. Message is the
// parser's, with quoted text removed when it may be a secret.
type TOMLError struct {
	Path         string
	Line, Column int
	Message      string
}

func (e *TOMLError) Error() string {
	return fmt.Sprintf("%s:%d:%d: not valid TOML: %s; fix it by hand (gitlab-runner cannot read it either), dindops never overwrites a file it cannot parse",
		e.Path, e.Line, e.Column, e.Message)
}

func (g *GitLabRunner) configFile() string {
	if g.ConfigFile == "" {
		return defaultRunnerConfig
	}
	return g.ConfigFile
}

func (g *GitLabRunner) state() string {
	if g.State == "" {
		return "present"
	}
	return g.State
}

func (g *GitLabRunner) executor() string {
	if g.Executor == "" {
		return "docker"
	}
	return g.Executor
}

// createFields are the options only POST /api/v4/user/runners takes.
func (g *GitLabRunner) createFields() []string {
	var set []string
	if g.RunnerType != "" {
		set = append(set, "runner_type")
	}
	if g.GroupID != 0 {
		set = append(set, "group_id")
	}
	if g.ProjectID != 0 {
		set = append(set, "project_id")
	}
	if g.Description != "" {
		set = append(set, "description")
	}
	return set
}

// runnerType is the runner_type sent to POST /api/v4/user/runners.
func (g *GitLabRunner) runnerType() string {
	switch {
	case g.RunnerType != "":
		return g.RunnerType
	case g.GroupID != 0:
		return "group_type"
	case g.ProjectID != 0:
		return "project_type"
	}
	return "instance_type"
}

func (g *GitLabRunner) description() string {
	if g.Description != "" {
		return g.Description
	}
	return g.Name
}

func (g *GitLabRunner) unregister() string {
	if g.Unregister == "" {
		return "runner"
	}
	return g.Unregister
}

// usesAccessToken says the runner is created with an access token: one
// runner in GitLab per host.
func (g *GitLabRunner) usesAccessToken() bool {
	return g.AccessTokenEnv != "" || g.AccessTokenFile != ""
}

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// Validate implements Validator.
func (g *GitLabRunner) Validate() error {
	g.specs = nil
	if err := g.validateGlobals(); err != nil {
		return err
	}
	specs, err := g.runnerSpecs()
	if err != nil {
		return err
	}
	for i, s := range specs {
		if err := s.validateRunner(); err != nil {
			if len(g.Runners) > 0 {
				return prefixFieldError(fmt.Sprintf("runners[%d]", i), err)
			}
			return err
		}
	}
	return nil
}

// validateGlobals checks the options of config.toml's global section and
// of the task as a whole.
func (g *GitLabRunner) validateGlobals() error {
	if g.ConfigFile != "" && !strings.HasPrefix(g.ConfigFile, "/") {
		return FieldErrorf("config_file", "%q is not an absolute path", g.ConfigFile)
	}
	if g.Concurrent < 0 {
		return FieldErrorf("concurrent", "must be at least 1 (0 leaves config.toml's value)")
	}
	if g.CheckInterval < 0 {
		return FieldErrorf("check_interval", "must be a number of seconds, at least 1 (0 leaves config.toml's value)")
	}
	if g.ShutdownTimeout < 0 {
		return FieldErrorf("shutdown_timeout", "must be a number of seconds, at least 1 (0 leaves config.toml's value)")
	}
	if a := g.ListenAddress; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return FieldErrorf("listen_address", "%q is not HOST:PORT, e.g. \":9252\" (every address of the runner container, port 9252)", a)
		}
	}
	if g.Restart != nil {
		if err := g.Restart.validate("restart"); err != nil {
			return err
		}
	}
	return nil
}

// validateRunner checks the options of one runner.
func (g *GitLabRunner) validateRunner() error {
	if strings.TrimSpace(g.Name) == "" {
		return FieldErrorf("name", "required: the runner's name in config.toml, e.g. \"{{ .inventory_hostname }}\"")
	}
	if strings.ContainsAny(g.Name, "\n\r") {
		return FieldErrorf("name", "must be one line")
	}
	if g.URL == "" {
		return FieldErrorf("url", "required: the GitLab URL, e.g. https://gitlab.example.com")
	}
	if u, err := url.Parse(g.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		shown := fmt.Sprintf("%q", g.URL)
		if err == nil && u.User != nil {
			// A password (or token) in the URL is never shown.
			shown = fmt.Sprintf("%q", u.Redacted())
			if _, hasPassword := u.User.Password(); !hasPassword {
				u.User = url.User("xxxxx")
				shown = fmt.Sprintf("%q", u.String())
			}
		} else if err != nil {
			shown = "the value given"
		}
		return FieldErrorf("url", "%s is not a GitLab URL such as https://gitlab.example.com (http or https, a host, no user or password: the token is given apart)", shown)
	}
	switch g.unregister() {
	case "runner", "manager", "none":
	default:
		return FieldErrorf("unregister", "%q is not runner (delete the runner in GitLab), manager (delete only this host's runner manager) or none", g.Unregister)
	}
	switch g.state() {
	case "present":
	case "absent":
		return nil
	default:
		return FieldErrorf("state", "%q is not present or absent", g.State)
	}
	var inputs []string
	for _, in := range []struct{ name, v string }{{"token_env", g.TokenEnv}, {"token_file", g.TokenFile}, {"access_token_env", g.AccessTokenEnv}, {"access_token_file", g.AccessTokenFile}} {
		if in.v != "" {
			inputs = append(inputs, in.name)
		}
	}
	switch len(inputs) {
	case 0:
		return FieldErrorf("token_env", "set token_env (an environment variable of dindops holding a glrt- runner authentication token or a registration token), token_file (a file on the controller holding it), or access_token_env / access_token_file (an access token with the create_runner scope, to create the runner)")
	case 1:
	default:
		return FieldErrorf(inputs[1], "%s are all set: set only one of them and leave the others empty (the token input decides how the runner is registered), as the shipped playbook does with its templates", strings.Join(inputs, ", "))
	}
	for _, n := range []struct {
		field string
		v     int
	}{{"request_concurrency", g.RequestConcurrency}, {"limit", g.Limit}, {"output_limit", g.OutputLimit}} {
		if n.v < 0 {
			return FieldErrorf(n.field, "must be at least 1 (0 leaves config.toml's value)")
		}
	}
	if g.MaximumTimeout < 0 {
		return FieldErrorf("maximum_timeout", "must be a number of seconds")
	}
	if g.AccessLevel != "" && g.AccessLevel != "not_protected" && g.AccessLevel != "ref_protected" {
		return FieldErrorf("access_level", "%q is not not_protected or ref_protected", g.AccessLevel)
	}
	if set := g.createFields(); len(set) > 0 && !g.usesAccessToken() {
		return FieldErrorf(set[0], "%s are sent to POST /api/v4/user/runners, which dindops calls only to create the runner with an access token: set access_token_env or access_token_file, or remove them", strings.Join(set, ", "))
	}
	if g.usesAccessToken() {
		switch rt := g.runnerType(); {
		case rt != "instance_type" && rt != "group_type" && rt != "project_type":
			return FieldErrorf("runner_type", "%q is not instance_type, group_type or project_type", g.RunnerType)
		case g.GroupID < 0 || g.ProjectID < 0:
			return FieldErrorf("group_id", "group_id and project_id are positive numbers")
		case g.GroupID != 0 && g.ProjectID != 0:
			return FieldErrorf("project_id", "set group_id (a group runner) or project_id (a project runner), not both")
		case rt == "group_type" && g.GroupID == 0:
			return FieldErrorf("group_id", "a group_type runner needs group_id: the group's numeric ID")
		case rt == "project_type" && g.ProjectID == 0:
			return FieldErrorf("project_id", "a project_type runner needs project_id: the project's numeric ID")
		case rt == "instance_type" && (g.GroupID != 0 || g.ProjectID != 0):
			return FieldErrorf("runner_type", "an instance_type runner has no group_id or project_id")
		case rt == "group_type" && g.ProjectID != 0, rt == "project_type" && g.GroupID != 0:
			return FieldErrorf("runner_type", "a %s runner takes %s only", rt, map[string]string{"group_type": "group_id", "project_type": "project_id"}[rt])
		}
	}
	for _, e := range g.Environment {
		if !envKeyRE.MatchString(e) {
			return FieldErrorf("environment", "%q is not KEY=value", maskEnvEntry(e))
		}
	}
	for _, v := range g.Docker.Volumes {
		if strings.TrimSpace(v) == "" {
			return FieldErrorf("docker.volumes", "empty volume")
		}
	}
	for _, p := range g.Docker.PullPolicy {
		if p != "always" && p != "if-not-present" && p != "never" {
			return FieldErrorf("docker.pull_policy", "%q is not always, if-not-present or never", p)
		}
	}
	if err := g.Docker.NetworkMTU.Check(); err != nil {
		return &FieldError{Field: "docker.network_mtu", Err: err}
	}
	if g.executor() == "docker" && g.Docker.Image == "" {
		return FieldErrorf("docker.image", "the docker executor needs a default image for jobs ([runners.docker] image), e.g. docker:27")
	}
	for _, k := range sortedKeys(g.FeatureFlags) {
		if !featureFlagRE.MatchString(k) {
			return FieldErrorf("feature_flags", "%q is not a gitlab-runner feature flag (FF_ and capitals, e.g. FF_NETWORK_PER_BUILD)", k)
		}
	}
	if g.Cache != nil {
		if err := g.Cache.validate(); err != nil {
			return prefixFieldError("cache", err)
		}
	}
	return nil
}

// featureFlagRE matches gitlab-runner's feature flag names
// (https://docs.gitlab.com/runner/configuration/feature-flags/).
var featureFlagRE = regexp.MustCompile(`^FF_[A-Z0-9_]+$`)

// prefixFieldError puts prefix before the field of a *FieldError
// ("runners[1]" and "token_env" make "runners[1].token_env").
func prefixFieldError(prefix string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: prefix + "." + fe.Field, Err: fe.Err}
	}
	return err
}
