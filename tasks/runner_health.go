package tasks

// runner_health: the health check of a GitLab runner that runs its jobs in
// a Docker-in-Docker daemon, made as the runner sees it.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"go.yaml.in/yaml/v3"
)

// RunnerHealth checks that a runner works, in this order, stopping at the
// first fault:
//
//  1. the host's dockerd answers (Engine API _ping);
//  2. config.toml (config_file, read on the host) has the runner named
//     name and those of runners (with neither: at least one runner, and
//     every runner of config.toml is checked), and says which Docker
//     daemon their jobs use
//     ([runners.docker] host, tls_verify, tls_cert_path; an empty host
//     means the runner container's DOCKER_HOST, as gitlab-runner does);
//  3. the runner container (container) runs;
//  4. that daemon (each one the runners use, once) answers _ping and
//     version at that host and port, reached
//     from the host through the runner container's networks (the name is
//     resolved as docker's DNS does for the runner: a container or alias of
//     that name on a network the runner is on), with TLS exactly as
//     config.toml sets it: the CA, client certificate and key from
//     tls_cert_path (a directory inside the runner container, found on the
//     host through the container's mounts), the server's certificate
//     checked against the name the runner uses when tls_verify is true. A
//     TLS or port mismatch is named as such;
//  5. when config.toml sets listen_address, the runner answers GET /metrics
//     there (https://docs.gitlab.com/runner/monitoring/);
//  6. GitLab accepts each runner's token: POST /api/v4/runners/verify
//     (https://docs.gitlab.com/api/runners/#verify-authentication-for-a-registered-runner)
//     from the controller, with the host's system ID. A GitLab that cannot
//     be reached is a warning, not a fault: the runner keeps working.
//
// With state: absent (a decommissioned runner) nothing is checked.
//
//	health:
//	  - name: runner reaches dind as config.toml says
//	    runner_health:
//	      config_file: /srv/gitlab-runner/config/config.toml
//	      name: build-1
//	      container: gitlab-runner
//	      settle: 60
type RunnerHealth struct {
	// ConfigFile is config.toml's path on the host.
	ConfigFile string `yaml:"config_file"`
	// Name is the runner's name in config.toml ([[runners]] name).
	Name string `yaml:"name"`
	// Runners are runners to check, as the gitlab_runner task's runners
	// list gives them: only each item's name and state are read (state
	// absent: decommissioned, not checked); its other options are
	// gitlab_runner's. With neither name nor runners, every runner of
	// config.toml is checked.
	Runners []RunnerHealthItem `yaml:"runners"`
	// Container is the runner container's name.
	Container string `yaml:"container"`
	// State is present (the default: check) or absent (nothing to check).
	State string `yaml:"state"`
	// Settle is how long, in seconds, a problem that may be a daemon still
	// starting (nothing listens yet, a container restarting) is retried
	// after the play changed the host (default 60; 0 keeps the default,
	// -1 never retries).
	Settle int `yaml:"settle"`

	client *http.Client
	// retryEvery is the pause between tries while settling (tests shorten it).
	retryEvery time.Duration
	// handshakeTimeout bounds a TLS handshake with dind (10 s; tests
	// shorten it).
	handshakeTimeout time.Duration
}

const defaultHealthSettle = 60

// Validate implements Validator.
func (r *RunnerHealth) Validate() error {
	switch r.State {
	case "", "present", "absent":
	default:
		return FieldErrorf("state", "must be present or absent, got %q", r.State)
	}
	if r.State == "absent" {
		return nil
	}
	if !strings.HasPrefix(r.ConfigFile, "/") {
		return FieldErrorf("config_file", "must be an absolute path, got %q", r.ConfigFile)
	}
	if !dockerNameRE.MatchString(r.Container) {
		return FieldErrorf("container", "must be a container name, got %q", r.Container)
	}
	if r.Settle < -1 {
		return FieldErrorf("settle", "must be seconds (0 for the default %d, -1 for no retry), got %d", defaultHealthSettle, r.Settle)
	}
	return nil
}

// RunnerHealthItem is one runner of RunnerHealth.Runners: an item of the
// gitlab_runner task's runners list, of which the check reads the name and
// state.
type RunnerHealthItem struct {
	Name  string
	State string
}

// UnmarshalYAML implements yaml.Unmarshaler: a mapping with name (a
// string, required) and state; other keys are left to gitlab_runner.
func (it *RunnerHealthItem) UnmarshalYAML(n *yaml.Node) error {
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return err
	}
	name, ok := m["name"].(string)
	if !ok || name == "" {
		return fmt.Errorf("line %d: a runner needs a name", n.Line)
	}
	state, _ := m["state"].(string)
	*it = RunnerHealthItem{Name: name, State: state}
	return nil
}

