package tasks

// The read-only GitLab calls of the gitlab_runner task's plan, worded for
// the task: does the GitLab URL answer, what may the access token do, and
// may a replaced runner be deleted.

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// checkAccessToken checks, read-only, that the access token can create the
// runner: GitLab knows it, it is active and not expired, and it has the
// create_runner (or api) scope that POST /api/v4/user/runners needs. It
// returns what the token is, and whether GitLab said.
func (g *GitLabRunner) checkAccessToken(ctx context.Context) (accessTokenInfo, bool, error) {
	info, ok, err := g.gitlab().accessTokenSelf(ctx, g.token)
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

// planChecks is what a registration's plan asks GitLab, read-only, before
// it predicts the registration: GitLab answers at URL, and an access token
// is known, active and may create runners. It returns what the access
// token may do (the zero value when there is none, or GitLab cannot say).
// need says what is planned, for the errors.
func (g *GitLabRunner) planChecks(ctx context.Context, need string) (accessTokenInfo, error) {
	if err := g.gitlab().checkAnswers(ctx); err != nil {
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

// replacedRunnerUse says whether the runner a replacement would delete may
// be deleted: only when GitLab lists no manager of it but this host's
// (systemID), since another host may use it with a newer token (one reset
// in GitLab and given to that host). It returns "" when it may, else why
// not, for the plan's warning.
func (g *GitLabRunner) replacedRunnerUse(ctx context.Context, id int64, systemID string) string {
	managers, err := g.gitlab().runnerManagers(ctx, g.token, id)
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
