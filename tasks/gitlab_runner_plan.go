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

// runnerPlan is what one Plan call read, and what its runners planned so
// far; their changes share it.
type runnerPlan struct {
	path string
	// file is config.toml as plan read it (existed false when there is
	// none); sidFile is .runner_system_id, read in the same round trip.
	file               RemoteFile
	existed, sidExists bool
	sidFile            RemoteFile
	// doc is config.toml with the changes of the runners planned so far:
	// each runner's change and diff follow those before it.
	doc *tomlDoc
	// systemID is the system ID the runners verify with, once one needed
	// it; newSystemID says .runner_system_id does not exist and apply
	// writes it.
	systemID    string
	newSystemID bool
	// managed are the names of the task's runners.
	managed []string
	// globals are the global settings the task manages, planned with the
	// first runner present; nil once planned (or when none is).
	globals *runnerGlobals
	// uplink is what UplinkProbes read, when a runner's network_mtu is
	// auto.
	uplink []ProbeResult
	// dirMade and sidWritten are what Apply did once for all the runners:
	// config.toml's directory made, .runner_system_id written.
	dirMade, sidWritten bool
}

// currentSystemID is the system ID in .runner_system_id as plan read it;
// false when the file does not exist; an error when it holds something
// else than a system ID.
func (st *runnerPlan) currentSystemID() (string, bool, error) {
	if !st.sidExists {
		return "", false, nil
	}
	return parseSystemID(systemIDPath(st.path), st.sidFile.Content)
}

// planSystemID picks the system_id sent with a glrt- token for p: the one
// the plan already picked, the one in .runner_system_id, or a new one Apply
// writes there (with the field that says so, on the first change that
// uses it).
func (st *runnerPlan) planSystemID(p *gitlabRunnerPayload) (string, []Field, error) {
	var fields []Field
	if st.systemID == "" {
		sid, exists, err := st.currentSystemID()
		if err != nil {
			return "", nil, err
		}
		if !exists {
			if sid, err = newSystemID(); err != nil {
				return "", nil, err
			}
			st.newSystemID = true
			fields = append(fields, Field{Name: "system_id", New: sid + " (new " + systemIDPath(st.path) + ")"})
		}
		st.systemID = sid
	}
	p.systemID, p.writeSystemID = st.systemID, st.newSystemID
	return st.systemID, fields, nil
}

