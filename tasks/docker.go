package tasks

// What docker_network and docker_container share: the names docker accepts,
// image references and pulls, and rendering maps and lists for plans.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
)

// dockerNameRE is the rule docker applies to container and volume names
// (moby daemon/names: restrictedNamePattern). Network names get the same
// rule here: it keeps every name we pass a plain word, never a flag.
var dockerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// imageRefRE is a loose image reference: [host[:port]/]path[:tag][@digest].
// Docker checks the details; this keeps whitespace and flags out of argv.
var imageRefRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$`)

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

// pullImage pulls ref (POST /images/create), with the credentials the
// host's docker CLI would use for its registry: those stored inline in
// ${DOCKER_CONFIG:-$HOME/.docker}/config.json of the user docker runs as
// (the become user), read on the host and sent only in the request's
// X-Registry-Auth header, never in a command line or a log. Credential
// helpers (credsStore, credHelpers) are not run: a registry that only has
// one is pulled from anonymously. The pull's own failure (such as "manifest
// unknown") is its error.
func pullImage(ctx context.Context, h Host, api DockerEngine, ref string) error {
	auth, err := registryAuth(ctx, h, ref)
	if err != nil {
		return err
	}
	resp, err := api.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return dockerErr("pull "+ref, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		return dockerErr("pull "+ref, err)
	}
	return nil
}

// dockerConfigScript prints the docker CLI's configuration file, or nothing
// when there is none (https://docs.docker.com/reference/cli/docker/#configuration-files).
const dockerConfigScript = `f="${DOCKER_CONFIG:-$HOME/.docker}/config.json"; [ -r "$f" ] && cat -- "$f"; exit 0`

// registryAuth returns the encoded X-Registry-Auth value for ref's registry
// from the host's docker configuration, or "" when it has none.
func registryAuth(ctx context.Context, h Host, ref string) (string, error) {
	out, err := h.Run(ctx, Cmd{Args: []string{"sh", "-c", dockerConfigScript}})
	if err != nil {
		return "", err
	}
	if out.ExitCode != 0 || len(bytes.TrimSpace(out.Stdout)) == 0 {
		return "", nil
	}
	var cfg struct {
		Auths map[string]registry.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(out.Stdout, &cfg); err != nil {
		// The docker CLI would refuse it too; say where, not what it holds.
		return "", fmt.Errorf("the docker configuration file on the host (${DOCKER_CONFIG:-$HOME/.docker}/config.json) is not valid JSON, so its registry credentials cannot be used for the pull of %s", ref)
	}
	for _, key := range registryKeys(ref) {
		a, ok := cfg.Auths[key]
		if !ok || (a.Auth == "" && a.Username == "" && a.IdentityToken == "") {
			continue
		}
		if a.Auth != "" && a.Username == "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if user, pass, ok := strings.Cut(string(dec), ":"); err == nil && ok {
				a.Username, a.Password = user, pass
			}
		}
		a.Auth, a.ServerAddress = "", key
		b, err := json.Marshal(a)
		if err != nil {
			return "", err
		}
		return base64.URLEncoding.EncodeToString(b), nil
	}
	return "", nil
}

// registryKeys are the keys under which the docker CLI stores the
// credentials of ref's registry, most specific first: Docker Hub's is
// "https://index.docker.io/v1/".
func registryKeys(ref string) []string {
	domain := imageDomain(ref)
	if domain == "docker.io" {
		return []string{"https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"}
	}
	return []string{domain, "https://" + domain, "http://" + domain}
}
