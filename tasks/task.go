package tasks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Task is one idempotent step of a play, bound to one host's variables.
//
// Plan reads the host and returns what Apply would change; it must not change
// anything. Apply makes exactly the changes Plan returned (it is given them
// back) and nothing else. A task whose Plan returns no changes is "ok".
type Task interface {
	Plan(ctx context.Context, h Host) ([]Change, error)
	Apply(ctx context.Context, h Host, changes []Change) error
}

// Validator is implemented by tasks whose options need checks beyond their
// types. Validate runs when the playbook is loaded, before any connection; a
// *FieldError names the offending option so the loader can point at its line.
type Validator interface {
	Validate() error
}

// Preparer is implemented by tasks that need something from the controller
// (a secret from an environment variable or a file, an HTTP client) before any
// host is contacted. Prepare runs once per host's copy of the task, after
// Validate.
type Preparer interface {
	Prepare(c Controller) error
}

// Controller is what the machine running dindops offers to tasks. Tests fill
// it with fakes; the CLI fills it from the real process.
type Controller struct {
	// LookupEnv reads an environment variable of the dindops process.
	LookupEnv func(key string) (string, bool)
	// ReadFile reads a file on the controller (secrets kept in files).
	ReadFile func(path string) ([]byte, error)
	// HTTPClient talks to services such as the GitLab API.
	HTTPClient *http.Client
}

// FieldError is an invalid option of a task. Field is the option's YAML name,
// dotted for nested options ("docker.volumes").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrorf builds a *FieldError.
func FieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// SkipError is returned by Plan when the task has nothing to do because a
// guard of its own holds (for example a command's "creates" path exists).
// The task is reported as skipped with Reason, and counts as no change.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Skip returns a *SkipError.
func Skip(format string, args ...any) error {
	return &SkipError{Reason: fmt.Sprintf(format, args...)}
}

// WarningsError is returned by Plan when the task has nothing to change
// but something the user should know that did not fail it (a GitLab that
// does not answer while the runner registered with it keeps working). The
// task is reported as ok, with the warnings.
type WarningsError struct{ Warnings []string }

func (e *WarningsError) Error() string { return "ok, with warnings: " + strings.Join(e.Warnings, "; ") }

// IsWarnings reports whether err is a *WarningsError and returns its
// warnings.
func IsWarnings(err error) ([]string, bool) {
	var w *WarningsError
	if errors.As(err, &w) {
		return w.Warnings, true
	}
	return nil, false
}

// UnchangedError is an Apply that failed before it changed anything (a
// pull that failed, GitLab refusing a registration): the result does not
// count it among the tasks that may have made part of their changes.
type UnchangedError struct{ Err error }

func (e *UnchangedError) Error() string { return e.Err.Error() }
func (e *UnchangedError) Unwrap() error { return e.Err }

// Unchanged marks err, returned by Apply, as a failure before any change;
// nil stays nil.
func Unchanged(err error) error {
	if err == nil {
		return nil
	}
	return &UnchangedError{Err: err}
}

// IsUnchanged reports whether err says that Apply changed nothing.
func IsUnchanged(err error) bool {
	var u *UnchangedError
	return errors.As(err, &u)
}

// IsSkip reports whether err is a *SkipError and returns its reason.
func IsSkip(err error) (string, bool) {
	var s *SkipError
	if errors.As(err, &s) {
		return s.Reason, true
	}
	return "", false
}
