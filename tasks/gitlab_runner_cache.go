package tasks

// A runner's [runners.cache] section, whose S3 keys are read on the
// controller as runner tokens are.

import (
	"os"
	"strings"
)

// GitLabRunnerCache is a runner's [runners.cache] section, with
// config.toml's names
// (https://docs.gitlab.com/runner/configuration/advanced-configuration/#the-runnerscache-section):
// the cache that jobs of several hosts share, in an object store. Options
// left unset are not managed. It is also how the section is written (its
// toml tags).
type GitLabRunnerCache struct {
	// Type is the store: s3, gcs or azure (required).
	Type string `yaml:"Type" toml:"Type,omitempty"`
	// Path is prepended to the cache's object names.
	Path string `yaml:"Path" toml:"Path,omitempty"`
	// Shared shares the cache between runners (without it, each runner has
	// its own, under runner/TOKEN-PREFIX/).
	Shared *bool `yaml:"Shared" toml:"Shared,omitempty"`
	// S3 is the [runners.cache.s3] section (Type s3).
	S3 *GitLabRunnerCacheS3 `yaml:"s3" toml:"s3,omitempty"`
}

// GitLabRunnerCacheS3 is the [runners.cache.s3] section. AccessKey and
// SecretKey are never given in a playbook: they are read on the controller,
// from an environment variable (access_key_env, secret_key_env) or a file
// readable by its owner only (access_key_file, secret_key_file), written to
// config.toml (mode 0600) and shown nowhere. Without them, gitlab-runner
// uses the host's IAM role (AuthenticationType iam).
type GitLabRunnerCacheS3 struct {
	// ServerAddress is the S3 endpoint, HOST[:PORT] (s3.amazonaws.com for
	// AWS).
	ServerAddress string `yaml:"ServerAddress" toml:"ServerAddress,omitempty"`
	// AccessKey and SecretKey are what Prepare read (yaml: none).
	AccessKey string `yaml:"-" toml:"AccessKey,omitempty"`
	SecretKey string `yaml:"-" toml:"SecretKey,omitempty"`
	// BucketName is the bucket the cache is kept in.
	BucketName string `yaml:"BucketName" toml:"BucketName,omitempty"`
	// BucketLocation is the bucket's region.
	BucketLocation string `yaml:"BucketLocation" toml:"BucketLocation,omitempty"`
	// Insecure is plain HTTP to ServerAddress.
	Insecure *bool `yaml:"Insecure" toml:"Insecure,omitempty"`
	// AuthenticationType is access-key or iam.
	AuthenticationType string `yaml:"AuthenticationType" toml:"AuthenticationType,omitempty"`
	// AccessKeyEnv and AccessKeyFile say where the controller reads
	// AccessKey; SecretKeyEnv and SecretKeyFile, SecretKey. One of each
	// pair, both pairs or neither.
	AccessKeyEnv  string `yaml:"access_key_env" toml:"-"`
	AccessKeyFile string `yaml:"access_key_file" toml:"-"`
	SecretKeyEnv  string `yaml:"secret_key_env" toml:"-"`
	SecretKeyFile string `yaml:"secret_key_file" toml:"-"`
}

func (c *GitLabRunnerCache) validate() error {
	switch c.Type {
	case "s3", "gcs", "azure":
	case "":
		return FieldErrorf("Type", "required: s3, gcs or azure")
	default:
		return FieldErrorf("Type", "%q is not s3, gcs or azure", c.Type)
	}
	x := c.S3
	if x == nil {
		return nil
	}
	if c.Type != "s3" {
		return FieldErrorf("s3", "is for Type s3, not %s", c.Type)
	}
	switch x.AuthenticationType {
	case "", "access-key", "iam":
	default:
		return FieldErrorf("s3.AuthenticationType", "%q is not access-key or iam", x.AuthenticationType)
	}
	access, secret := x.AccessKeyEnv != "" || x.AccessKeyFile != "", x.SecretKeyEnv != "" || x.SecretKeyFile != ""
	switch {
	case x.AccessKeyEnv != "" && x.AccessKeyFile != "":
		return FieldErrorf("s3.access_key_file", "access_key_env and access_key_file are both set: set one")
	case x.SecretKeyEnv != "" && x.SecretKeyFile != "":
		return FieldErrorf("s3.secret_key_file", "secret_key_env and secret_key_file are both set: set one")
	case access != secret:
		return FieldErrorf("s3.access_key_env", "give both keys (access_key_env or access_key_file, and secret_key_env or secret_key_file), or neither for the host's IAM role")
	case access && x.AuthenticationType == "iam":
		return FieldErrorf("s3.AuthenticationType", "iam uses the host's IAM role: remove the keys, or use access-key")
	}
	return nil
}

// prepareCache reads the S3 keys of the runner's cache on the controller;
// a key that cannot be read fails (every plan needs it to compare).
func (g *GitLabRunner) prepareCache(c Controller) error {
	if g.state() == "absent" || g.Cache == nil || g.Cache.S3 == nil {
		return nil
	}
	x := g.Cache.S3
	var err error
	if x.AccessKey, err = readSecret(c, "cache.s3.access_key_env", x.AccessKeyEnv, "cache.s3.access_key_file", x.AccessKeyFile, "the S3 access key"); err != nil {
		return err
	}
	x.SecretKey, err = readSecret(c, "cache.s3.secret_key_env", x.SecretKeyEnv, "cache.s3.secret_key_file", x.SecretKeyFile, "the S3 secret key")
	return err
}

// readSecret reads what (a secret) on the controller from the environment
// variable env or the file file, whichever is set (neither: ""), trimmed
// of the spaces and newline around it. A file other users can read, an
// unset variable, a missing or empty file are errors naming the field.
func readSecret(c Controller, envField, env, fileField, file, what string) (string, error) {
	var raw string
	switch {
	case env != "":
		v, ok := c.lookupEnv()(env)
		if !ok {
			return "", FieldErrorf(envField, "environment variable %s is not set where dindops runs: export it with %s", env, what)
		}
		raw = v
	case file != "":
		if err := checkSecretFileMode(file, "file"); err != nil {
			return "", &FieldError{Field: fileField, Err: err}
		}
		b, err := c.readFile()(file)
		if err != nil {
			return "", FieldErrorf(fileField, "cannot read %s on the controller: %v", what, err)
		}
		raw = string(b)
	default:
		return "", nil
	}
	v := strings.TrimSpace(raw)
	field, from := envField, "environment variable "+env
	if env == "" {
		field, from = fileField, "file "+file
	}
	switch {
	case v == "":
		return "", FieldErrorf(field, "%s is empty: put %s in it", from, what)
	case strings.ContainsAny(v, "\r\n"):
		return "", FieldErrorf(field, "%s holds several lines; it should hold %s only", from, what)
	}
	return v, nil
}

// lookupEnv is c.LookupEnv, or the process's environment.
func (c Controller) lookupEnv() func(string) (string, bool) {
	if c.LookupEnv != nil {
		return c.LookupEnv
	}
	return os.LookupEnv
}

// readFile is c.ReadFile, or the controller's file system.
func (c Controller) readFile() func(string) ([]byte, error) {
	if c.ReadFile != nil {
		return c.ReadFile
	}
	return os.ReadFile
}
