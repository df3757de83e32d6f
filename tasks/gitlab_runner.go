package tasks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
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
// compares the settings this task manages (executor, environment, docker.*,
// and the global concurrent and check_interval) and shows a diff of
// config.toml when they differ. When a glrt- token is given and config.toml
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
	// Executor is the [[runners]] executor (default docker).
	Executor string `yaml:"executor"`
	// Environment is the [[runners]] environment, KEY=value entries.
	Environment []string `yaml:"environment"`
	// Docker is the [runners.docker] section.
	Docker GitLabRunnerDocker `yaml:"docker"`

	// RunnerType, GroupID, ProjectID and Description are sent to POST
	// /api/v4/user/runners when dindops creates the runner with an access
	// token. RunnerType is instance_type, group_type or project_type; it
	// defaults to group_type when GroupID is set, project_type when
	// ProjectID is, instance_type otherwise. Description defaults to Name.
	RunnerType  string `yaml:"runner_type"`
	GroupID     int    `yaml:"group_id"`
	ProjectID   int    `yaml:"project_id"`
	Description string `yaml:"description"`

	// TagList, RunUntagged, Locked, AccessLevel, MaximumTimeout and Paused
	// are the runner's settings in GitLab, sent when dindops creates the
	// runner (access token) or registers it (registration token). With a
	// glrt- token they are set in GitLab's UI instead, and setting them is an
	// error. GitLab keeps them: changing them later is done in GitLab.
	TagList        []string `yaml:"tag_list"`
	RunUntagged    *bool    `yaml:"run_untagged"`
	Locked         *bool    `yaml:"locked"`
	AccessLevel    string   `yaml:"access_level"`
	MaximumTimeout int      `yaml:"maximum_timeout"`
	Paused         *bool    `yaml:"paused"`

	token       string
	kind        tokenKind
	tokenSource string
	// tokenErr says why token is empty; Plan returns it where the token is
	// needed.
	tokenErr error
	client   *http.Client
	now      func() time.Time
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
type GitLabRunnerDocker struct {
	// Host is the Docker endpoint jobs run on, e.g. tcp://gitlab-dind:2375.
	Host string `yaml:"host"`
	// Image is the default image of jobs.
	Image string `yaml:"image"`
	// HelperImage replaces the helper image gitlab-runner pulls from
	// registry.gitlab.com (for sites that cannot reach it; GitLab publishes
	// the same images on Docker Hub as gitlab/gitlab-runner-helper); given
	// as "" it removes helper_image, left out it is not managed
	// (https://docs.gitlab.com/runner/configuration/advanced-configuration/#helper-image).
	HelperImage *string `yaml:"helper_image"`
	// Privileged runs job containers privileged.
	Privileged *bool `yaml:"privileged"`
	// TLSVerify turns on TLS verification of the connection to Host.
	TLSVerify *bool `yaml:"tls_verify"`
	// TLSCertPath is the directory of the client certificates (ca.pem,
	// cert.pem, key.pem) for a TLS Host, as the runner sees it; given as
	// "" it removes tls_cert_path (plain TCP), left out it is not managed.
	TLSCertPath *string `yaml:"tls_cert_path"`
	// Volumes are extra volumes of job containers, in docker -v syntax.
	Volumes []string `yaml:"volumes"`
	// PullPolicy lists pull policies: always, if-not-present, never.
	PullPolicy []string `yaml:"pull_policy"`
	// NetworkMode puts job containers on a network.
	NetworkMode string `yaml:"network_mode"`
	// DisableCache turns off the local cache volumes.
	DisableCache *bool `yaml:"disable_cache"`
	// ShmSize is the size of /dev/shm in job containers, in bytes.
	ShmSize *int64 `yaml:"shm_size"`
	// NetworkMTU is the MTU of the network gitlab-runner creates for each
	// job with FF_NETWORK_PER_BUILD (its driver option
	// com.docker.network.driver.mtu): auto, a number, or left out (see
	// MTU; auto reads the host's default-route interface). With no MTU to
	// set, network_mtu is removed (0, gitlab-runner's "not set", counts as
	// none).
	NetworkMTU MTU `yaml:"network_mtu"`
}

func (d GitLabRunnerDocker) isZero() bool {
	return d.Host == "" && d.Image == "" && d.HelperImage == nil && d.Privileged == nil && d.TLSVerify == nil && d.TLSCertPath == nil && len(d.Volumes) == 0 &&
		len(d.PullPolicy) == 0 && d.NetworkMode == "" && d.DisableCache == nil && d.ShmSize == nil && !d.NetworkMTU.Managed()
}

// runnerAuthPrefix starts every runner authentication token.
const runnerAuthPrefix = "glrt-"

const defaultRunnerConfig = "/etc/gitlab-runner/config.toml"

// GitLabAPIError is a GitLab API call that did not succeed. Its message says
// what to do; the status and GitLab's own message stay reachable. It never
// contains a token.
type GitLabAPIError struct {
	Method     string
	URL        string
	StatusCode int
	// Message is GitLab's "message" or "error" field.
	Message string
	// Summary and Hint are dindops's words: what failed and what to do.
	Summary string
	Hint    string
}

func (e *GitLabAPIError) Error() string {
	msg := e.Summary
	if msg == "" {
		msg = fmt.Sprintf("%s %s failed", e.Method, e.URL)
	}
	status := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" && e.Message != status {
		status += ": " + e.Message
	}
	msg += " (" + status + ")"
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

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

