package tasks

// The GitLab REST API client of the gitlab_runner task and the runner
// health check (https://docs.gitlab.com/api/runners/). It makes one HTTP
// request per call, never retries, and knows nothing of config.toml: its
// callers word what a failure means for them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// gitlabClient calls one GitLab instance's API. Every error it returns is
// free of the tokens the call carried and of secrets.
type gitlabClient struct {
	// url is the instance's URL as the user gave it (for messages); base is
	// the same without a trailing slash (for requests).
	url, base string
	hc        *http.Client
	// secrets are removed from every error, beside each call's own tokens.
	secrets []string
}

// newGitLabClient returns a client of the GitLab at url; a nil hc is a
// client with a 30 s timeout.
func newGitLabClient(url string, hc *http.Client, secrets ...string) *gitlabClient {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &gitlabClient{url: url, base: strings.TrimRight(url, "/"), hc: hc, secrets: secrets}
}

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

// apiStatus returns err's HTTP status when it is a *GitLabAPIError, else 0.
func apiStatus(err error) int {
	var apiErr *GitLabAPIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

// explainAPIError sets the summary and hint of err when it is a
// *GitLabAPIError with the status given, and returns err.
func explainAPIError(err error, status int, summary, hint string) error {
	var apiErr *GitLabAPIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == status {
		apiErr.Summary, apiErr.Hint = summary, hint
	}
	return err
}

// GitLabUnreachableError is a GitLab that did not answer an API call at all
// (connection refused, DNS, timeout, TLS) or answered with a server error
// (5xx): nothing says whether the call would succeed later. The runner of
// a host already registered keeps working (it retries on its own), so plan
// turns this into a warning there; a registration needs GitLab, so there
// it fails the host.
type GitLabUnreachableError struct {
	URL string
	Err error
}

func (e *GitLabUnreachableError) Error() string {
	return fmt.Sprintf("GitLab at %s does not answer: %v", e.URL, e.Err)
}

func (e *GitLabUnreachableError) Unwrap() error { return e.Err }

// unreachable wraps err as a *GitLabUnreachableError when it is one: a
// transport error (not a *GitLabAPIError) or a 5xx answer.
func (c *gitlabClient) unreachable(err error) error {
	if err == nil {
		return nil
	}
	if s := apiStatus(err); s != 0 && s < 500 {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var already *GitLabUnreachableError
	if errors.As(err, &already) {
		return err
	}
	return &GitLabUnreachableError{URL: c.base, Err: err}
}

// runnerTokenResponse is the answer of the calls that create or verify a
// runner: {id, token, token_expires_at}.
type runnerTokenResponse struct {
	ID             int64   `json:"id"`
	Token          string  `json:"token"`
	TokenExpiresAt *string `json:"token_expires_at"`
}

// expiresAt is token_expires_at as gitlab-runner writes it: the zero time
// when the token does not expire.
func (r runnerTokenResponse) expiresAt() time.Time {
	if r.TokenExpiresAt != nil {
		if t, err := time.Parse(time.RFC3339, *r.TokenExpiresAt); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// GitLabRunnerServerSettings are the settings GitLab keeps with a runner,
// with the names of the API calls that create one (POST
// /api/v4/user/runners, POST /api/v4/runners), the only calls that take
// them: the gitlab_runner task sends them when dindops creates the runner
// (access token) or registers it (registration token). With a glrt- token
// they are set in GitLab's UI instead, and setting them is an error.
// GitLab keeps them: changing them later is done in GitLab. Unset ones are
// not sent.
type GitLabRunnerServerSettings struct {
	// TagList are the runner's tags: it takes jobs with these tags.
	TagList []string `yaml:"tag_list" json:"tag_list,omitempty"`
	// RunUntagged lets it take jobs without tags.
	RunUntagged *bool `yaml:"run_untagged" json:"run_untagged,omitempty"`
	// Locked keeps a project runner to its project.
	Locked *bool `yaml:"locked" json:"locked,omitempty"`
	// AccessLevel is not_protected or ref_protected (jobs of protected
	// branches and tags only).
	AccessLevel string `yaml:"access_level" json:"access_level,omitempty"`
	// MaximumTimeout is the longest a job may run, in seconds.
	MaximumTimeout int `yaml:"maximum_timeout" json:"maximum_timeout,omitempty"`
	// Paused creates the runner paused: it takes no job.
	Paused *bool `yaml:"paused" json:"paused,omitempty"`
}

// names lists the settings that are set, with GitLab's names.
func (s GitLabRunnerServerSettings) names() []string {
	var set []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"tag_list", len(s.TagList) > 0}, {"run_untagged", s.RunUntagged != nil}, {"locked", s.Locked != nil},
		{"access_level", s.AccessLevel != ""}, {"maximum_timeout", s.MaximumTimeout != 0}, {"paused", s.Paused != nil}} {
		if f.set {
			set = append(set, f.name)
		}
	}
	return set
}

// registerRequest is POST /api/v4/runners's body.
type registerRequest struct {
	Token       string `json:"token"`
	Description string `json:"description"`
	GitLabRunnerServerSettings
}

// register creates a runner with a legacy registration token: POST
// /api/v4/runners (https://docs.gitlab.com/api/runners/#create-a-runner).
// 201 gives {id, token, token_expires_at}; 403 is an invalid token and 410
// means registration tokens are disallowed (both a *GitLabAPIError).
func (c *gitlabClient) register(ctx context.Context, req registerRequest) (runnerTokenResponse, error) {
	var out runnerTokenResponse
	err := c.call(ctx, http.MethodPost, "/api/v4/runners", req, nil, http.StatusCreated, &out, req.Token)
	if err == nil && out.Token == "" {
		err = fmt.Errorf("POST %s/api/v4/runners answered without a runner token", c.base)
	}
	return out, err
}

// createRunnerRequest is POST /api/v4/user/runners's body.
type createRunnerRequest struct {
	RunnerType  string `json:"runner_type"`
	GroupID     int    `json:"group_id,omitempty"`
	ProjectID   int    `json:"project_id,omitempty"`
	Description string `json:"description"`
	GitLabRunnerServerSettings
}

// createRunner creates a runner with an access token: POST
// /api/v4/user/runners (https://docs.gitlab.com/api/users/#create-a-runner-linked-to-a-user)
// with the token in the PRIVATE-TOKEN header. 201 gives {id, token
// (glrt-), token_expires_at}; 401 is a token GitLab does not know, 403 one
// without the create_runner scope or whose user may not create such a
// runner (both a *GitLabAPIError).
func (c *gitlabClient) createRunner(ctx context.Context, accessToken string, req createRunnerRequest) (runnerTokenResponse, error) {
	var out runnerTokenResponse
	err := c.call(ctx, http.MethodPost, "/api/v4/user/runners", req, privateToken(accessToken), http.StatusCreated, &out, accessToken)
	if err == nil && !strings.HasPrefix(out.Token, runnerAuthPrefix) {
		err = fmt.Errorf("POST %s/api/v4/user/runners answered without a glrt- runner token", c.base)
	}
	return out, err
}

// verify checks a runner token: POST /api/v4/runners/verify
// (https://docs.gitlab.com/api/runners/#verify-authentication-for-a-registered-runner)
// with the system_id gitlab-runner uses (required for glrt- tokens; an
// empty one is not sent). 200 gives {id, token, token_expires_at}, the
// token being the one sent when GitLab gives none; 403 (a
// *GitLabAPIError) means GitLab does not accept the token.
func (c *gitlabClient) verify(ctx context.Context, token, systemID string) (runnerTokenResponse, error) {
	var out runnerTokenResponse
	body := map[string]any{"token": token}
	if systemID != "" {
		body["system_id"] = systemID
	}
	if err := c.call(ctx, http.MethodPost, "/api/v4/runners/verify", body, nil, http.StatusOK, &out, token); err != nil {
		return out, err
	}
	if out.Token == "" {
		out.Token = token
	}
	return out, nil
}

// deleteRunner deletes a runner by its authentication token: DELETE
// /api/v4/runners (https://docs.gitlab.com/api/runners/#delete-a-runner-by-authentication-token), 204.
func (c *gitlabClient) deleteRunner(ctx context.Context, token string) error {
	return c.call(ctx, http.MethodDelete, "/api/v4/runners", map[string]any{"token": token}, nil, http.StatusNoContent, nil, token)
}

// deleteRunnerManager deletes one runner manager, the runner's record of
// one host: DELETE /api/v4/runners/managers with the runner's token and the
// host's system_id (https://docs.gitlab.com/api/runners/#delete-a-registered-runner-manager), 204.
// The runner stays, with its other managers.
func (c *gitlabClient) deleteRunnerManager(ctx context.Context, token, systemID string) error {
	return c.call(ctx, http.MethodDelete, "/api/v4/runners/managers", map[string]any{"token": token, "system_id": systemID}, nil, http.StatusNoContent, nil, token)
}

// deleteRunnerByID deletes a runner by its id, with an access token:
// DELETE /api/v4/runners/:id (https://docs.gitlab.com/api/runners/#delete-a-runner).
// 204 deleted; 404 means it is gone already, which is no error. 401 and 403
// (the token's user may not manage it) are *GitLabAPIError.
func (c *gitlabClient) deleteRunnerByID(ctx context.Context, accessToken string, id int64) error {
	err := c.call(ctx, http.MethodDelete, fmt.Sprintf("/api/v4/runners/%d", id), nil, privateToken(accessToken), http.StatusNoContent, nil, accessToken)
	if apiStatus(err) == http.StatusNotFound {
		return nil
	}
	return c.unreachable(err)
}

// checkAnswers asks GitLab for its version: GET /api/v4/version
// (https://docs.gitlab.com/api/version/), which needs authentication, so a
// 401 to a call without a token proves that a GitLab API answers at the
// URL. It is read-only. Errors: *GitLabUnreachableError for no answer or a
// 5xx; a *GitLabAPIError for any other status (404: the URL is not a
// GitLab instance's root).
func (c *gitlabClient) checkAnswers(ctx context.Context) error {
	// No token is sent: /version wants a scope (read_api, api) that a
	// create_runner access token need not have, and a runner or
	// registration token is no API token at all.
	err := c.call(asCheck(ctx), http.MethodGet, "/api/v4/version", nil, nil, http.StatusOK, nil)
	switch s := apiStatus(err); {
	case err == nil, s == http.StatusUnauthorized:
		return nil
	case s != 0 && s < 500:
		return explainAPIError(err, s, fmt.Sprintf("%s does not answer as a GitLab instance", c.url),
			"url must be the GitLab instance's root URL, such as https://gitlab.example.com (the same as the runner's [[runners]] url)")
	}
	return c.unreachable(err)
}

// accessTokenInfo is GET /api/v4/personal_access_tokens/self's answer
// (https://docs.gitlab.com/api/personal_access_tokens/#get-details-on-a-personal-access-token):
// group and project access tokens are personal access tokens of their bot
// user, and answer the same.
type accessTokenInfo struct {
	ID        int64    `json:"id"`
	Name      string   `json:"name"`
	Revoked   bool     `json:"revoked"`
	Active    bool     `json:"active"`
	Scopes    []string `json:"scopes"`
	ExpiresAt *string  `json:"expires_at"`
}

// has reports whether the token has one of scopes.
func (t accessTokenInfo) has(scopes ...string) bool {
	for _, s := range scopes {
		if slices.Contains(t.Scopes, s) {
			return true
		}
	}
	return false
}

// canDeleteRunners reports whether the token's scopes allow DELETE
// /api/v4/runners/:id (https://docs.gitlab.com/api/runners/#delete-a-runner):
// api, or manage_runner (GitLab 17.1). GitLab still checks that its user
// may manage that runner.
func (t accessTokenInfo) canDeleteRunners() bool { return t.has("api", "manage_runner") }

// accessTokenSelf reads what an access token may do: GET
// /api/v4/personal_access_tokens/self with it in PRIVATE-TOKEN, read-only.
// ok is false when this GitLab cannot say (404: before GitLab 15.5; 403),
// which is no error. Errors: a *GitLabAPIError for 401 (a token GitLab
// does not know), *GitLabUnreachableError.
func (c *gitlabClient) accessTokenSelf(ctx context.Context, accessToken string) (info accessTokenInfo, ok bool, err error) {
	err = c.call(asCheck(ctx), http.MethodGet, "/api/v4/personal_access_tokens/self", nil, privateToken(accessToken), http.StatusOK, &info, accessToken)
	switch s := apiStatus(err); {
	case err == nil:
		return info, true, nil
	case s == http.StatusUnauthorized:
		return info, false, explainAPIError(err, s, fmt.Sprintf("access token rejected by %s", c.url),
			fmt.Sprintf("it is unknown, expired or revoked; make a new one (%s)", accessTokenWhere))
	case s != 0 && s < 500:
		return info, false, nil
	}
	return info, false, c.unreachable(err)
}

// runnerManager is one entry of GET /api/v4/runners/:id/managers: a host
// (gitlab-runner process) that verified or used the runner's token.
type runnerManager struct {
	SystemID    string  `json:"system_id"`
	ContactedAt *string `json:"contacted_at"`
}

// runnerManagers lists a runner's managers with an access token, read
// only: GET /api/v4/runners/:id/managers
// (https://docs.gitlab.com/api/runners/#list-all-runners-managers). Errors:
// *GitLabAPIError (404: no such runner, or a GitLab without the endpoint),
// *GitLabUnreachableError.
func (c *gitlabClient) runnerManagers(ctx context.Context, accessToken string, id int64) ([]runnerManager, error) {
	var out []runnerManager
	err := c.call(asCheck(ctx), http.MethodGet, fmt.Sprintf("/api/v4/runners/%d/managers", id), nil, privateToken(accessToken), http.StatusOK, &out, accessToken)
	return out, c.unreachable(err)
}

func privateToken(t string) map[string]string { return map[string]string{"PRIVATE-TOKEN": t} }

// call sends body as JSON (none when nil), with the headers hdr, to the
// GitLab API and decodes the answer into out. Any status but want becomes a
// *GitLabAPIError; no call is retried. The secrets (the tokens the call
// carries, and the client's) are removed from every error.
func (c *gitlabClient) call(ctx context.Context, method, endpoint string, body any, hdr map[string]string, want int, out any, secrets ...string) error {
	secrets = append(secrets, c.secrets...)
	scrub := func(err error) error {
		for _, s := range secrets {
			err = scrubError(err, s)
		}
		return err
	}
	u := c.base + endpoint
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return scrub(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "dindops")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	memo := memoOf(c.hc)
	if err := memo.before(ctx, req.URL.Host); err != nil {
		return scrub(err)
	}
	resp, err := c.hc.Do(req)
	memo.after(ctx, req.URL.Host, err)
	if err != nil {
		return scrub(fmt.Errorf("%s %s: %w", method, u, err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		msg := apiMessage(raw)
		for _, s := range secrets {
			if s != "" {
				msg = strings.ReplaceAll(msg, s, SensitiveValue)
			}
		}
		return &GitLabAPIError{Method: method, URL: u, StatusCode: resp.StatusCode, Message: msg}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: reading the answer: %v", method, u, err)
		}
	}
	return nil
}

// apiMessage takes GitLab's "message" or "error" from an error answer.
func apiMessage(raw []byte) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		for _, k := range []string{"message", "error"} {
			switch v := m[k].(type) {
			case string:
				return v
			case nil:
			default:
				b, _ := json.Marshal(v)
				return string(b)
			}
		}
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

type scrubbedError struct{ msg string }

func (e *scrubbedError) Error() string { return e.msg }

// scrubError removes secret from err's message; an error that did not
// contain it is returned as it was (keeping its chain).
func scrubError(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &scrubbedError{msg: strings.ReplaceAll(err.Error(), secret, SensitiveValue)}
}

// ---- .runner_system_id ----

var systemIDRE = regexp.MustCompile(`^[rs]_[0-9a-zA-Z]{12}$`)