// names are the runners to check: Name and the present items of Runners;
// nil means every runner of config.toml.
func (r *RunnerHealth) names() []string {
	var out []string
	if r.Name != "" {
		out = append(out, r.Name)
	}
	for _, it := range r.Runners {
		if it.State != "absent" && !slices.Contains(out, it.Name) {
			out = append(out, it.Name)
		}
	}
	return out
}

// Prepare implements Preparer: the HTTP client for GitLab.
func (r *RunnerHealth) Prepare(c Controller) error {
	r.client = c.HTTPClient
	return nil
}

// Check implements Checker.
func (r *RunnerHealth) Check(ctx context.Context, h Host, o CheckOptions) Health {
	names := r.names()
	switch {
	case r.State == "absent" && r.Name != "":
		return Health{Status: NotChecked, Reason: "runner " + r.Name + " is decommissioned (state: absent)"}
	case r.State == "absent", len(r.Runners) > 0 && len(names) == 0:
		return Health{Status: NotChecked, Reason: "the runners of " + r.ConfigFile + " are decommissioned (state: absent)"}
	}
	settle := time.Duration(r.Settle) * time.Second
	switch {
	case r.Settle < 0 || !o.AfterChange:
		settle = 0
	case r.Settle == 0:
		settle = defaultHealthSettle * time.Second
	}
	every := r.retryEvery
	if every == 0 {
		every = time.Second
	}
	deadline := time.Now().Add(settle)
	for {
		hl, transient := r.checkOnce(ctx, h)
		if hl.Status == Healthy || !transient || time.Now().Add(every).After(deadline) {
			return hl
		}
		select {
		case <-ctx.Done():
			return hl
		case <-time.After(every):
		}
	}
}

// runnerConfig is the part of config.toml the check reads
// (https://docs.gitlab.com/runner/configuration/advanced-configuration/).
type runnerConfig struct {
	ListenAddress string         `toml:"listen_address"`
	Runners       []configRunner `toml:"runners"`
}

// configRunner is a [[runners]] entry as the check reads it.
type configRunner struct {
	Name   string `toml:"name"`
	URL    string `toml:"url"`
	Token  string `toml:"token"`
	Docker struct {
		Host        string `toml:"host"`
		TLSVerify   bool   `toml:"tls_verify"`
		TLSCertPath string `toml:"tls_cert_path"`
	} `toml:"docker"`
}

// healthRun is one try of the check, with what it has found so far.
type healthRun struct {
	r       *RunnerHealth
	h       Host
	docker  DockerEngine
	checked []string
}

func (hr *healthRun) fail(p HealthProblem, format string, args ...any) Health {
	return Health{Status: Unhealthy, Problem: p, Reason: fmt.Sprintf(format, args...), Checked: hr.checked}
}

func (hr *healthRun) unknown(p HealthProblem, format string, args ...any) Health {
	return Health{Status: HealthUnknown, Problem: p, Reason: fmt.Sprintf(format, args...), Checked: hr.checked}
}

