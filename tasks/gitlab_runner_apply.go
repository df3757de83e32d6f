package tasks

// gitlab_runner's apply: the GitLab calls a planned change makes, then
// config.toml written once they succeeded.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Apply implements Task: config.toml must be as plan read it; each
// runner's change then makes its GitLab calls and writes config.toml with
// what they gave, before the next runner's; a restart (listen_address)
// comes last.
func (g *GitLabRunner) Apply(ctx context.Context, h Host, changes []Change) error {
	var doc *tomlDoc
	written := false // a change before this one changed the host or GitLab
	for _, c := range changes {
		var err error
		switch p := c.Payload.(type) {
		case *gitlabRunnerPayload:
			if doc == nil {
				if doc, err = g.readPlanned(ctx, h, p.st); err != nil {
					return err
				}
			}
			err = p.spec.applyRunner(ctx, h, doc, p)
		case *runnerRestart:
			err = p.apply(ctx, h)
		default:
			err = fmt.Errorf("gitlab_runner: unknown change")
		}
		if err != nil {
			var u *UnchangedError
			if written && errors.As(err, &u) {
				// Not unchanged: the changes before it were made.
				return fmt.Errorf("%w (the changes listed before this one were made)", u.Err)
			}
			return err
		}
		written = true
	}
	return nil
}

// readPlanned reads config.toml again, and refuses one that changed since
// plan read it.
func (g *GitLabRunner) readPlanned(ctx context.Context, h Host, st *runnerPlan) (*tomlDoc, error) {
	f, exists, err := ReadFileIfExists(ctx, h, st.path)
	if err != nil {
		return nil, err
	}
	if exists != st.existed || !bytes.Equal(f.Content, st.file.Content) {
		return nil, Unchanged(fmt.Errorf("%s changed on the host since it was planned; plan again", st.path))
	}
	return parseTOMLDoc(st.path, f.Content)
}

// applyRunner makes the change p planned for runner g on doc.
func (g *GitLabRunner) applyRunner(ctx context.Context, h Host, doc *tomlDoc, p *gitlabRunnerPayload) error {
	path := p.st.path
	idx, err := doc.findRunner(path, g.Name)
	if err != nil {
		return err
	}
	switch p.action {
	case Create:
		return g.applyRegister(ctx, h, path, doc, idx, p)
	case Update:
		if idx < 0 {
			return fmt.Errorf("runner %s is no longer in %s; plan again", g.Name, path)
		}
		return g.applyUpdate(ctx, h, path, doc, idx, p)
	case Delete:
		return g.applyDelete(ctx, h, path, doc, idx, p)
	}
	return fmt.Errorf("gitlab_runner: unknown change %v", p.action)
}

func (g *GitLabRunner) applyRegister(ctx context.Context, h Host, path string, doc *tomlDoc, idx int, p *gitlabRunnerPayload) error {
	if g.token == "" {
		return fmt.Errorf("gitlab_runner: no token was prepared (the task's Prepare did not run)")
	}
	if p.deleteRunnerID > 0 {
		// Before anything else: a refusal leaves the host as it was.
		if err := g.gitlab().deleteRunnerByID(ctx, g.token, p.deleteRunnerID); err != nil {
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
	if !p.st.existed && !p.st.dirMade {
		if _, err := Exec(ctx, h, "mkdir", "-p", "-m0700", pathDir(path)); err != nil {
			if g.kind == runnerAuthToken {
				return err
			}
			return g.takeBack(ctx, reg, err)
		}
		p.st.dirMade = true
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
	if _, err := g.applySettings(doc, idx, p.globals, p.networkMTU); err != nil {
		return g.takeBack(ctx, reg, err)
	}
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
	if derr := g.gitlab().deleteRunner(ctx, reg.Token); derr != nil {
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
			if apiStatus(err) == http.StatusForbidden {
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
	if _, err := g.applySettings(doc, idx, p.globals, p.networkMTU); err != nil {
		return err
	}
	return g.write(ctx, h, path, doc, token)
}

// keepSystemID writes the system ID verified with GitLab to
// .runner_system_id when plan found none: gitlab-runner keeps the one it
// finds there, so GitLab sees one runner manager for this host.
func (g *GitLabRunner) keepSystemID(ctx context.Context, h Host, path string, p *gitlabRunnerPayload) error {
	if !p.writeSystemID || p.st.sidWritten {
		return nil
	}
	if err := h.WriteFile(ctx, systemIDPath(path), []byte(p.systemID), WriteOptions{Mode: 0o600, Owner: "root", Group: "root"}); err != nil {
		return err
	}
	p.st.sidWritten = true
	return nil
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
	switch decideUnregister(token, g.unregister()) {
	case unregisterManager:
		err = g.gitlab().deleteRunnerManager(ctx, token, p.systemID)
	case unregisterRunner:
		err = g.gitlab().deleteRunner(ctx, token)
	}
	if err != nil {
		// 403: GitLab no longer knows the token, the runner is gone; 404:
		// the runner manager is.
		if s := apiStatus(err); s != http.StatusForbidden && s != http.StatusNotFound {
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

// ---- .runner_system_id ----

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