// gitlabRunnerPayload is how Apply makes a change planned by Plan for one
// runner.
type gitlabRunnerPayload struct {
	action Action
	st     *runnerPlan
	spec   *GitLabRunner
	// globals are the global settings this change sets too (nil: none).
	globals *runnerGlobals
	// networkMTU is docker.network_mtu as resolved on the host; 0 for
	// none.
	networkMTU int
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

// Plan implements Task: config.toml and .runner_system_id are read once,
// then each runner is planned in order on config.toml as the runners
// before it leave it, with one change each at most; the global settings go
// with the first runner present. A runner whose plan fails fails the
// task: apply would write config.toml without it.
func (g *GitLabRunner) Plan(ctx context.Context, h Host) ([]Change, error) {
	specs, err := g.runnerSpecs()
	if err != nil {
		return nil, err
	}
	path := g.configFile()
	// config.toml, .runner_system_id and, for a network_mtu: auto, the
	// host's default route in one round trip.
	var mtuProbes []Probe
	for _, s := range specs {
		if s.state() == "present" && s.Docker.NetworkMTU.Auto {
			mtuProbes = UplinkProbes()
		}
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
	doc, err := parseTOMLDoc(path, res[0].File.Content)
	if err != nil {
		return nil, err
	}
	st := &runnerPlan{path: path, file: res[0].File, existed: res[0].Exists, sidFile: res[1].File, sidExists: res[1].Exists, doc: doc, uplink: res[2:]}
	for _, s := range specs {
		st.managed = append(st.managed, s.Name)
		if s.state() == "present" && st.globals == nil {
			globals := g.globals()
			st.globals = &globals
		}
	}
	var changes []Change
	var quiet []string // warnings of runners without a change
	for _, s := range specs {
		ch, err := s.planRunner(ctx, st)
		var we *WarningsError
		switch {
		case errors.As(err, &we):
			quiet = append(quiet, we.Warnings...)
		case err != nil:
			return nil, err
		}
		changes = append(changes, ch...)
	}
	restart, err := g.planRestart(ctx, h, changes)
	if err != nil {
		return nil, err
	}
	changes = append(changes, restart...)
	if len(changes) == 0 {
		if len(quiet) > 0 {
			return nil, &WarningsError{Warnings: quiet}
		}
		return nil, nil
	}
	if st.existed && !doc.keepsLayout(st.file.Content) {
		changes[0].Warnings = append([]string{fmt.Sprintf("%s will be rewritten in gitlab-runner's own layout: its comments and formatting are not kept", path)}, changes[0].Warnings...)
	}
	changes[0].Warnings = append(changes[0].Warnings, quiet...)
	return changes, nil
}

// planRunner plans the runner g on st.doc, and puts its planned entry
// there for the runners after it.
func (g *GitLabRunner) planRunner(ctx context.Context, st *runnerPlan) ([]Change, error) {
	idx, err := st.doc.findRunner(st.path, g.Name)
	if err != nil {
		return nil, err
	}
	p := &gitlabRunnerPayload{st: st, spec: g}
	if g.state() == "absent" {
		return g.planAbsent(ctx, st, idx, p)
	}
	// The global settings go with this runner.
	p.globals, st.globals = st.globals, nil
	if p.networkMTU, err = g.Docker.NetworkMTU.ResolveFrom(st.uplink); err != nil {
		return nil, &FieldError{Field: "docker.network_mtu", Err: err}
	}
	facts, verr, err := g.facts(ctx, st, idx)
	if err != nil {
		return nil, err
	}
	switch d := decide(facts); d.kind {
	case registerRunner:
		return g.planRegister(ctx, st, idx, p, d.why)
	case refuseInvalidToken:
		return nil, &InvalidTokenError{Runner: g.Name, ConfigFile: st.path, URL: strings.TrimRight(g.URL, "/"), SameAsGiven: facts.sameAsGiven()}
	case cannotVerify:
		return nil, fmt.Errorf("runner %s: cannot check the token in %s with GitLab: %w", g.Name, st.path, verr)
	default:
		return g.planUpdate(ctx, st, idx, p, d, verr)
	}
}

// facts reads what decide needs: the runner's entry, the system ID and,
// when the entry holds a token for this GitLab, whether GitLab accepts it
// (the verify error is returned too, for the wording).
func (g *GitLabRunner) facts(ctx context.Context, st *runnerPlan, idx int) (runnerFacts, error, error) {
	f := runnerFacts{listed: idx >= 0, given: g.kind, givenToken: g.token, replaceInvalid: g.ReplaceInvalidToken, sameGitLab: true}
	if !f.listed {
		return f, nil, nil
	}
	r := st.doc.runners()[idx]
	f.token, _ = r["token"].(string)
	f.url, _ = r["url"].(string)
	f.sameGitLab = f.url == "" || sameGitLab(f.url, g.URL)
	if f.token == "" || !f.sameGitLab {
		return f, nil, nil
	}
	sid, known, err := st.currentSystemID()
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
func (g *GitLabRunner) planUpdate(ctx context.Context, st *runnerPlan, idx int, payload *gitlabRunnerPayload, d registration, verr error) ([]Change, error) {
	path, doc, f := st.path, st.doc, st.file
	var warnings []string
	base := strings.TrimRight(g.URL, "/")
	planned := doc.clone()
	fields, err := g.applySettings(planned, idx, payload.globals, payload.networkMTU)
	if err != nil {
		return nil, err
	}
	if d.verifyFirst {
		sid, sidFields, err := st.planSystemID(payload)
		if err != nil {
			return nil, err
		}
		payload.verifyCurrent = true
		fields = append(fields, sidFields...)
		fields = append(fields, Field{Name: "request", New: fmt.Sprintf("POST %s/api/v4/runners/verify token=%s (from %s) system_id=%s", base, SensitiveValue, path, sid)})
	}
	var gitlabDown string
	if d.gitlabDown {
		gitlabDown = fmt.Sprintf("runner %s: %v: the token in %s could not be checked; the runner keeps it and retries on its own", g.Name, verr, path)
	}
	if d.swapToken {
		sid, sidFields, err := st.planSystemID(payload)
		if err != nil {
			return nil, err
		}
		payload.newToken = true
		fields = append(fields, Field{Name: "token", Old: SensitiveValue, New: SensitiveValue, Sensitive: true},
			Field{Name: "token_source", New: g.tokenSource + " (" + g.kind.String() + ", not the one in " + path + ")"},
			Field{Name: "request", New: fmt.Sprintf("POST %s/api/v4/runners/verify token=%s system_id=%s", base, SensitiveValue, sid)})
		fields = append(fields, sidFields...)
	}
	// The file's own mode and owner go with the global settings.
	if payload.globals != nil && st.existed && f.Mode != 0o600 {
		fields = append(fields, Field{Name: "mode", Old: fmt.Sprintf("%04o", f.Mode), New: "0600"})
	}
	if payload.globals != nil && st.existed && f.Owner != "" && f.Owner != "root" {
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
	st.doc = planned
	payload.action = Update
	return []Change{{Action: Update, Resource: "runner", Target: g.Name,
		Summary: fmt.Sprintf("update runner %s in %s: %s", g.Name, path, FieldNames(fields)),
		Fields:  fields, Diff: diff, Warnings: warnings, Payload: payload}}, nil
}

// planAbsent plans the decommission of the runner: unregistered from
// GitLab as unregister says, its entry removed from config.toml.
func (g *GitLabRunner) planAbsent(ctx context.Context, st *runnerPlan, idx int, payload *gitlabRunnerPayload) ([]Change, error) {
	path, doc := st.path, st.doc
	var warnings []string
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
		sid, ok, err := st.currentSystemID()
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
	st.doc = planned
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
