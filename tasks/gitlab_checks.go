package tasks

// The read-only GitLab calls of the gitlab_runner task's plan: does the
// GitLab URL answer, what may the access token do, and the deletion of a
// replaced runner by its id.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

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
func (g *GitLabRunner) unreachable(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *GitLabAPIError
	if errors.As(err, &apiErr) && apiErr.StatusCode < 500 {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var already *GitLabUnreachableError
	if errors.As(err, &already) {
		return err
	}
	return &GitLabUnreachableError{URL: strings.TrimRight(g.URL, "/"), Err: err}
}

// checkGitLabAnswers asks GitLab for its version: GET /api/v4/version
// (https://docs.gitlab.com/api/version/), which needs authentication, so a
// 401 to a call without a token proves that a GitLab API answers at URL. It is read-only. Errors: *GitLabUnreachableError for
// no answer or a 5xx; a *GitLabAPIError for any other status (404: URL is
// not a GitLab instance's root).
func (g *GitLabRunner) checkGitLabAnswers(ctx context.Context) error {
	// No token is sent: /version wants a scope (read_api, api) that a
	// create_runner access token need not have, and a runner or
	// registration token is no API token at all.
	err := g.call(asCheck(ctx), http.MethodGet, "/api/v4/version", nil, nil, http.StatusOK, nil)
	var apiErr *GitLabAPIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized:
		return nil
	case errors.As(err, &apiErr) && apiErr.StatusCode < 500:
		apiErr.Summary = fmt.Sprintf("%s does not answer as a GitLab instance", g.URL)
		apiErr.Hint = "url must be the GitLab instance's root URL, such as https://gitlab.example.com (the same as the runner's [[runners]] url)"
		return apiErr
	}
	return g.unreachable(err)
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

// accessTokenSelf reads what the access token may do: GET
// /api/v4/personal_access_tokens/self with it in PRIVATE-TOKEN, read-only.
// ok is false when this GitLab cannot say (404: before GitLab 15.5; 403),
// which is no error. Errors: a *GitLabAPIError for 401 (a token GitLab
// does not know), *GitLabUnreachableError.
func (g *GitLabRunner) accessTokenSelf(ctx context.Context) (info accessTokenInfo, ok bool, err error) {
	err = g.call(asCheck(ctx), http.MethodGet, "/api/v4/personal_access_tokens/self", nil, map[string]string{"PRIVATE-TOKEN": g.token}, http.StatusOK, &info, g.token)
	var apiErr *GitLabAPIError
	switch {
	case err == nil:
		return info, true, nil
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized:
		apiErr.Summary = fmt.Sprintf("access token rejected by %s", g.URL)
		apiErr.Hint = fmt.Sprintf("it is unknown, expired or revoked; make a new one (%s)", accessTokenWhere)
		return info, false, apiErr
	case errors.As(err, &apiErr) && apiErr.StatusCode < 500:
		return info, false, nil
	}
	return info, false, g.unreachable(err)
}

// checkAccessToken checks, read-only, that the access token can create the
// runner: GitLab knows it, it is active and not expired, and it has the
// create_runner (or api) scope that POST /api/v4/user/runners needs. It
// returns what the token is, and whether GitLab said.
func (g *GitLabRunner) checkAccessToken(ctx context.Context) (accessTokenInfo, bool, error) {
	info, ok, err := g.accessTokenSelf(ctx)
	if err != nil || !ok {
		return info, ok, err
	}
	name := "the access token"
	if info.Name != "" {
		name += fmt.Sprintf(" %q", info.Name)
	}
	switch {
	case info.Revoked:
		return info, ok, fmt.Errorf("%s (%s) is revoked in %s: make a new one (%s)", name, g.tokenSource, g.URL, accessTokenWhere)
	case !info.Active:
		return info, ok, fmt.Errorf("%s (%s) is no longer active in %s (expired%s): make a new one (%s)", name, g.tokenSource, g.URL, expiresOn(info), accessTokenWhere)
	case !info.has("create_runner", "api"):
		return info, ok, fmt.Errorf("%s (%s) has the scopes [%s], and creating a runner (POST /api/v4/user/runners) needs create_runner (or api): make one with the create_runner scope (%s)", name, g.tokenSource, strings.Join(info.Scopes, ", "), accessTokenWhere)
	}
	return info, ok, nil
}

func expiresOn(info accessTokenInfo) string {
	if info.ExpiresAt != nil && *info.ExpiresAt != "" {
		return " on " + *info.ExpiresAt
	}
	return ""
}

// deleteRunnerByID deletes a runner by its id, with the access token:
// DELETE /api/v4/runners/:id (https://docs.gitlab.com/api/runners/#delete-a-runner).
// 204 deleted; 404 means it is gone already, which is no error. 401 and 403
// (the token's user may not manage it) are *GitLabAPIError.
func (g *GitLabRunner) deleteRunnerByID(ctx context.Context, id int64) error {
	err := g.call(ctx, http.MethodDelete, fmt.Sprintf("/api/v4/runners/%d", id), nil, map[string]string{"PRIVATE-TOKEN": g.token}, http.StatusNoContent, nil, g.token)
	var apiErr *GitLabAPIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
		return nil
	}
	return g.unreachable(err)
}

