package tasks

// gitlab_runner's plan: what it reads, the decision (gitlab_runner_decide.go)
// for the runner, and the change that words it.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

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
	// config.toml and .runner_system_id in one round trip.
	res, err := RunProbes(ctx, h, ReadProbe(path), ReadProbe(systemIDPath(path)))
	if len(res) != 2 {
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
		return g.planAbsent(ctx, path, doc, idx, payload, warnings)
	}
	facts, verr, err := g.facts(ctx, path, doc, idx, payload)
	if err != nil {
		return nil, err
	}
	switch d := decide(facts); d.kind {
	case registerRunner:
		return g.planRegister(ctx, path, doc, idx, payload, warnings, d.why)
	case refuseInvalidToken:
		return nil, &InvalidTokenError{Runner: g.Name, ConfigFile: path, URL: strings.TrimRight(g.URL, "/"), SameAsGiven: facts.sameAsGiven()}
	case cannotVerify:
		return nil, fmt.Errorf("runner %s: cannot check the token in %s with GitLab: %w", g.Name, path, verr)
	default:
		return g.planUpdate(ctx, path, doc, idx, payload, warnings, f, d, verr)
	}
}

// facts reads what decide needs: the runner's entry, the system ID and,
// when the entry holds a token for this GitLab, whether GitLab accepts it
// (the verify error is returned too, for the wording).
func (g *GitLabRunner) facts(ctx context.Context, path string, doc *tomlDoc, idx int, payload *gitlabRunnerPayload) (runnerFacts, error, error) {
	f := runnerFacts{listed: idx >= 0, given: g.kind, givenToken: g.token, replaceInvalid: g.ReplaceInvalidToken, sameGitLab: true}
	if !f.listed {
		return f, nil, nil
	}
	r := doc.runners()[idx]
	f.token, _ = r["token"].(string)
	f.url, _ = r["url"].(string)
	f.sameGitLab = f.url == "" || sameGitLab(f.url, g.URL)
	if f.token == "" || !f.sameGitLab {
		return f, nil, nil
	}
	sid, known, err := payload.currentSystemID(path)
	if err != nil {
		return f, nil, err
	}
	f.systemIDKnown = known
	if !f.needsVerify() {
		return f, nil, nil
	}
	c := g.gitlab()
	_, verr := c.verify(asCheck(ctx), f.token, sid)
	var down *GitLabUnreachableError
	switch {
	case verr == nil:
		f.verified = tokenAccepted
	case errors.As(c.unreachable(verr), &down):
		f.verified, verr = gitlabUnanswered, down
	case apiStatus(verr) == 403:
		f.verified = tokenRefused
	default:
		f.verified = verifyFailed
	}
	return f, verr, nil
}

// planUpdate words a kept registration: the settings that differ, the
// system ID and glrt- token apply puts in place, the file's mode and
// owner. verr is GitLab's missing answer when d.gitlabDown.
func (g *GitLabRunner) planUpdate(ctx context.Context, path string, doc *tomlDoc, idx int, payload *gitlabRunnerPayload, warnings []string, f RemoteFile, d registration, verr error) ([]Change, error) {
	base := strings.TrimRight(g.URL, "/")
	planned := doc.clone()
	fields, err := g.applySettings(planned, idx, true)
	if err != nil {
		return nil, err
	}
	if d.verifyFirst {
		sid, err := newSystemID()
		if err != nil {
			return nil, err
		}
		payload.systemID, payload.writeSystemID, payload.verifyCurrent = sid, true, true
		fields = append(fields, Field{Name: "system_id", New: sid + " (new " + systemIDPath(path) + ")"},
			Field{Name: "request", New: fmt.Sprintf("POST %s/api/v4/runners/verify token=%s (from %s) system_id=%s", base, SensitiveValue, path, sid)})
	}
	var gitlabDown string
	if d.gitlabDown {
		gitlabDown = fmt.Sprintf("runner %s: %v: the token in %s could not be checked; the runner keeps it and retries on its own", g.Name, verr, path)
	}
	if d.swapToken {
		sid, sidFields, err := g.planSystemID(path, payload)
		if err != nil {
			return nil, err
		}
		payload.newToken = true
		fields = append(fields, Field{Name: "token", Old: SensitiveValue, New: SensitiveValue, Sensitive: true},
			Field{Name: "token_source", New: g.tokenSource + " (" + g.kind.String() + ", not the one in " + path + ")"},
			Field{Name: "request", New: fmt.Sprintf("POST %s/api/v4/runners/verify token=%s system_id=%s", base, SensitiveValue, sid)})
		fields = append(fields, sidFields...)
	}
	if payload.existed && f.Mode != 0o600 {
		fields = append(fields, Field{Name: "mode", Old: fmt.Sprintf("%04o", f.Mode), New: "0600"})
	}
	if payload.existed && f.Owner != "" && f.Owner != "root" {
		fields = append(fields, Field{Name: "owner", Old: f.Owner, New: "root"})
	}
	if payload.newToken || payload.verifyCurrent {
		// Apply verifies a token with GitLab first: one that does not
		// answer would fail it.
		err := g.gitlab().checkAnswers(ctx)
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
func (g *GitLabRunner) planAbsent(ctx context.Context, path string, doc *tomlDoc, idx int, payload *gitlabRunnerPayload, warnings []string) ([]Change, error) {
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
	u := decideUnregister(token, g.unregister())
	switch u {
	case unregisterSkipped:
		warnings = append(warnings, fmt.Sprintf("%s stays in %s (unregister: none): delete it there if nothing uses it", who, base))
	case unregisterManager:
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
	case unregisterRunner:
		summary = fmt.Sprintf("unregister %s from %s and remove it from %s", who, base, path)
		fields = append(fields, Field{Name: "request", New: fmt.Sprintf("DELETE %s/api/v4/runners token=%s", base, SensitiveValue)})
		if strings.HasPrefix(token, runnerAuthPrefix) && !g.usesAccessToken() {
			warnings = append(warnings, fmt.Sprintf("%s is deleted in GitLab: other hosts registered with the same glrt- token lose it too; unregister: manager removes only this host (runner_unregister=manager in the shipped playbook)", who))
		}
	}
	if u.needsGitLab() {
		// Unregistering needs GitLab: one that does not answer would fail
		// apply half-way (after dind is removed), so the plan fails now.
		if err := g.gitlab().checkAnswers(ctx); err != nil {
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

// planSystemID picks the system_id sent with a glrt- token: the one the
// plan already picked, the one in .runner_system_id, or a new one Apply
// writes there (with the field that says so).
func (g *GitLabRunner) planSystemID(path string, payload *gitlabRunnerPayload) (string, []Field, error) {
	if payload.systemID != "" {
		return payload.systemID, nil, nil
	}
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
