package tasks

// gitlab_runner's plan of a registration, and the GitLab calls of the
// registration worded for the task.

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// How to move off registration tokens; said whenever one is refused.
const registrationTokenHint = "registration tokens are deprecated (GitLab 15.6) and disabled by default since GitLab 17.0; " +
	"create the runner in GitLab instead (Settings > CI/CD > Runners > New project/group/instance runner, or POST /api/v4/user/runners) " +
	"and give dindops its glrt- runner authentication token through token_env or token_file"

// gitlab is the API client of the runner's GitLab, with the task's token
// among the secrets it keeps out of errors.
func (g *GitLabRunner) gitlab() *gitlabClient { return newGitLabClient(g.URL, g.client, g.token) }

// register creates the runner with the legacy registration token (POST
// /api/v4/runners), tried once.
func (g *GitLabRunner) register(ctx context.Context) (runnerTokenResponse, error) {
	reg, err := g.gitlab().register(ctx, registerRequest{Token: g.token, Description: g.Name, GitLabRunnerServerSettings: g.GitLabRunnerServerSettings})
	hint := fmt.Sprintf("nothing was written to %s; %s", g.configFile(), registrationTokenHint)
	err = explainAPIError(err, 403, fmt.Sprintf("registration token rejected by %s", g.URL), hint)
	err = explainAPIError(err, 410, fmt.Sprintf("%s does not allow registering runners with registration tokens", g.URL), hint)
	return reg, err
}

// createRunner creates the runner with the access token (POST
// /api/v4/user/runners), tried once.
func (g *GitLabRunner) createRunner(ctx context.Context) (runnerTokenResponse, error) {
	req := createRunnerRequest{RunnerType: g.runnerType(), Description: g.description(), GitLabRunnerServerSettings: g.GitLabRunnerServerSettings}
	switch {
	case g.GroupID != 0:
		req.GroupID = g.GroupID
	case g.ProjectID != 0:
		req.ProjectID = g.ProjectID
	}
	reg, err := g.gitlab().createRunner(ctx, g.token, req)
	err = explainAPIError(err, 401, fmt.Sprintf("access token rejected by %s", g.URL),
		fmt.Sprintf("it is unknown, expired or revoked; make a new one with the create_runner scope (%s); nothing was written to %s", accessTokenWhere, g.configFile()))
	err = explainAPIError(err, 403, fmt.Sprintf("%s does not let this access token create a %s runner", g.URL, g.runnerType()),
		fmt.Sprintf("the token needs the create_runner scope, and its user must be an administrator (instance_type), a group owner (group_type) or a project maintainer (project_type); nothing was written to %s", g.configFile()))
	return reg, err
}

// verify checks a runner token with GitLab (POST /api/v4/runners/verify);
// a 403 says what it means.
func (g *GitLabRunner) verify(ctx context.Context, token, systemID string) (runnerTokenResponse, error) {
	reg, err := g.gitlab().verify(ctx, token, systemID)
	err = explainAPIError(err, 403, fmt.Sprintf("runner authentication token rejected by %s", g.URL),
		fmt.Sprintf("check it is a current glrt- token for this GitLab (a runner deleted in GitLab, or whose token was reset, gets 403); nothing was written to %s", g.configFile()))
	return reg, err
}

// registerWording is why a runner is registered, in a plan's words: the
// summary's note and what the errors say is planned.
func (g *GitLabRunner) registerWording(why registerReason, path string, entry map[string]any) (note, need string) {
	base := strings.TrimRight(g.URL, "/")
	oldURL, _ := entry["url"].(string)
	switch why {
	case replacesRefused:
		reason := "its token in " + path + " is no longer valid (403 from GitLab): replace_invalid_token is set"
		return " (" + reason + ")", fmt.Sprintf("runner %s: %s: registering it again with %s", g.Name, reason, base)
	case otherGitLab:
		return fmt.Sprintf(" (its [[runners]] entry in %s is registered with %s: its token and url are replaced)", path, oldURL),
			fmt.Sprintf("runner %s's url changed from %s to %s: registering it with %s", g.Name, oldURL, base, base)
	case listedNoToken:
		return fmt.Sprintf(" (its [[runners]] entry in %s has no token)", path), fmt.Sprintf("runner %s has no token in %s: registering it with %s", g.Name, path, base)
	}
	return "", fmt.Sprintf("runner %s is not in %s: registering it with %s", g.Name, path, base)
}

