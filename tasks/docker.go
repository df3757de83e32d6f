package tasks

// What docker_network and docker_container share: running `docker ... inspect`
// and telling "not found" from a real failure, the names docker accepts,
// image references, and rendering maps and lists for plans.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// dockerNameRE is the rule docker applies to container and volume names
// (moby daemon/names: restrictedNamePattern). Network names get the same
// rule here: it keeps every name we pass a plain word, never a flag.
var dockerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// imageRefRE is a loose image reference: [host[:port]/]path[:tag][@digest].
// Docker checks the details; this keeps whitespace and flags out of argv.
var imageRefRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$`)

// inspectResult is one `docker ... inspect` run: the objects found, in the
// order their names were given, and the names docker said do not exist.
type inspectResult struct {
	found   map[string]json.RawMessage
	missing map[string]bool
}

// dockerInspect runs args, a docker inspect command whose last arguments are
// names, and maps docker's JSON array back onto the names. Docker prints the
// objects it found in argument order and one "not found" line per missing
// name on stderr, exiting 1; any other failure (daemon down, permission
// denied) is returned as the command's *ExitError.
func dockerInspect(ctx context.Context, h Host, args []string, names []string) (inspectResult, error) {
	c := Cmd{Args: args}
	out, err := h.Run(ctx, c)
	if err != nil {
		return inspectResult{}, err
	}
	res := inspectResult{found: map[string]json.RawMessage{}, missing: map[string]bool{}}
	if out.ExitCode != 0 {
		for _, line := range strings.Split(string(out.Stderr), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			name, ok := notFoundName(line, names)
			if !ok {
				return inspectResult{}, &ExitError{Cmd: c.String(), ExitCode: out.ExitCode, Stdout: out.Stdout, Stderr: out.Stderr}
			}
			res.missing[name] = true
		}
		if len(res.missing) == 0 {
			return inspectResult{}, &ExitError{Cmd: c.String(), ExitCode: out.ExitCode, Stdout: out.Stdout, Stderr: out.Stderr}
		}
	}
	var objs []json.RawMessage
	if err := json.Unmarshal(out.Stdout, &objs); err != nil {
		return inspectResult{}, fmt.Errorf("%s: reading its JSON output: %w", c, err)
	}
	var present []string
	for _, n := range names {
		if !res.missing[n] {
			present = append(present, n)
		}
	}
	if len(objs) != len(present) {
		return inspectResult{}, fmt.Errorf("%s: docker returned %d object(s) for %d name(s) it did not report missing", c, len(objs), len(present))
	}
	for i, n := range present {
		res.found[n] = objs[i]
	}
	return res, nil
}

// notFoundName reports which of names a stderr line of a docker inspect
// command says is missing. Docker 20.10's CLI writes "Error: No such
// container: x" (image, network, object); newer CLIs pass the daemon's words
// on: "Error response from daemon: No such container: x", "... no such
// image: x: No such image: x", "... network x not found".
func notFoundName(line string, names []string) (string, bool) {
	l := strings.ToLower(strings.TrimSpace(line))
	for _, n := range names {
		ln := strings.ToLower(n)
		if strings.Contains(l, "no such ") && strings.HasSuffix(l, ": "+ln) {
			return n, true
		}
		if strings.HasSuffix(l, "network "+ln+" not found") {
			return n, true
		}
	}
	return "", false
}

// normalizeImageRef returns ref as docker displays it, so references that
// name the same image compare equal: "docker.io/library/docker:27-dind",
// "library/docker:27-dind" and "docker:27-dind" are all "docker:27-dind", and
// a reference without tag or digest gets ":latest".
func normalizeImageRef(ref string) string {
	name, digest, _ := strings.Cut(ref, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	for _, p := range []string{"docker.io/", "index.docker.io/"} {
		name = strings.TrimPrefix(name, p)
	}
	if strings.HasPrefix(name, "library/") && strings.Count(name, "/") == 1 {
		name = strings.TrimPrefix(name, "library/")
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	if tag != "" {
		name += ":" + tag
	}
	if digest != "" {
		name += "@" + digest
	}
	return name
}

// inspectableRef is ref with ":latest" added when it has neither tag nor
// digest. Such a reference always contains ':' or '@', which no container
// name may, so `docker inspect NAME REF` can never mistake one for the other.
func inspectableRef(ref string) string {
	name, _, hasDigest := strings.Cut(ref, "@")
	if hasDigest || strings.LastIndex(name, ":") > strings.LastIndex(name, "/") {
		return ref
	}
	return ref + ":latest"
}

// shortID shortens "sha256:0123456789abcdef..." to "sha256:0123456789ab".
func shortID(id string) string {
	hex := strings.TrimPrefix(id, "sha256:")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	if strings.HasPrefix(id, "sha256:") {
		return "sha256:" + hex
	}
	return hex
}

// kvLines renders a map as sorted "key=value" lines.
func kvLines(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		lines = append(lines, k+"="+m[k])
	}
	return strings.Join(lines, "\n")
}

// kvArgs renders a map as sorted flag=key=value arguments.
func kvArgs(flag string, m map[string]string) []string {
	var args []string
	for _, k := range sortedKeys(m) {
		args = append(args, flag+"="+k+"="+m[k])
	}
	return args
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sortedSet returns the distinct elements of l, sorted.
func sortedSet(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// checkKeys validates the keys of a map option: non-empty, no '=' (docker
// splits "key=value" at the first '='), no whitespace.
func checkKeys(field string, m map[string]string) error {
	for _, k := range sortedKeys(m) {
		switch {
		case k == "":
			return FieldErrorf(field, "empty key")
		case strings.ContainsAny(k, "= \t\r\n\x00"):
			return FieldErrorf(field, "key %q may not contain '=', whitespace or NUL", k)
		}
	}
	return nil
}

// recreateSummary is "recreate: env changed" or "recreate: env, image
// changed": the fields named are options of the task (plural or not), so the
// verb is one that reads the same for one field and for several.
func recreateSummary(fields []Field) string {
	return "recreate: " + FieldNames(fields) + " changed"
}

// appearedError is what Apply returns when an object it was to create was
// made by something else after the plan, differently from the task's spec.
// It replaces docker's raw "already in use" / "already exists" (C13).
func appearedError(kind, name string, now []Change) error {
	what := "it differs from the task"
	if len(now) > 0 && now[0].Summary != "" {
		what = "the plan would now say: " + now[0].Summary
	}
	return fmt.Errorf("%s %s was created by something else after the plan (%s); run plan again", kind, name, what)
}

// dockerError is a failed docker command with all of docker's stderr lines in
// its message: docker often puts the reason first and a generic line such as
// "Error: failed to start containers: x" last, which is all *ExitError keeps.
type dockerError struct {
	msg string
	err error
}

func (e *dockerError) Error() string { return e.msg }
func (e *dockerError) Unwrap() error { return e.err }

// dockerFailure wraps err from a docker command with what was being done and
// every line docker wrote on stderr.
func dockerFailure(what string, err error) error {
	var ee *ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%s: %w", what, err)
	}
	var lines []string
	for _, l := range strings.Split(string(ee.Stderr), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return fmt.Errorf("%s: %w", what, err)
	}
	msg := strings.Join(lines, "; ")
	if len(msg) > 600 {
		msg = msg[:600] + "…"
	}
	return &dockerError{msg: fmt.Sprintf("%s: %s (exit status %d)", what, msg, ee.ExitCode), err: err}
}
