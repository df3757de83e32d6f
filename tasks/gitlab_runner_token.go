package tasks

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Prepare implements Preparer: it reads each runner's token and S3 cache
// keys on the controller and keeps the HTTP client for the GitLab API.
// Two runners given the same glrt- token are an error: one runner in GitLab
// is one [[runners]] entry.
func (g *GitLabRunner) Prepare(c Controller) error {
	g.client = c.HTTPClient
	specs, err := g.runnerSpecs()
	if err != nil {
		return err
	}
	glrt := map[string]int{}
	for i, s := range specs {
		s.client = c.HTTPClient
		err := s.prepareToken(c)
		if err == nil {
			err = s.prepareCache(c)
		}
		if err == nil && s.kind == runnerAuthToken {
			if j, ok := glrt[s.token]; ok {
				err = FieldErrorf("token_env", "%s holds the same glrt- runner authentication token as runners[%d] (%s): that is one runner in GitLab, which one [[runners]] entry runs; create a runner in GitLab for each and give each its own token", s.tokenSource, j, specs[j].tokenSource)
			}
			glrt[s.token] = i
		}
		if err != nil {
			if len(g.Runners) > 0 {
				return prefixFieldError(fmt.Sprintf("runners[%d]", i), err)
			}
			return err
		}
	}
	return nil
}

// prepareToken reads the runner's token on the controller.
//
// A token that is not there (the variable unset, the file missing, either
// empty) is not an error yet: a host whose runner is already registered does
// not need it, so Plan fails with the reason only on a host where the runner
// must be registered or its token replaced. A token that is there but
// malformed, of the wrong kind for its input, or kept in a file other users
// can read, fails here, before any host is contacted.
func (g *GitLabRunner) prepareToken(c Controller) error {
	g.token, g.kind, g.tokenSource, g.tokenErr = "", noToken, "", nil
	if g.state() == "absent" {
		return nil
	}
	lookupEnv, readFile := c.lookupEnv(), c.readFile()
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
		if err := checkSecretFileMode(path, "token file"); err != nil {
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
	if g.kind == runnerAuthToken && g.serverInherited {
		// The task's settings, for the runners it creates: this one GitLab
		// has already.
		g.GitLabRunnerServerSettings = GitLabRunnerServerSettings{}
	}
	if g.kind == runnerAuthToken {
		if set := g.GitLabRunnerServerSettings.names(); len(set) > 0 {
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

// checkSecretFileMode refuses a file holding a secret (what it is) that other users can read or
// change, as ssh refuses a private key with loose permissions. It looks at
// the controller's own file system; a path it cannot stat is left to
// Controller.ReadFile, which reports what is wrong with it.
func checkSecretFileMode(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	perm := fi.Mode().Perm()
	switch {
	case perm&0o044 != 0:
		return fmt.Errorf("%s %s is readable by other users (mode %04o); chmod 600 %s", what, path, perm, path)
	case perm&0o022 != 0:
		return fmt.Errorf("%s %s can be changed by other users (mode %04o); chmod 600 %s", what, path, perm, path)
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

func (g *GitLabRunner) clock() time.Time {
	if g.now != nil {
		return g.now()
	}
	return time.Now()
}