// planRegister plans a registration, for the reason why.
func (g *GitLabRunner) planRegister(ctx context.Context, st *runnerPlan, idx int, payload *gitlabRunnerPayload, why registerReason) ([]Change, error) {
	path, doc := st.path, st.doc
	var warnings []string
	base := strings.TrimRight(g.URL, "/")
	var entry map[string]any
	if idx >= 0 {
		entry = doc.runners()[idx]
	}
	note, need := g.registerWording(why, path, entry)
	summary := fmt.Sprintf("register runner %s with %s", g.Name, base) + note
	// moved: the entry's token is replaced.
	moved := why == replacesRefused || why == otherGitLab
	entryID, _ := entry["id"].(int64)
	if why == otherGitLab {
		regAt := "runner " + g.Name
		if entryID > 0 {
			regAt += fmt.Sprintf(" (id %d)", entryID)
		}
		oldURL, _ := entry["url"].(string)
		warnings = append(warnings, fmt.Sprintf("%s stays registered with %s: dindops does not remove it from that GitLab; delete it there (Settings > CI/CD > Runners, or Admin > CI/CD > Runners) if nothing else uses it", regAt, oldURL))
	}
	if err := g.needToken(need); err != nil {
		return nil, err
	}
	token, err := g.planChecks(ctx, need)
	if err != nil {
		return nil, err
	}

	// GitLab refuses the old token, so dindops cannot delete the old runner
	// with it; one whose token was reset is still listed.
	var deleteField *Field
	if why == replacesRefused && entryID > 0 {
		inUse := ""
		if token.canDeleteRunners() {
			sid, _, err := st.currentSystemID()
			if err != nil {
				return nil, err
			}
			inUse = g.replacedRunnerUse(ctx, entryID, sid)
		}
		if r := decideReplacement(entryID, token.canDeleteRunners(), inUse); r.deleteFirst {
			payload.deleteRunnerID = r.id
			summary += fmt.Sprintf("; the runner it replaces (id %d) is deleted in GitLab first", r.id)
			deleteField = &Field{Name: "replaced_runner", Old: fmt.Sprintf("id %d (its token refused)", r.id),
				New: fmt.Sprintf("deleted first: DELETE %s/api/v4/runners/%d PRIVATE-TOKEN=%s (404: gone already)", base, r.id, SensitiveValue)}
		} else {
			warnings = append(warnings, g.replacementWarning(r.id, inUse))
		}
	}
	warnings = append(warnings, g.otherEntriesWarnings(st, idx)...)

	fields := []Field{{Name: "name", New: g.Name}}
	var request string
	switch g.kind {
	case runnerAuthToken, accessToken:
		sid, sidFields, err := st.planSystemID(payload)
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
			if set := g.GitLabRunnerServerSettings.names(); len(set) > 0 {
				create += " " + strings.Join(set, " ")
			}
			request = create + "; then " + request + " with the token it returns"
			summary = strings.Replace(summary, "register runner", "create runner", 1)
		}
	default:
		request = fmt.Sprintf("POST %s/api/v4/runners token=%s description=%s", base, SensitiveValue, g.Name)
		if set := g.GitLabRunnerServerSettings.names(); len(set) > 0 {
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
	settings, err := g.applySettings(planned, newIdx, payload.globals, payload.networkMTU)
	if err != nil {
		return nil, err
	}
	fields = append(fields, settings...)
	diff, err := maskedDiff(path, doc, planned)
	if err != nil {
		return nil, err
	}
	st.doc = planned
	payload.action = Create
	return []Change{{Action: Create, Resource: "runner", Target: g.Name, Summary: summary,
		Fields: fields, Diff: diff, Warnings: warnings, Payload: payload}}, nil
}

// replacementWarning says why the runner id a replacement registers anew
// is not deleted, and that it may still be listed in GitLab.
func (g *GitLabRunner) replacementWarning(id int64, inUse string) string {
	base := strings.TrimRight(g.URL, "/")
	why := "dindops cannot remove it with a token GitLab refuses"
	switch {
	case inUse != "":
		why = inUse
	case g.kind == accessToken:
		why += fmt.Sprintf(", and the access token (%s) has no api or manage_runner scope to delete it by id", g.tokenSource)
	}
	w := fmt.Sprintf("the runner this replaces (id %d) may still be listed in GitLab if its token was reset rather than the runner deleted: %s; if no host uses it, delete it there (Settings > CI/CD > Runners, or DELETE %s/api/v4/runners/%d with an access token that may manage it)", id, why, base, id)
	if g.kind == runnerAuthToken {
		// The glrt- token given may be that runner's new one.
		w = fmt.Sprintf("unless the glrt- token given is the new token of runner %d itself (its token reset in GitLab), ", id) + w
	}
	return w
}

// otherEntriesWarnings are what a registration tells of config.toml's
// other entries: those for the same GitLab that the task does not manage
// keep running beside this one (a renamed runner leaves its old entry
// behind), and a .runner_system_id beside a config.toml without any entry
// may mean config.toml was lost with the runner's registration in it
// (gitlab-runner leaves the file behind).
func (g *GitLabRunner) otherEntriesWarnings(st *runnerPlan, idx int) []string {
	path, doc := st.path, st.doc
	var others []string
	same := 0 // entries for the same GitLab, the task's own included
	for j, r := range doc.runners() {
		n, _ := r["name"].(string)
		if u, _ := r["url"].(string); j != idx && sameGitLab(u, g.URL) {
			same++
			if !slices.Contains(st.managed, n) {
				others = append(others, n)
			}
		}
	}
	var warnings []string
	switch len(others) {
	case 0:
	case 1:
		warnings = append(warnings, fmt.Sprintf("%s also has runner %s for the same GitLab; it keeps running: remove it with state: absent under its name if it was renamed to %s", path, others[0], g.Name))
	default:
		warnings = append(warnings, fmt.Sprintf("%s also has runners %s for the same GitLab; they keep running: remove them with state: absent under their names if one was renamed to %s", path, strings.Join(others, ", "), g.Name))
	}
	if idx < 0 && same == 0 && st.sidExists {
		id := ""
		if sid := strings.TrimSpace(string(st.sidFile.Content)); systemIDRE.MatchString(sid) {
			id = " (system ID " + sid + ")"
		}
		warnings = append(warnings, fmt.Sprintf("%s exists%s: this host had a runner before, but %s has no entry for %s; if it was registered with another token than this one and config.toml was lost, that registration remains in GitLab: delete it there (Settings > CI/CD > Runners)", systemIDPath(path), id, path, g.Name))
	}
	return warnings
}
