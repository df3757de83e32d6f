package tasks

// The GitLab REST API calls of the gitlab_runner task (https://docs.gitlab.com/api/runners/).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

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

// How to move off registration tokens; said whenever one is refused.
const registrationTokenHint = "registration tokens are deprecated (GitLab 15.6) and disabled by default since GitLab 17.0; " +
	"create the runner in GitLab instead (Settings > CI/CD > Runners > New project/group/instance runner, or POST /api/v4/user/runners) " +
	"and give dindops its glrt- runner authentication token through token_env or token_file"

// register creates the runner with a legacy registration token:
// POST /api/v4/runners (https://docs.gitlab.com/api/runners/#create-a-runner).
// 201 gives {id, token, token_expires_at}; 403 is an invalid token and 410
// means registration tokens are disallowed. It is tried once.
func (g *GitLabRunner) register(ctx context.Context) (runnerTokenResponse, error) {
	body := map[string]any{"token": g.token, "description": g.Name}
	if len(g.TagList) > 0 {
		body["tag_list"] = g.TagList
	}
	if g.RunUntagged != nil {
		body["run_untagged"] = *g.RunUntagged
	}
	if g.Locked != nil {
		body["locked"] = *g.Locked
	}
	if g.AccessLevel != "" {
		body["access_level"] = g.AccessLevel
	}
	if g.MaximumTimeout > 0 {
		body["maximum_timeout"] = g.MaximumTimeout
	}
	if g.Paused != nil {
		body["paused"] = *g.Paused
	}
	var out runnerTokenResponse
	err := g.call(ctx, http.MethodPost, "/api/v4/runners", body, nil, http.StatusCreated, &out, g.token)
	var apiErr *GitLabAPIError
	if errors.As(err, &apiErr) {
		switch apiErr.StatusCode {
		case http.StatusForbidden:
			apiErr.Summary = fmt.Sprintf("registration token rejected by %s", g.URL)
			apiErr.Hint = fmt.Sprintf("nothing was written to %s; %s", g.configFile(), registrationTokenHint)
		case http.StatusGone:
			apiErr.Summary = fmt.Sprintf("%s does not allow registering runners with registration tokens", g.URL)
			apiErr.Hint = fmt.Sprintf("nothing was written to %s; %s", g.configFile(), registrationTokenHint)
		}
		return out, apiErr
	}
	if err == nil && out.Token == "" {
		err = fmt.Errorf("POST %s/api/v4/runners answered without a runner token", strings.TrimRight(g.URL, "/"))
	}
	return out, err
}

// createRunner creates the runner with an access token: POST
// /api/v4/user/runners (https://docs.gitlab.com/api/users/#create-a-runner-linked-to-a-user)
// with the token in the PRIVATE-TOKEN header, runner_type, group_id or
// project_id, description and the server-side settings. 201 gives {id,
// token (glrt-), token_expires_at}; 401 is a token GitLab does not know,
// 403 one without the create_runner scope or whose user may not create
// such a runner. It is tried once.
func (g *GitLabRunner) createRunner(ctx context.Context) (runnerTokenResponse, error) {
	body := map[string]any{"runner_type": g.runnerType(), "description": g.description()}
	switch {
	case g.GroupID != 0:
		body["group_id"] = g.GroupID
	case g.ProjectID != 0:
		body["project_id"] = g.ProjectID
	}
	if len(g.TagList) > 0 {
		body["tag_list"] = g.TagList
	}
	if g.RunUntagged != nil {
		body["run_untagged"] = *g.RunUntagged
	}
	if g.Locked != nil {
		body["locked"] = *g.Locked
	}
	if g.AccessLevel != "" {
		body["access_level"] = g.AccessLevel
	}
	if g.MaximumTimeout > 0 {
		body["maximum_timeout"] = g.MaximumTimeout
	}
	if g.Paused != nil {
		body["paused"] = *g.Paused
	}
	var out runnerTokenResponse
	err := g.call(ctx, http.MethodPost, "/api/v4/user/runners", body, map[string]string{"PRIVATE-TOKEN": g.token}, http.StatusCreated, &out, g.token)
	var apiErr *GitLabAPIError
	if errors.As(err, &apiErr) {
		switch apiErr.StatusCode {
		case http.StatusUnauthorized:
			apiErr.Summary = fmt.Sprintf("access token rejected by %s", g.URL)
			apiErr.Hint = fmt.Sprintf("it is unknown, expired or revoked; make a new one with the create_runner scope (%s); nothing was written to %s", accessTokenWhere, g.configFile())
		case http.StatusForbidden:
			apiErr.Summary = fmt.Sprintf("%s does not let this access token create a %s runner", g.URL, g.runnerType())
			apiErr.Hint = fmt.Sprintf("the token needs the create_runner scope, and its user must be an administrator (instance_type), a group owner (group_type) or a project maintainer (project_type); nothing was written to %s", g.configFile())
		}
		return out, apiErr
	}
	if err == nil && !strings.HasPrefix(out.Token, runnerAuthPrefix) {
		err = fmt.Errorf("POST %s/api/v4/user/runners answered without a glrt- runner token", strings.TrimRight(g.URL, "/"))
	}
	return out, err
}