// planChecks is what a registration's plan asks GitLab, read-only, before
// it predicts the registration: GitLab answers at URL, and an access token
// is known, active and may create runners. It returns what the access
// token may do (the zero value when there is none, or GitLab cannot say).
// need says what is planned, for the errors.
func (g *GitLabRunner) planChecks(ctx context.Context, need string) (accessTokenInfo, error) {
	if err := g.checkGitLabAnswers(ctx); err != nil {
		return accessTokenInfo{}, fmt.Errorf("%s: %w; apply would fail, so nothing is planned for this runner", need, err)
	}
	if g.kind != accessToken {
		return accessTokenInfo{}, nil
	}
	info, _, err := g.checkAccessToken(ctx)
	if err != nil {
		return accessTokenInfo{}, fmt.Errorf("%s: %w", need, err)
	}
	return info, nil
}

// runnerManager is one entry of GET /api/v4/runners/:id/managers: a host
// (gitlab-runner process) that verified or used the runner's token.
type runnerManager struct {
	SystemID    string  `json:"system_id"`
	ContactedAt *string `json:"contacted_at"`
}

// runnerManagers lists the runner's managers with the access token, read
// only: GET /api/v4/runners/:id/managers
// (https://docs.gitlab.com/api/runners/#list-all-runners-managers). Errors:
// *GitLabAPIError (404: no such runner, or a GitLab without the endpoint),
// *GitLabUnreachableError.
func (g *GitLabRunner) runnerManagers(ctx context.Context, id int64) ([]runnerManager, error) {
	var out []runnerManager
	err := g.call(asCheck(ctx), http.MethodGet, fmt.Sprintf("/api/v4/runners/%d/managers", id), nil, map[string]string{"PRIVATE-TOKEN": g.token}, http.StatusOK, &out, g.token)
	return out, g.unreachable(err)
}

// replacedRunnerUse says whether the runner a replacement would delete may
// be deleted: only when GitLab lists no manager of it but this host's
// (systemID), since another host may use it with a newer token (one reset
// in GitLab and given to that host). It returns "" when it may, else why
// not, for the plan's warning.
func (g *GitLabRunner) replacedRunnerUse(ctx context.Context, id int64, systemID string) string {
	managers, err := g.runnerManagers(ctx, id)
	if err != nil {
		return fmt.Sprintf("dindops could not list its runner managers to make sure no other host uses it (%v), so it is not deleted", err)
	}
	var others []string
	for _, m := range managers {
		if m.SystemID != systemID {
			others = append(others, m.SystemID)
		}
	}
	if len(others) > 0 {
		slices.Sort(others)
		return fmt.Sprintf("GitLab lists other hosts as its managers (system IDs %s), which may use it with a newer token, so it is not deleted", strings.Join(others, ", "))
	}
	return ""
}