// checkOnce makes every check once; transient says the fault may be a
// daemon still starting.
func (r *RunnerHealth) checkOnce(ctx context.Context, h Host) (Health, bool) {
	hr := &healthRun{r: r, h: h}
	// The runner container's inspect is also the proof that dockerd
	// answers (one request fewer than a _ping).
	d, err := Docker(ctx, h)
	var ctr client.ContainerInspectResult
	if err == nil {
		ctr, err = d.ContainerInspect(ctx, r.Container, client.ContainerInspectOptions{})
	}
	runnerMissing := err != nil && DockerNotFound(err)
	if err != nil && !runnerMissing {
		return hr.fail(ProblemDockerDown, "the host's docker daemon does not answer: %v", err), DockerUnreachable(err)
	}
	hr.docker = d
	hr.checked = append(hr.checked, "dockerd answers")

	res, err := RunProbes(ctx, h, ReadProbe(r.ConfigFile), ReadProbe(systemIDPath(r.ConfigFile)))
	if err != nil || len(res) != 2 || res[0].Err != nil {
		if err == nil && len(res) > 0 {
			err = res[0].Err
		}
		return hr.fail(ProblemRunnerConfig, "cannot read %s: %v", r.ConfigFile, err), false
	}
	if !res[0].Exists {
		return hr.fail(ProblemRunnerConfig, "%s does not exist: the runner is not registered", r.ConfigFile), false
	}
	var cfg runnerConfig
	if _, err := toml.Decode(string(res[0].File.Content), &cfg); err != nil {
		return hr.fail(ProblemRunnerConfig, "%s is not valid TOML: %v", r.ConfigFile, err), false
	}
	runners := cfg.Runners
	if names := r.names(); names != nil {
		runners = nil
		for _, name := range names {
			i := slices.IndexFunc(cfg.Runners, func(rn configRunner) bool { return rn.Name == name })
			if i < 0 {
				return hr.fail(ProblemRunnerConfig, "%s has no runner named %q", r.ConfigFile, name), false
			}
			runners = append(runners, cfg.Runners[i])
		}
	} else if len(runners) == 0 {
		return hr.fail(ProblemRunnerConfig, "%s has no runners: none is registered", r.ConfigFile), false
	}
	systemID := ""
	if res[1].Exists {
		systemID, _, _ = parseSystemID(systemIDPath(r.ConfigFile), res[1].File.Content)
	}

	if runnerMissing {
		return hr.fail(ProblemRunnerNotRunning, "the runner container %s does not exist", r.Container), false
	}
	c := ctr.Container
	if c.State == nil || !c.State.Running || c.State.Restarting || c.State.Paused {
		return hr.fail(ProblemRunnerNotRunning, "the runner container %s is %s", r.Container, describeState(c.State)), c.State != nil && c.State.Restarting
	}
	hr.checked = append(hr.checked, "runner container "+r.Container+" runs")

	// Each daemon the runners use, once.
	seen := map[string]bool{}
	for _, rn := range runners {
		dockerHost := rn.Docker.Host
		from := r.ConfigFile + " [runners.docker] host"
		if len(runners) > 1 {
			from = fmt.Sprintf("%s [runners.docker] host of runner %s", r.ConfigFile, rn.Name)
		}
		if dockerHost == "" && c.Config != nil {
			for _, e := range c.Config.Env {
				if v, ok := strings.CutPrefix(e, "DOCKER_HOST="); ok {
					dockerHost, from = v, "the runner container's DOCKER_HOST (config.toml sets no host)"
				}
			}
		}
		key := fmt.Sprintf("%s\x00%v\x00%s", dockerHost, rn.Docker.TLSVerify, rn.Docker.TLSCertPath)
		if seen[key] {
			continue
		}
		seen[key] = true
		if h, transient := hr.dind(ctx, c, dockerHost, from, rn.Docker.TLSVerify, rn.Docker.TLSCertPath); h.Status != Healthy {
			return h, transient
		}
	}
	if cfg.ListenAddress != "" {
		if h, transient := hr.metrics(ctx, c, cfg.ListenAddress); h.Status != Healthy {
			return h, transient
		}
	}
	out := Health{Status: Healthy}
	for _, rn := range runners {
		who := "the runner's"
		if len(runners) > 1 {
			who = "runner " + rn.Name + "'s"
		}
		if w := hr.token(ctx, rn.Name, who, rn.URL, rn.Token, systemID); w != nil {
			if w.Status != Healthy {
				return *w, false
			}
			out.Warnings = append(out.Warnings, w.Warnings...)
		}
	}
	out.Checked = hr.checked
	return out, false
}

// describeState words a container's state: "exited (code 1)", "restarting".
func describeState(s *container.State) string {
	switch {
	case s == nil:
		return "in an unknown state"
	case s.Restarting:
		return fmt.Sprintf("restarting (last exit code %d)", s.ExitCode)
	case s.Paused:
		return "paused"
	case s.Running:
		return "running"
	}
	msg := fmt.Sprintf("%s (exit code %d)", s.Status, s.ExitCode)
	if s.Error != "" {
		msg += ": " + s.Error
	}
	return msg
}

// token verifies the token of runner name with GitLab; nil when there is
// no URL or token to check. who is "the runner's" or "runner NAME's".
func (hr *healthRun) token(ctx context.Context, name, who, gitlabURL, token, systemID string) *Health {
	if gitlabURL == "" || token == "" {
		return nil
	}
	if u, err := url.Parse(gitlabURL); err != nil || u.Host == "" {
		h := hr.fail(ProblemRunnerConfig, "%s: runner %s has url %q, not a GitLab URL", hr.r.ConfigFile, name, gitlabURL)
		return &h
	}
	_, err := newGitLabClient(gitlabURL, hr.r.client).verify(asCheck(ctx), token, systemID)
	switch {
	case err == nil:
		hr.checked = append(hr.checked, "GitLab accepts "+who+" token")
		return &Health{Status: Healthy}
	case apiStatus(err) == http.StatusForbidden:
		h := hr.fail(ProblemTokenInvalid, "GitLab (%s) refuses %s token in %s (403 to POST /api/v4/runners/verify): the runner was deleted in GitLab or its token reset; re-run apply with runner_replace_invalid_token=true", gitlabURL, who, hr.r.ConfigFile)
		return &h
	default:
		return &Health{Status: Healthy, Warnings: []string{fmt.Sprintf("%s token was not checked: %v (the runner keeps working; GitLab is asked again on the next run)", who, err)}}
	}
}
