package tasks

// What gitlab_runner's plan decides for one runner, as typed values
// computed from what it found (config.toml, .runner_system_id, GitLab's
// answers) apart from how the plan words them.

import "strings"

// verifyOutcome is what GitLab answered to POST /api/v4/runners/verify with
// the token config.toml has.
type verifyOutcome int

const (
	notVerified      verifyOutcome = iota // not asked (not needed, or not yet)
	tokenAccepted                         // 200
	tokenRefused                          // 403: the runner was deleted, or its token reset or revoked
	gitlabUnanswered                      // no answer, or a 5xx
	verifyFailed                          // any other answer or error
)

// runnerFacts is what plan found of one runner that state present wants.
type runnerFacts struct {
	// listed says config.toml has an entry of the runner's name; token and
	// url are that entry's.
	listed     bool
	token, url string
	// sameGitLab says the entry's url names the task's GitLab (or is
	// empty).
	sameGitLab bool
	// systemIDKnown says .runner_system_id exists.
	systemIDKnown bool
	// given is the kind of token given to dindops, givenToken the token.
	given      tokenKind
	givenToken string
	// replaceInvalid is the task's replace_invalid_token.
	replaceInvalid bool
	// verified is GitLab's answer for token, when needsVerify asked for it.
	verified verifyOutcome
}

// glrtWithoutSystemID says the entry holds a glrt- token but the host has
// no system ID: GitLab verifies such a token only with one, and a plan
// must not make one up in GitLab, so apply writes it, then verifies.
func (f runnerFacts) glrtWithoutSystemID() bool {
	return !f.systemIDKnown && strings.HasPrefix(f.token, runnerAuthPrefix)
}

// needsVerify says the plan must ask GitLab whether it accepts the token in
// config.toml before deciding.
func (f runnerFacts) needsVerify() bool {
	return f.listed && f.token != "" && f.sameGitLab && !f.glrtWithoutSystemID()
}

// sameAsGiven says config.toml holds the very glrt- token given to
// dindops, so replacing it with the given one cannot help when GitLab
// refuses it.
func (f runnerFacts) sameAsGiven() bool {
	return f.given == runnerAuthToken && f.givenToken == f.token
}

// decisionKind is what becomes of a runner's registration.
type decisionKind int

const (
	// keepRegistration: the entry's token stays (verified, or to be
	// verified by apply); only settings (and a given glrt- token) change.
	keepRegistration decisionKind = iota
	// registerRunner: the runner is registered (anew), as why says.
	registerRunner
	// refuseInvalidToken: GitLab refuses the entry's token and nothing may
	// replace it (replace_invalid_token is off, or the given token is that
	// very one): the plan fails with an *InvalidTokenError.
	refuseInvalidToken
	// cannotVerify: GitLab answered the verification with something that
	// says nothing about the token; the plan fails.
	cannotVerify
)

// registerReason is why a runner is registered.
type registerReason int

const (
	notListed       registerReason = iota // config.toml has no entry of its name
	listedNoToken                         // the entry has no token
	otherGitLab                           // the entry is registered with another GitLab (its url changed)
	replacesRefused                       // GitLab refuses the entry's token, and replace_invalid_token is set
)

// registration is the plan's decision for one runner that state present
// wants.
type registration struct {
	kind decisionKind
	why  registerReason // for registerRunner
	// For keepRegistration: verifyFirst says apply writes a new system ID
	// and verifies the entry's glrt- token before anything else; swapToken
	// that the given glrt- token replaces the entry's (after GitLab
	// verifies it); gitlabDown that GitLab did not answer the verification,
	// so the token was not checked and the runner keeps it.
	verifyFirst, swapToken, gitlabDown bool
}

// decide is the decision for f: a runner is registered once. With a token
// in its entry it is only updated, unless the entry points at another
// GitLab, whose runner this is not, or GitLab refuses the token and the
// user allows a new registration.
func decide(f runnerFacts) registration {
	switch {
	case !f.listed:
		return registration{kind: registerRunner, why: notListed}
	case f.token == "":
		return registration{kind: registerRunner, why: listedNoToken}
	case !f.sameGitLab:
		return registration{kind: registerRunner, why: otherGitLab}
	}
	r := registration{kind: keepRegistration}
	if f.glrtWithoutSystemID() {
		r.verifyFirst = true
	} else {
		switch f.verified {
		case tokenAccepted:
		case gitlabUnanswered:
			// The runner keeps working without GitLab answering now (it
			// retries on its own): that is no failed host.
			r.gitlabDown = true
		case tokenRefused:
			if !f.replaceInvalid || f.sameAsGiven() {
				return registration{kind: refuseInvalidToken}
			}
			return registration{kind: registerRunner, why: replacesRefused}
		default:
			return registration{kind: cannotVerify}
		}
	}
	// A glrt- token is used as it is, so config.toml must hold the one
	// given (a runner created anew in GitLab has a new one). A
	// registration or an access token cannot be compared: config.toml
	// holds the token GitLab issued for it.
	r.swapToken = f.given == runnerAuthToken && f.givenToken != f.token
	return r
}

// replacement is what becomes of the runner whose refused token a
// registration replaces (registerRunner for replacesRefused).
type replacement struct {
	// id is that runner's id in GitLab (from its entry); 0: unknown, nothing
	// to decide.
	id int64
	// deleteFirst says apply deletes it by id before registering (DELETE
	// /api/v4/runners/:id with the access token); otherwise the plan warns
	// that it may still be listed in GitLab.
	deleteFirst bool
}

// decideReplacement decides about runner id: it is deleted only with an
// access token allowed to (canDelete) and when GitLab lists no other host
// as its manager (inUse is empty).
func decideReplacement(id int64, canDelete bool, inUse string) replacement {
	return replacement{id: id, deleteFirst: id > 0 && canDelete && inUse == ""}
}

// unregistration is how state absent leaves GitLab.
type unregistration int

const (
	unregisterNothing unregistration = iota // the entry has no token: nothing is registered
	unregisterSkipped                       // unregister: none; the runner stays in GitLab
	unregisterManager                       // DELETE /api/v4/runners/managers: only this host's runner manager
	unregisterRunner                        // DELETE /api/v4/runners: the runner and its token
)

// decideUnregister is how a runner whose entry holds token leaves GitLab,
// given the task's unregister option (runner, manager or none).
func decideUnregister(token, how string) unregistration {
	switch {
	case token == "":
		return unregisterNothing
	case how == "none":
		return unregisterSkipped
	case how == "manager":
		return unregisterManager
	}
	return unregisterRunner
}

// needsGitLab says the unregistration calls GitLab.
func (u unregistration) needsGitLab() bool { return u == unregisterManager || u == unregisterRunner }