// verify checks a runner token: POST /api/v4/runners/verify
// (https://docs.gitlab.com/api/runners/#verify-authentication-for-a-registered-runner)
// with the system_id gitlab-runner uses (required for glrt- tokens; an
// empty one is not sent). 200 gives {id, token, token_expires_at}; 403
// means GitLab does not accept the token.
func (g *GitLabRunner) verify(ctx context.Context, token, systemID string) (runnerTokenResponse, error) {
	var out runnerTokenResponse
	body := map[string]any{"token": token}
	if systemID != "" {
		body["system_id"] = systemID
	}
	err := g.call(ctx, http.MethodPost, "/api/v4/runners/verify", body, nil, http.StatusOK, &out, token)
	var apiErr *GitLabAPIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusForbidden {
		apiErr.Summary = fmt.Sprintf("runner authentication token rejected by %s", g.URL)
		apiErr.Hint = fmt.Sprintf("check it is a current glrt- token for this GitLab (a runner deleted in GitLab, or whose token was reset, gets 403); nothing was written to %s", g.configFile())
		return out, apiErr
	}
	if err != nil {
		return out, err
	}
	if out.Token == "" {
		out.Token = token
	}
	return out, nil
}

// deleteRunner deletes a runner by its authentication token: DELETE
// /api/v4/runners (https://docs.gitlab.com/api/runners/#delete-a-runner-by-authentication-token), 204.
func (g *GitLabRunner) deleteRunner(ctx context.Context, token string) error {
	return g.call(ctx, http.MethodDelete, "/api/v4/runners", map[string]any{"token": token}, nil, http.StatusNoContent, nil, token)
}

// deleteRunnerManager deletes one runner manager, the runner's record of
// one host: DELETE /api/v4/runners/managers with the runner's token and the
// host's system_id (https://docs.gitlab.com/api/runners/#delete-a-registered-runner-manager), 204.
// The runner stays, with its other managers.
func (g *GitLabRunner) deleteRunnerManager(ctx context.Context, token, systemID string) error {
	return g.call(ctx, http.MethodDelete, "/api/v4/runners/managers", map[string]any{"token": token, "system_id": systemID}, nil, http.StatusNoContent, nil, token)
}

// call sends body as JSON (none when nil), with the headers hdr, to the GitLab API and
// decodes the answer into out. Any status but want becomes a
// *GitLabAPIError; no call is retried. The secrets (the tokens the call
// carries, and the task's own) are removed from every error.
func (g *GitLabRunner) call(ctx context.Context, method, endpoint string, body any, hdr map[string]string, want int, out any, secrets ...string) error {
	secrets = append(secrets, g.token)
	u := strings.TrimRight(g.URL, "/") + endpoint
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
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "dindops")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	hc := g.httpClient()
	memo := memoOf(hc)
	if err := memo.before(ctx, req.URL.Host); err != nil {
		for _, s := range secrets {
			err = scrubError(err, s)
		}
		return err
	}
	resp, err := hc.Do(req)
	memo.after(ctx, req.URL.Host, err)
	if err != nil {
		err = fmt.Errorf("%s %s: %w", method, u, err)
		for _, s := range secrets {
			err = scrubError(err, s)
		}
		return err
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