// legacyFields are the runner settings GitLab keeps server-side: only the
// calls that create a runner (POST /api/v4/user/runners, POST
// /api/v4/runners) accept them.
func (g *GitLabRunner) legacyFields() []string {
	var set []string
	if len(g.TagList) > 0 {
		set = append(set, "tag_list")
	}
	if g.RunUntagged != nil {
		set = append(set, "run_untagged")
	}
	if g.Locked != nil {
		set = append(set, "locked")
	}
	if g.AccessLevel != "" {
		set = append(set, "access_level")
	}
	if g.MaximumTimeout != 0 {
		set = append(set, "maximum_timeout")
	}
	if g.Paused != nil {
		set = append(set, "paused")
	}
	return set
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
	if g.ConfigFile != "" && !strings.HasPrefix(g.ConfigFile, "/") {
		return FieldErrorf("config_file", "%q is not an absolute path", g.ConfigFile)
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
	if g.Concurrent < 0 {
		return FieldErrorf("concurrent", "must be at least 1 (0 leaves config.toml's value)")
	}
	if g.CheckInterval < 0 {
		return FieldErrorf("check_interval", "must be a number of seconds, at least 1 (0 leaves config.toml's value)")
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
	return nil
}

// Prepare implements Preparer: it reads the token on the controller and
// keeps the HTTP client for the GitLab API.
//
// A token that is not there (the variable unset, the file missing, either
// empty) is not an error yet: a host whose runner is already registered does
// not need it, so Plan fails with the reason only on a host where the runner
// must be registered or its token replaced. A token that is there but
// malformed, of the wrong kind for its input, or kept in a file other users
// can read, fails here, before any host is contacted.
func (g *GitLabRunner) Prepare(c Controller) error {
	g.client = c.HTTPClient
	g.token, g.kind, g.tokenSource, g.tokenErr = "", noToken, "", nil
	if g.state() == "absent" {
		return nil
	}
	lookupEnv, readFile := c.LookupEnv, c.ReadFile
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	where := tokenWhere
	if g.usesAccessToken() {
		where = accessTokenWhere
	}
	var raw, field string
	switch {
	case g.TokenEnv != "" || g.AccessTokenEnv != "":
		field, name := "token_env", g.TokenEnv
		if g.AccessTokenEnv != "" {
			field, name = "access_token_env", g.AccessTokenEnv
		}
		g.tokenSource = "environment variable " + name
		v, ok := lookupEnv(name)
		if !ok {
			hint := "or put the token in a file and use token_file (runner_token_file in the shipped playbook)"
			if g.usesAccessToken() {
				hint = "or put it in a file and use access_token_file (runner_access_token_file in the shipped playbook)"
			}
			g.tokenErr = FieldErrorf(field, "environment variable %s is not set where dindops runs: export it with the token (%s), %s", name, where, hint)
			return nil
		}
		raw = v
	case g.TokenFile != "" || g.AccessTokenFile != "":
		field, path := "token_file", g.TokenFile
		if g.AccessTokenFile != "" {
			field, path = "access_token_file", g.AccessTokenFile
		}
		g.tokenSource = "file " + path
		if err := checkTokenFileMode(path); err != nil {
			return &FieldError{Field: field, Err: err}
		}
		b, err := readFile(path)
		if err != nil {
			g.tokenErr = FieldErrorf(field, "cannot read the token file on the controller: %v", err)
			return nil
		}
		raw = string(b)
	default:
		return FieldErrorf("token_env", "set token_env, token_file, access_token_env or access_token_file")
	}
	field = "token_env"
	switch {
	case g.AccessTokenEnv != "":
		field = "access_token_env"
	case g.AccessTokenFile != "":
		field = "access_token_file"
	case g.TokenFile != "":
		field = "token_file"
	}
	token := strings.TrimSpace(raw)
	if token == "" {
		g.tokenErr = FieldErrorf(field, "%s is empty: put the token in it (%s)", g.tokenSource, where)
		return nil
	}
	if strings.ContainsAny(token, " \t\r\n\"'") {
		return FieldErrorf(field, "the token in %s contains spaces, quotes or several lines; it should be one word such as glrt-…", g.tokenSource)
	}
	switch {
	case g.usesAccessToken() && strings.HasPrefix(token, runnerAuthPrefix):
		return FieldErrorf(field, "%s holds a glrt- runner authentication token, not an access token: give it with token_env or token_file (runner_token_env in the shipped playbook)", g.tokenSource)
	case g.usesAccessToken():
		g.kind = accessToken
	case strings.HasPrefix(token, runnerAuthPrefix):
		g.kind = runnerAuthToken
	case strings.HasPrefix(token, accessTokenPrefix):
		return FieldErrorf(field, "%s holds a personal access token (glpat-), not a runner token: give it with access_token_env or access_token_file (runner_access_token_env in the shipped playbook) to create the runner with it", g.tokenSource)
	default:
		g.kind = registrationToken
	}
	g.token = token
	if g.kind == runnerAuthToken {
		if set := g.legacyFields(); len(set) > 0 {
			return FieldErrorf(set[0], "%s cannot be set with a glrt- runner authentication token: GitLab keeps them with the runner; set them in GitLab's UI (the runner's settings), or let dindops create the runner with an access token (access_token_env: POST /api/v4/user/runners), and remove them here (gitlab-runner 15.11 and later refuse them too)", strings.Join(set, ", "))
		}
	}
	return nil
}

// tokenWhere says where a runner token comes from.
const tokenWhere = "a glrt- runner authentication token from GitLab: Settings > CI/CD > Runners > New runner"

// accessTokenWhere says where an access token comes from.
const accessTokenWhere = "a personal access token with the create_runner scope: User settings > Access tokens"

// accessTokenPrefix starts GitLab's personal access tokens (unless an
// administrator changed the instance's prefix).
const accessTokenPrefix = "glpat-"

// checkTokenFileMode refuses a token file that other users can read or
// change, as ssh refuses a private key with loose permissions. It looks at
// the controller's own file system; a path it cannot stat is left to
// Controller.ReadFile, which reports what is wrong with it.
func checkTokenFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	perm := fi.Mode().Perm()
	switch {
	case perm&0o044 != 0:
		return fmt.Errorf("token file %s is readable by other users (mode %04o); chmod 600 %s", path, perm, path)
	case perm&0o022 != 0:
		return fmt.Errorf("token file %s can be changed by other users (mode %04o); chmod 600 %s", path, perm, path)
	}
	return nil
}

// needToken returns nil when the token was read, and otherwise why not,
// saying what needs it.
func (g *GitLabRunner) needToken(what string) error {
	if g.token != "" {
		return nil
	}
	if g.tokenErr != nil {
		return fmt.Errorf("%s needs the token, which dindops could not read: %w", what, g.tokenErr)
	}
	return fmt.Errorf("%s needs the token: the task's Prepare did not run (a dindops bug)", what)
}

func (g *GitLabRunner) isRunnerAuthToken() bool { return g.kind == runnerAuthToken }

func (g *GitLabRunner) httpClient() *http.Client {
	if g.client != nil {
		return g.client
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (g *GitLabRunner) clock() time.Time {
	if g.now != nil {
		return g.now()
	}
	return time.Now()
}

// gitlabRunnerPayload is how Apply makes a change planned by Plan.
type gitlabRunnerPayload struct {
	action  Action
	orig    []byte // config.toml as plan read it
	existed bool
	// systemID is sent to /api/v4/runners/verify; writeSystemID says
	// .runner_system_id did not exist and Apply creates it.
	systemID      string
	writeSystemID bool
	// newToken says an Update also puts the given glrt- token in place of
	// the one config.toml has.
	newToken bool
	// verifyCurrent says an Update verifies the token config.toml has (with
	// the system ID it writes) before anything else.
	verifyCurrent bool
	// deleteRunnerID is the runner, refused by GitLab, that a Create
	// replaces and deletes first with the access token (DELETE
	// /api/v4/runners/:id); 0 for none.
	deleteRunnerID int64
	// sidFile is .runner_system_id as plan read it, in the same round trip
	// as config.toml (sidExists false when there is none).
	sidFile   RemoteFile
	sidExists bool
	// networkMTU is docker.network_mtu as resolved on the host; 0 for
	// none.
	networkMTU int
}

// currentSystemID is the system ID in .runner_system_id as plan read it;
// false when the file does not exist; an error when it holds something
// else than a system ID.
func (p *gitlabRunnerPayload) currentSystemID(configFile string) (string, bool, error) {
	if !p.sidExists {
		return "", false, nil
	}
	return parseSystemID(systemIDPath(configFile), p.sidFile.Content)
}

// InvalidTokenError is a runner token in config.toml that GitLab refuses
// (403 to POST /api/v4/runners/verify): the runner was deleted in GitLab,
// or its token reset or revoked. dindops registers the runner anew only
// when replace_invalid_token allows it. It never contains the token.
type InvalidTokenError struct {
	Runner     string
	ConfigFile string
	URL        string
	// SameAsGiven says the glrt- token given to dindops is that very token,
	// so replacing it with the given one cannot help.
	SameAsGiven bool
}

func (e *InvalidTokenError) Error() string {
	msg := fmt.Sprintf("runner %s: the token in %s is no longer valid for %s (403 Forbidden to POST /api/v4/runners/verify): the runner was deleted in GitLab, or its token was reset or revoked, and gitlab-runner cannot take jobs with it",
		e.Runner, e.ConfigFile, e.URL)
	if e.SameAsGiven {
		return msg + "; the glrt- token given to dindops is the same one: create the runner again in GitLab (or reset its token there), give dindops the new glrt- token and set replace_invalid_token: true (runner_replace_invalid_token=true in the shipped playbook)"
	}
	return msg + "; dindops does not register it again on its own: to replace it with a new registration from the given token, set replace_invalid_token: true (-e runner_replace_invalid_token=true with the shipped playbook)"
}

// Plan implements Task.
func (g *GitLabRunner) Plan(ctx context.Context, h Host) ([]Change, error) {
	path := g.configFile()
	// config.toml, .runner_system_id and, for network_mtu: auto, the
	// host's default route in one round trip.
	var mtuProbes []Probe
	if g.state() != "absent" {
		mtuProbes = g.Docker.NetworkMTU.Probes()
	}
	res, err := RunProbes(ctx, h, append([]Probe{ReadProbe(path), ReadProbe(systemIDPath(path))}, mtuProbes...)...)
	if len(res) != 2+len(mtuProbes) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if res[0].Err != nil {
		return nil, fmt.Errorf("reading %s: %w (dindops never takes a config.toml it cannot read for one without the runner)", path, res[0].Err)
	}
	if res[1].Err != nil {
		return nil, fmt.Errorf("reading %s: %w", systemIDPath(path), res[1].Err)
	}
	f, exists := res[0].File, res[0].Exists
	doc, err := parseTOMLDoc(path, f.Content)
	if err != nil {
		return nil, err
	}
	idx, err := doc.findRunner(path, g.Name)
	if err != nil {
		return nil, err
	}
	payload := &gitlabRunnerPayload{orig: f.Content, existed: exists, sidFile: res[1].File, sidExists: res[1].Exists}
	var warnings []string
	if exists && !doc.keepsLayout(f.Content) {
		warnings = append(warnings, fmt.Sprintf("%s will be rewritten in gitlab-runner's own layout: its comments and formatting are not kept", path))
	}

	if g.state() == "absent" {
		return g.planAbsent(ctx, h, path, doc, idx, payload, warnings)
	}
	if payload.networkMTU, err = g.Docker.NetworkMTU.ResolveFrom(res[2:]); err != nil {
		return nil, &FieldError{Field: "docker.network_mtu", Err: err}
	}

	// A runner is registered once: with a token in its entry, it is only
	// updated, unless the entry points at another GitLab, whose runner this
	// is not, or GitLab refuses the token and the user allows a new
	// registration.
	var curToken, curURL string
	if idx >= 0 {
		curToken, _ = doc.runners()[idx]["token"].(string)
		curURL, _ = doc.runners()[idx]["url"].(string)
	}
	if curToken == "" || (curURL != "" && !sameGitLab(curURL, g.URL)) {
		return g.planRegister(ctx, h, path, doc, idx, payload, warnings, "")
	}

	planned := doc.clone()
	fields := g.applySettings(planned, idx, payload.networkMTU)
	var gitlabDown string
	sid, sidExists, err := payload.currentSystemID(path)
	if err != nil {
		return nil, err
	}
	switch {
	case !sidExists && strings.HasPrefix(curToken, runnerAuthPrefix):
		// GitLab verifies a glrt- token only with a system ID, and a plan
		// must not make one up in GitLab: Apply writes it, then verifies.
		if sid, err = newSystemID(); err != nil {
			return nil, err
		}
		payload.systemID, payload.writeSystemID, payload.verifyCurrent = sid, true, true
		fields = append(fields, Field{Name: "system_id", New: sid + " (new " + systemIDPath(path) + ")"},
			Field{Name: "request", New: fmt.Sprintf("POST %s/api/v4/runners/verify token=%s (from %s) system_id=%s", strings.TrimRight(g.URL, "/"), SensitiveValue, path, sid)})
	default:
		if _, err := g.verify(asCheck(ctx), curToken, sid); err != nil {
			var apiErr *GitLabAPIError
			var down *GitLabUnreachableError
			switch {
			case errors.As(g.unreachable(err), &down):
				// The runner keeps working without GitLab answering now
				// (it retries on its own): that is no failed host.
				gitlabDown = fmt.Sprintf("runner %s: %v: the token in %s could not be checked; the runner keeps it and retries on its own", g.Name, down, path)
			case !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden:
				return nil, fmt.Errorf("runner %s: cannot check the token in %s with GitLab: %w", g.Name, path, err)
			default:
				invalid := &InvalidTokenError{Runner: g.Name, ConfigFile: path, URL: strings.TrimRight(g.URL, "/"), SameAsGiven: g.isRunnerAuthToken() && g.token == curToken}
				if !g.ReplaceInvalidToken || invalid.SameAsGiven {
					return nil, invalid
				}
				return g.planRegister(ctx, h, path, doc, idx, payload, warnings, "its token in "+path+" is no longer valid (403 from GitLab): replace_invalid_token is set")
			}
		}
	}

	// A glrt- token is used as it is, so config.toml must hold the one given
	// (a runner created anew in GitLab has a new one). A registration or an
	// access token cannot be compared: config.toml holds the token GitLab
	// issued for it.
	if g.isRunnerAuthToken() && curToken != g.token {
		sid, sidFields, err := g.planSystemID(ctx, h, path, payload)
		if err != nil {
			return nil, err
		}
		payload.newToken = true
		fields = append(fields, Field{Name: "token", Old: SensitiveValue, New: SensitiveValue, Sensitive: true},
			Field{Name: "token_source", New: g.tokenSource + " (" + g.kind.String() + ", not the one in " + path + ")"},
			Field{Name: "request", New: fmt.Sprintf("POST %s/api/v4/runners/verify token=%s system_id=%s", strings.TrimRight(g.URL, "/"), SensitiveValue, sid)})
		fields = append(fields, sidFields...)
	}
	if exists && f.Mode != 0o600 {
		fields = append(fields, Field{Name: "mode", Old: fmt.Sprintf("%04o", f.Mode), New: "0600"})
	}
	if exists && f.Owner != "" && f.Owner != "root" {
		fields = append(fields, Field{Name: "owner", Old: f.Owner, New: "root"})
	}
	if payload.newToken || payload.verifyCurrent {
		// Apply verifies a token with GitLab first: one that does not
		// answer would fail it.
		err := g.checkGitLabAnswers(ctx)
		if gitlabDown != "" && err == nil {
			err = errors.New(gitlabDown)
		}
		if err != nil {
			return nil, fmt.Errorf("runner %s: the update verifies a token with GitLab: %w; apply would fail, so nothing is planned for this runner", g.Name, err)
		}
	}
	if gitlabDown != "" {
		if len(fields) == 0 {
			return nil, &WarningsError{Warnings: []string{gitlabDown}}
		}
		warnings = append(warnings, gitlabDown)
	}
	if len(fields) == 0 {
		return nil, nil
	}
	diff, err := maskedDiff(path, doc, planned)
	if err != nil {
		return nil, err
	}
	payload.action = Update
	return []Change{{Action: Update, Resource: "runner", Target: g.Name,
		Summary: fmt.Sprintf("update runner %s in %s: %s", g.Name, path, FieldNames(fields)),
		Fields:  fields, Diff: diff, Warnings: warnings, Payload: payload}}, nil
}

// planAbsent plans the decommission of the runner: unregistered from
// GitLab as unregister says, its entry removed from config.toml.
func (g *GitLabRunner) planAbsent(ctx context.Context, h Host, path string, doc *tomlDoc, idx int, payload *gitlabRunnerPayload, warnings []string) ([]Change, error) {
	if idx < 0 {
		return nil, nil
	}
	planned := doc.clone()
	planned.removeRunner(idx)
	r := doc.runners()[idx]
	token, _ := r["token"].(string)
	base := strings.TrimRight(g.URL, "/")
	if u, _ := r["url"].(string); u != "" {
		base = strings.TrimRight(u, "/")
	}
	who := "runner " + g.Name
	if id, ok := r["id"].(int64); ok && id > 0 {
		who += fmt.Sprintf(" (id %d)", id)
	}
	summary := fmt.Sprintf("remove runner %s from %s", g.Name, path)
	var fields []Field
	switch {
	case token == "":
	case g.unregister() == "none":
		warnings = append(warnings, fmt.Sprintf("%s stays in %s (unregister: none): delete it there if nothing uses it", who, base))
	case g.unregister() == "manager":
		sid, ok, err := payload.currentSystemID(path)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("runner %s: unregister: manager deletes this host's runner manager, known by its system ID, but %s does not exist; use unregister: runner or none", g.Name, systemIDPath(path))
		}
		payload.systemID = sid
		summary = fmt.Sprintf("unregister this host's runner manager (system ID %s) of %s from %s and remove the runner from %s", sid, who, base, path)
		fields = append(fields, Field{Name: "request", New: fmt.Sprintf("DELETE %s/api/v4/runners/managers token=%s system_id=%s", base, SensitiveValue, sid)})
	default:
		summary = fmt.Sprintf("unregister %s from %s and remove it from %s", who, base, path)
		fields = append(fields, Field{Name: "request", New: fmt.Sprintf("DELETE %s/api/v4/runners token=%s", base, SensitiveValue)})
		if strings.HasPrefix(token, runnerAuthPrefix) && !g.usesAccessToken() {
			warnings = append(warnings, fmt.Sprintf("%s is deleted in GitLab: other hosts registered with the same glrt- token lose it too; unregister: manager removes only this host (runner_unregister=manager in the shipped playbook)", who))
		}
	}
	if len(fields) > 0 {
		// Unregistering needs GitLab: one that does not answer would fail
		// apply half-way (after dind is removed), so the plan fails now.
		if err := g.checkGitLabAnswers(ctx); err != nil {
			return nil, fmt.Errorf("runner %s: unregistering it needs GitLab: %w; apply would fail, so nothing is planned for this runner (runner_unregister=none decommissions it without GitLab, leaving the runner listed there)", g.Name, err)
		}
	}
	diff, err := maskedDiff(path, doc, planned)
	if err != nil {
		return nil, err
	}
	payload.action = Delete
	return []Change{{Action: Delete, Resource: "runner", Target: g.Name, Summary: summary, Fields: fields, Diff: diff, Warnings: warnings, Payload: payload}}, nil
}

// planRegister plans a registration: why is reason, or derived from the
// entry (missing, without a token, another GitLab's).
func (g *GitLabRunner) planRegister(ctx context.Context, h Host, path string, doc *tomlDoc, idx int, payload *gitlabRunnerPayload, warnings []string, reason string) ([]Change, error) {
	base := strings.TrimRight(g.URL, "/")
	// Why it is registered: not in config.toml, in it without a token, its
	// token refused, or registered with another GitLab (its url changed).
	var oldURL string
	var oldID any
	var moved bool
	var replacedID int64 // the runner whose refused token this replaces
	summary := fmt.Sprintf("register runner %s with %s", g.Name, base)
	need := fmt.Sprintf("runner %s is not in %s: registering it with %s", g.Name, path, base)
	if idx >= 0 {
		r := doc.runners()[idx]
		oldURL, _ = r["url"].(string)
		oldID = r["id"]
		switch t, _ := r["token"].(string); {
		case reason != "":
			moved = true
			summary += " (" + reason + ")"
			need = fmt.Sprintf("runner %s: %s: registering it again with %s", g.Name, reason, base)
			// GitLab refuses the old token, so dindops cannot delete the old
			// runner with it; one whose token was reset is still listed.
			if id, ok := oldID.(int64); ok && id > 0 {
				replacedID = id
			}
		case t != "":
			moved = true
			summary += fmt.Sprintf(" (its [[runners]] entry in %s is registered with %s: its token and url are replaced)", path, oldURL)
			need = fmt.Sprintf("runner %s's url changed from %s to %s: registering it with %s", g.Name, oldURL, base, base)
			regAt := "runner " + g.Name
			if id, ok := oldID.(int64); ok && id > 0 {
				regAt += fmt.Sprintf(" (id %d)", id)
			}
			warnings = append(warnings, fmt.Sprintf("%s stays registered with %s: dindops does not remove it from that GitLab; delete it there (Settings > CI/CD > Runners, or Admin > CI/CD > Runners) if nothing else uses it", regAt, oldURL))
		default:
			summary += fmt.Sprintf(" (its [[runners]] entry in %s has no token)", path)
			need = fmt.Sprintf("runner %s has no token in %s: registering it with %s", g.Name, path, base)
		}
	}
	if err := g.needToken(need); err != nil {
		return nil, err
	}
	token, err := g.planChecks(ctx, need)
	if err != nil {
		return nil, err
	}
	var deleteField *Field
	inUse := ""
	if replacedID > 0 && token.canDeleteRunners() {
		sid, _, err := payload.currentSystemID(path)
		if err != nil {
			return nil, err
		}
		inUse = g.replacedRunnerUse(ctx, replacedID, sid)
	}
	if replacedID > 0 {
		if token.canDeleteRunners() && inUse == "" {
			payload.deleteRunnerID = replacedID
			summary += fmt.Sprintf("; the runner it replaces (id %d) is deleted in GitLab first", replacedID)
			deleteField = &Field{Name: "replaced_runner", Old: fmt.Sprintf("id %d (its token refused)", replacedID),
				New: fmt.Sprintf("deleted first: DELETE %s/api/v4/runners/%d PRIVATE-TOKEN=%s (404: gone already)", base, replacedID, SensitiveValue)}
		} else {
			why := "dindops cannot remove it with a token GitLab refuses"
			switch {
			case inUse != "":
				why = inUse
			case g.kind == accessToken:
				why += fmt.Sprintf(", and the access token (%s) has no api or manage_runner scope to delete it by id", g.tokenSource)
			}
			w := fmt.Sprintf("the runner this replaces (id %d) may still be listed in GitLab if its token was reset rather than the runner deleted: %s; if no host uses it, delete it there (Settings > CI/CD > Runners, or DELETE %s/api/v4/runners/%d with an access token that may manage it)", replacedID, why, base, replacedID)
			if g.kind == runnerAuthToken {
				// The glrt- token given may be that runner's new one.
				w = fmt.Sprintf("unless the glrt- token given is the new token of runner %d itself (its token reset in GitLab), ", replacedID) + w
			}
			warnings = append(warnings, w)
		}
	}

	// Other entries for the same GitLab keep running beside this one: a
	// renamed runner leaves its old entry behind.
	var others []string
	for j, r := range doc.runners() {
		if u, _ := r["url"].(string); j != idx && sameGitLab(u, g.URL) {
			n, _ := r["name"].(string)
			others = append(others, n)
		}
	}
	switch len(others) {
	case 0:
	case 1:
		warnings = append(warnings, fmt.Sprintf("%s also has runner %s for the same GitLab; it keeps running: remove it with state: absent under its name if it was renamed to %s", path, others[0], g.Name))
	default:
		warnings = append(warnings, fmt.Sprintf("%s also has runners %s for the same GitLab; they keep running: remove them with state: absent under their names if one was renamed to %s", path, strings.Join(others, ", "), g.Name))
	}
	// gitlab-runner leaves .runner_system_id beside config.toml: with it
	// there and the runner not in config.toml, config.toml may have been
	// lost with the runner's registration in it.
	if idx < 0 && len(others) == 0 {
		if payload.sidExists {
			id := ""
			if sid := strings.TrimSpace(string(payload.sidFile.Content)); systemIDRE.MatchString(sid) {
				id = " (system ID " + sid + ")"
			}
			warnings = append(warnings, fmt.Sprintf("%s exists%s: this host had a runner before, but %s has no entry for %s; if it was registered with another token than this one and config.toml was lost, that registration remains in GitLab: delete it there (Settings > CI/CD > Runners)", systemIDPath(path), id, path, g.Name))
		}
	}

	fields := []Field{{Name: "name", New: g.Name}}
	var request string
	switch g.kind {
	case runnerAuthToken, accessToken:
		sid, sidFields, err := g.planSystemID(ctx, h, path, payload)
		if err != nil {
			return nil, err
		}
		fields = append(fields, sidFields...)
		request = fmt.Sprintf("POST %s/api/v4/runners/verify token=%s system_id=%s", base, SensitiveValue, sid)
		if g.kind == accessToken {
			create := fmt.Sprintf("POST %s/api/v4/user/runners PRIVATE-TOKEN=%s runner_type=%s", base, SensitiveValue, g.runnerType())
			switch {
			case g.GroupID != 0:
				create += fmt.Sprintf(" group_id=%d", g.GroupID)
			case g.ProjectID != 0:
				create += fmt.Sprintf(" project_id=%d", g.ProjectID)
			}
			create += " description=" + g.description()
			if set := g.legacyFields(); len(set) > 0 {
				create += " " + strings.Join(set, " ")
			}
			request = create + "; then " + request + " with the token it returns"
			summary = strings.Replace(summary, "register runner", "create runner", 1)
		}
	default:
		request = fmt.Sprintf("POST %s/api/v4/runners token=%s description=%s", base, SensitiveValue, g.Name)
		if set := g.legacyFields(); len(set) > 0 {
			request += " " + strings.Join(set, " ")
		}
		warnings = append(warnings, "the token is a legacy registration token (not glrt-): registration tokens are deprecated since GitLab 15.6 and disabled by default since 17.0; prefer a runner authentication token from a runner created in GitLab (Settings > CI/CD > Runners > New runner), or an access token with the create_runner scope (access_token_env)")
	}
	tokenField := Field{Name: "token", New: SensitiveValue, Sensitive: true}
	if moved {
		tokenField.Old = SensitiveValue
	}
	if deleteField != nil {
		fields = append(fields, *deleteField)
	}
	fields = append(fields, tokenField,
		Field{Name: "token_source", New: g.tokenSource + " (" + g.kind.String() + ")"},
		Field{Name: "request", New: request})

	planned := doc.clone()
	newIdx := idx
	if newIdx < 0 {
		newIdx = planned.addRunner(g.Name)
	}
	planned.runners()[newIdx]["token"] = SensitiveValue
	fields = append(fields, g.applySettings(planned, newIdx, payload.networkMTU)...)
	diff, err := maskedDiff(path, doc, planned)
	if err != nil {
		return nil, err
	}
	payload.action = Create
	return []Change{{Action: Create, Resource: "runner", Target: g.Name, Summary: summary,
		Fields: fields, Diff: diff, Warnings: warnings, Payload: payload}}, nil
}

// sameGitLab reports whether two GitLab URLs name the same instance: the
// scheme and host compare without case, and a trailing slash does not
// matter.
func sameGitLab(a, b string) bool {
	norm := func(s string) string {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Host == "" {
			return strings.TrimRight(s, "/")
		}
		return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.Path, "/")
	}
	return norm(a) == norm(b)
}

// planSystemID picks the system_id sent with a glrt- token: the one in
// .runner_system_id, or a new one Apply writes there.
func (g *GitLabRunner) planSystemID(ctx context.Context, h Host, path string, payload *gitlabRunnerPayload) (string, []Field, error) {
	sid, exists, err := payload.currentSystemID(path)
	if err != nil {
		return "", nil, err
	}
	var fields []Field
	if !exists {
		if sid, err = newSystemID(); err != nil {
			return "", nil, err
		}
		payload.writeSystemID = true
		fields = append(fields, Field{Name: "system_id", New: sid + " (new " + systemIDPath(path) + ")"})
	}
	payload.systemID = sid
	return sid, fields, nil
}

// Apply implements Task.
func (g *GitLabRunner) Apply(ctx context.Context, h Host, changes []Change) error {
	for _, c := range changes {
		p, ok := c.Payload.(*gitlabRunnerPayload)
		if !ok {
			return fmt.Errorf("gitlab_runner: unknown change")
		}
		path := g.configFile()
		f, exists, err := ReadFileIfExists(ctx, h, path)
		if err != nil {
			return err
		}
		if exists != p.existed || !bytes.Equal(f.Content, p.orig) {
			return Unchanged(fmt.Errorf("%s changed on the host since it was planned; plan again", path))
		}
		doc, err := parseTOMLDoc(path, f.Content)
		if err != nil {
			return err
		}
		idx, err := doc.findRunner(path, g.Name)
		if err != nil {
			return err
		}
		switch p.action {
		case Create:
			err = g.applyRegister(ctx, h, path, doc, idx, p)
		case Update:
			if idx < 0 {
				return fmt.Errorf("runner %s is no longer in %s; plan again", g.Name, path)
			}
			err = g.applyUpdate(ctx, h, path, doc, idx, p)
		case Delete:
			err = g.applyDelete(ctx, h, path, doc, idx, p)
		default:
			err = fmt.Errorf("gitlab_runner: unknown change %v", p.action)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *GitLabRunner) applyRegister(ctx context.Context, h Host, path string, doc *tomlDoc, idx int, p *gitlabRunnerPayload) error {
	if g.token == "" {
		return fmt.Errorf("gitlab_runner: no token was prepared (the task's Prepare did not run)")
	}
	if p.deleteRunnerID > 0 {
		// Before anything else: a refusal leaves the host as it was.
		if err := g.deleteRunnerByID(ctx, p.deleteRunnerID); err != nil {
			return Unchanged(fmt.Errorf("runner %s: deleting the runner it replaces (id %d) in GitLab: %w; nothing was changed on this host or in GitLab: delete that runner in GitLab (or give the token's user the right to manage it) and run again", g.Name, p.deleteRunnerID, err))
		}
	}
	var reg runnerTokenResponse
	var err error
	// early: GitLab refused before it created anything.
	early := true
	switch g.kind {
	case runnerAuthToken:
		reg, err = g.verify(ctx, g.token, p.systemID)
	case accessToken:
		if reg, err = g.createRunner(ctx); err == nil {
			early = false
			// As gitlab-runner register does with a glrt- token: GitLab
			// gets this host's runner manager.
			var verified runnerTokenResponse
			if verified, err = g.verify(ctx, reg.Token, p.systemID); err == nil {
				verified.ID = max(verified.ID, reg.ID)
				reg = verified
			} else {
				err = g.takeBack(ctx, reg, err)
			}
		}
	default:
		reg, err = g.register(ctx)
	}
	if err != nil {
		if early && p.deleteRunnerID == 0 {
			return Unchanged(err)
		}
		return err
	}
	// Nothing is written before GitLab has said yes, the directory
	// included.
	if !p.existed {
		if _, err := Exec(ctx, h, "mkdir", "-p", "-m0700", pathDir(path)); err != nil {
			if g.kind == runnerAuthToken {
				return err
			}
			return g.takeBack(ctx, reg, err)
		}
	}
	if err := g.keepSystemID(ctx, h, path, p); err != nil {
		if g.kind == runnerAuthToken {
			return err
		}
		return g.takeBack(ctx, reg, err)
	}
	if idx < 0 {
		idx = doc.addRunner(g.Name)
	}
	g.setToken(doc, idx, reg)
	g.applySettings(doc, idx, p.networkMTU)
	if err := g.write(ctx, h, path, doc, reg.Token); err != nil {
		if g.kind == runnerAuthToken {
			return err
		}
		return g.takeBack(ctx, reg, err)
	}
	return nil
}

// takeBack deletes a runner that dindops created but could not keep the
// token of, rather than leave an orphan in GitLab, and says so with err.
func (g *GitLabRunner) takeBack(ctx context.Context, reg runnerTokenResponse, err error) error {
	if derr := g.deleteRunner(ctx, reg.Token); derr != nil {
		return fmt.Errorf("%w; runner %s (id %d) was created in GitLab but could not be deleted again: delete it in GitLab's UI (%v)", err, g.Name, reg.ID, derr)
	}
	return fmt.Errorf("%w; the runner created in GitLab (id %d) was deleted again", err, reg.ID)
}

func (g *GitLabRunner) applyUpdate(ctx context.Context, h Host, path string, doc *tomlDoc, idx int, p *gitlabRunnerPayload) error {
	if idx < 0 {
		return fmt.Errorf("runner %s is no longer in %s; plan again", g.Name, path)
	}
	if p.verifyCurrent {
		cur, _ := doc.runners()[idx]["token"].(string)
		if _, err := g.verify(ctx, cur, p.systemID); err != nil {
			var apiErr *GitLabAPIError
			if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusForbidden {
				return &InvalidTokenError{Runner: g.Name, ConfigFile: path, URL: strings.TrimRight(g.URL, "/"), SameAsGiven: g.isRunnerAuthToken() && g.token == cur}
			}
			return err
		}
	}
	token := ""
	if p.newToken {
		reg, err := g.verify(ctx, g.token, p.systemID)
		if err != nil {
			return err
		}
		g.setToken(doc, idx, reg)
		token = reg.Token
	}
	if err := g.keepSystemID(ctx, h, path, p); err != nil {
		return err
	}
	g.applySettings(doc, idx, p.networkMTU)
	return g.write(ctx, h, path, doc, token)
}

// keepSystemID writes the system ID verified with GitLab to
// .runner_system_id when plan found none: gitlab-runner keeps the one it
// finds there, so GitLab sees one runner manager for this host.
func (g *GitLabRunner) keepSystemID(ctx context.Context, h Host, path string, p *gitlabRunnerPayload) error {
	if !p.writeSystemID {
		return nil
	}
	return h.WriteFile(ctx, systemIDPath(path), []byte(p.systemID), WriteOptions{Mode: 0o600, Owner: "root", Group: "root"})
}

// setToken records a runner's registration in its [[runners]] entry, with
// gitlab-runner's keys.
func (g *GitLabRunner) setToken(doc *tomlDoc, idx int, reg runnerTokenResponse) {
	r := doc.runners()[idx]
	r["id"] = reg.ID
	r["token"] = reg.Token
	r["token_obtained_at"] = g.clock().UTC().Truncate(time.Second)
	r["token_expires_at"] = reg.expiresAt()
}

func (g *GitLabRunner) applyDelete(ctx context.Context, h Host, path string, doc *tomlDoc, idx int, p *gitlabRunnerPayload) error {
	if idx < 0 {
		return nil
	}
	token, _ := doc.runners()[idx]["token"].(string)
	var err error
	switch {
	case token == "" || g.unregister() == "none":
	case g.unregister() == "manager":
		err = g.deleteRunnerManager(ctx, token, p.systemID)
	default:
		err = g.deleteRunner(ctx, token)
	}
	if err != nil {
		var apiErr *GitLabAPIError
		// 403: GitLab no longer knows the token, the runner is gone; 404:
		// the runner manager is.
		if !errors.As(err, &apiErr) || (apiErr.StatusCode != http.StatusForbidden && apiErr.StatusCode != http.StatusNotFound) {
			return fmt.Errorf("runner %s: unregistering from GitLab failed, %s is left as it was: %w", g.Name, path, err)
		}
	}
	doc.removeRunner(idx)
	return g.write(ctx, h, path, doc, "")
}

// write encodes doc, checks that the result parses back with exactly one
// entry for the runner (holding token when given), and replaces path.
func (g *GitLabRunner) write(ctx context.Context, h Host, path string, doc *tomlDoc, token string) error {
	content, err := doc.encode()
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	check, err := parseTOMLDoc(path, content)
	if err != nil {
		return fmt.Errorf("the new %s does not parse back (a dindops bug; nothing was written): %v", path, err)
	}
	idx, err := check.findRunner(path, g.Name)
	if err != nil {
		return err
	}
	if g.state() == "present" {
		lost := idx < 0
		if !lost && token != "" {
			got, _ := check.runners()[idx]["token"].(string)
			lost = got != token
		}
		if lost {
			return fmt.Errorf("the new %s lost runner %s (a dindops bug; nothing was written)", path, g.Name)
		}
	} else if idx >= 0 {
		return fmt.Errorf("the new %s still has runner %s (a dindops bug; nothing was written)", path, g.Name)
	}
	return h.WriteFile(ctx, path, content, WriteOptions{Mode: 0o600, Owner: "root", Group: "root", Sensitive: true})
}

// applySettings sets the managed settings on doc's runner idx and the
// global section, and returns the fields that changed. networkMTU is
// docker.network_mtu as resolved on the host.
func (g *GitLabRunner) applySettings(doc *tomlDoc, idx int, networkMTU int) []Field {
	var fields []Field
	set := func(table map[string]any, key, name string, want any) {
		old, had := table[key]
		if had && tomlSettingEqual(key, old, want) {
			return
		}
		table[key] = want
		f := Field{Name: name, New: displayValue(key, want)}
		if had {
			f.Old = displayValue(key, old)
		}
		fields = append(fields, f)
	}
	if g.Concurrent > 0 {
		set(doc.root, "concurrent", "concurrent", int64(g.Concurrent))
	}
	if g.CheckInterval > 0 {
		set(doc.root, "check_interval", "check_interval", int64(g.CheckInterval))
	}
	r := doc.runners()[idx]
	set(r, "url", "url", g.URL)
	set(r, "executor", "executor", g.executor())
	if len(g.Environment) > 0 {
		set(r, "environment", "environment", stringsToAny(g.Environment))
	}
	d := g.Docker
	if d.isZero() {
		return fields
	}
	dt, ok := r["docker"].(map[string]any)
	if !ok {
		dt = map[string]any{}
		r["docker"] = dt
		doc.order[runnerPath(idx)+".docker"] = []string{"host", "tls_verify", "tls_cert_path", "image", "helper_image", "privileged", "disable_cache", "volumes", "pull_policy", "network_mode", "network_mtu", "shm_size"}
	}
	if d.Host != "" {
		set(dt, "host", "docker.host", d.Host)
	}
	if d.TLSVerify != nil {
		set(dt, "tls_verify", "docker.tls_verify", *d.TLSVerify)
	}
	if p := d.TLSCertPath; p != nil && *p != "" {
		set(dt, "tls_cert_path", "docker.tls_cert_path", *p)
	} else if old, had := dt["tls_cert_path"]; p != nil && had {
		// Plain TCP: gitlab-runner speaks TLS whenever tls_cert_path is set.
		delete(dt, "tls_cert_path")
		fields = append(fields, Field{Name: "docker.tls_cert_path", Old: displayValue("tls_cert_path", old)})
	}
	if d.Image != "" {
		set(dt, "image", "docker.image", d.Image)
	}
	if p := d.HelperImage; p != nil && *p != "" {
		set(dt, "helper_image", "docker.helper_image", *p)
	} else if old, had := dt["helper_image"]; p != nil && had {
		delete(dt, "helper_image")
		fields = append(fields, Field{Name: "docker.helper_image", Old: displayValue("helper_image", old)})
	}
	if d.Privileged != nil {
		set(dt, "privileged", "docker.privileged", *d.Privileged)
	}
	if d.DisableCache != nil {
		set(dt, "disable_cache", "docker.disable_cache", *d.DisableCache)
	}
	if len(d.Volumes) > 0 {
		set(dt, "volumes", "docker.volumes", stringsToAny(d.Volumes))
	}
	if len(d.PullPolicy) > 0 {
		set(dt, "pull_policy", "docker.pull_policy", stringsToAny(d.PullPolicy))
	}
	if d.NetworkMode != "" {
		set(dt, "network_mode", "docker.network_mode", d.NetworkMode)
	}
	if d.ShmSize != nil {
		set(dt, "shm_size", "docker.shm_size", *d.ShmSize)
	}
	if old, had := dt["network_mtu"]; networkMTU > 0 {
		set(dt, "network_mtu", "docker.network_mtu", int64(networkMTU))
	} else if had && old != int64(0) && d.NetworkMTU.Managed() {
		// 0 is gitlab-runner's "not set" (register writes it): no MTU too.
		delete(dt, "network_mtu")
		fields = append(fields, Field{Name: "docker.network_mtu", Old: displayValue("network_mtu", old)})
	}
	return fields
}

func stringsToAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
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

// ---- GitLab API ----

// systemIDPath is where gitlab-runner keeps its system ID: beside
// config.toml.
func systemIDPath(configFile string) string { return pathDir(configFile) + "/.runner_system_id" }

// parseSystemID checks the content of .runner_system_id (at path).
func parseSystemID(path string, content []byte) (string, bool, error) {
	id := strings.TrimSpace(string(content))
	if !systemIDRE.MatchString(id) {
		return "", false, fmt.Errorf("%s holds %q, not a gitlab-runner system ID (s_ or r_ and 12 letters or digits); remove it and gitlab-runner makes a new one", path, id)
	}
	return id, true, nil
}

func newSystemID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "s_" + hex.EncodeToString(b), nil
}

// ---- config.toml as an ordered document ----
