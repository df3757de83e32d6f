package tasks

import (
	"maps"
	"os"
	"strings"
	"unicode/utf8"
)

// SecretSource says where on the controller a secret is read: Env names an
// environment variable of the dindops process, File a file on the machine
// running dindops (refused when other users can read or change it, as ssh
// refuses a loose private key). One of them, or neither: a secret with
// neither is not given (see DockerContainer.SecretEnv).
type SecretSource struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// given reports whether the source names a variable or a file.
func (s SecretSource) given() bool { return s.Env != "" || s.File != "" }

// secretEnvLabel is the label on a container that holds the names (never
// the values) of its environment variables that came from secret_env, so
// that a later plan masks them even when the task no longer lists them.
const secretEnvLabel = "io.dindops.secret-env"

// secretChanged marks, in a plan, a secret whose value differs from the
// one the container has.
const secretChanged = SensitiveValue + " (changed)"

func (c *DockerContainer) validateSecretEnv() error {
	for _, k := range sortedKeys(c.SecretEnv) {
		s := c.SecretEnv[k]
		field := "secret_env." + k
		switch {
		case k == "" || strings.ContainsAny(k, "= \t\r\n\x00") || strings.HasPrefix(k, "#"):
			return FieldErrorf("secret_env", "invalid variable name %q", k)
		case hasKey(c.Env, k):
			return FieldErrorf(field, "%s is in env too: give it in one of them", k)
		case s.Env != "" && s.File != "":
			return FieldErrorf(field, "set env (an environment variable of dindops) or file (a file on the controller), not both")
		case strings.ContainsAny(s.Env, "= \t\r\n\x00"):
			return FieldErrorf(field+".env", "invalid environment variable name %q", s.Env)
		}
	}
	if _, ok := c.Labels[secretEnvLabel]; ok {
		return FieldErrorf("labels", "%s is dindops's own label (the names of the secret_env variables)", secretEnvLabel)
	}
	return nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// Prepare implements Preparer: it reads every secret_env value on the
// controller, before any host is contacted. A variable that is not set, a
// file that cannot be read or is readable by other users, and an empty
// value fail here, naming the option. A file's trailing newline is not
// part of the value.
func (c *DockerContainer) Prepare(ctl Controller) error {
	c.secrets = nil
	if c.state() == "absent" {
		return nil
	}
	lookupEnv, readFile := ctl.LookupEnv, ctl.ReadFile
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	for _, k := range sortedKeys(c.SecretEnv) {
		s := c.SecretEnv[k]
		var v, from string
		switch {
		case s.Env != "":
			from = "environment variable " + s.Env
			got, ok := lookupEnv(s.Env)
			if !ok {
				return FieldErrorf("secret_env."+k+".env", "environment variable %s is not set where dindops runs: export it, or put the value in a file (mode 0600) and use file", s.Env)
			}
			v = got
		case s.File != "":
			from = "file " + s.File
			if err := checkSecretFileMode(s.File, "secret"); err != nil {
				return &FieldError{Field: "secret_env." + k + ".file", Err: err}
			}
			b, err := readFile(s.File)
			if err != nil {
				return FieldErrorf("secret_env."+k+".file", "cannot read the file on the controller: %v", err)
			}
			v = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		default:
			continue
		}
		switch {
		case v == "":
			return FieldErrorf("secret_env."+k, "%s is empty", from)
		case strings.ContainsAny(v, "\r\n\x00") || !utf8.ValidString(v):
			return FieldErrorf("secret_env."+k, "the value in %s has several lines, a NUL or invalid UTF-8, which an environment variable cannot hold", from)
		}
		if c.secrets == nil {
			c.secrets = map[string]string{}
		}
		c.secrets[k] = v
	}
	return nil
}

// wantEnv is the environment the container gets: env and the secrets read
// by Prepare.
func (c *DockerContainer) wantEnv() map[string]string {
	if len(c.secrets) == 0 {
		return c.Env
	}
	out := maps.Clone(map[string]string(c.Env))
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, c.secrets)
	return out
}

// wantLabels is the labels the container gets: labels and, when secrets
// are given, secretEnvLabel with their names.
func (c *DockerContainer) wantLabels() map[string]string {
	if len(c.secrets) == 0 {
		return c.Labels
	}
	out := maps.Clone(c.Labels)
	if out == nil {
		out = map[string]string{}
	}
	out[secretEnvLabel] = strings.Join(sortedKeys(c.secrets), ",")
	return out
}

// secretKeys is the names of env variables whose values a plan never
// shows: those of secret_env (given or not) and those the container's
// secretEnvLabel names.
func (c *DockerContainer) secretKeys(labels map[string]string) map[string]bool {
	keys := map[string]bool{}
	for k := range c.SecretEnv {
		keys[k] = true
	}
	for _, k := range strings.Split(labels[secretEnvLabel], ",") {
		if k != "" {
			keys[k] = true
		}
	}
	return keys
}

// maskSecrets replaces the values of secret keys in the lines a plan shows
// (shown: the container's, next: what it gets), so a change is seen
// without the value: SensitiveValue on both sides when it stays the same,
// secretChanged when it differs from have's (the container's env).
func maskSecrets(shown, next, have map[string]string, secret map[string]bool) {
	for k := range secret {
		if _, ok := shown[k]; ok {
			shown[k] = SensitiveValue
		}
		nv, ok := next[k]
		if !ok {
			continue
		}
		suffix := ""
		if strings.HasSuffix(nv, imageDefault) {
			nv, suffix = strings.TrimSuffix(nv, imageDefault), imageDefault
		}
		switch hv, had := have[k]; {
		case had && hv != nv:
			next[k] = secretChanged + suffix
		default:
			next[k] = SensitiveValue + suffix
		}
	}
}

// specEnvLines is the env of a container to create, secrets masked.
func (c *DockerContainer) specEnvLines() string {
	env := maps.Clone(c.wantEnv())
	for k := range c.secrets {
		env[k] = SensitiveValue
	}
	return kvLines(env)
}
