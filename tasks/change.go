package tasks

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Action is what a change does to a host. Its value is the symbol shown in
// plan output; its text form (JSON) is the word.
type Action rune

// The actions, with the symbols used in plans.
const (
	Create  Action = '+'
	Update  Action = '~'
	Delete  Action = '-'
	Restart Action = '↻'
	// Run is a command whose effect dindops cannot predict: it would run,
	// and what it changes is unknown until it has.
	Run Action = '>'
)

var actionWords = map[Action]string{Create: "create", Update: "update", Delete: "delete", Restart: "restart", Run: "run"}

// String returns the action's word ("create", "update", ...).
func (a Action) String() string {
	if w, ok := actionWords[a]; ok {
		return w
	}
	return fmt.Sprintf("Action(%q)", rune(a))
}

// Symbol returns the one-character symbol used in plans.
func (a Action) Symbol() string { return string(rune(a)) }

// MarshalText gives the action's word, so JSON output reads "create".
func (a Action) MarshalText() ([]byte, error) {
	if _, ok := actionWords[a]; !ok {
		return nil, fmt.Errorf("unknown action %q", rune(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText reads the word written by MarshalText.
func (a *Action) UnmarshalText(b []byte) error {
	for k, w := range actionWords {
		if w == string(b) {
			*a = k
			return nil
		}
	}
	return fmt.Errorf("unknown action %q", b)
}

// SensitiveValue is what is shown in place of a secret.
const SensitiveValue = "(sensitive value)"

// Change is one thing a task would change (plan) or changed (apply) on a host.
type Change struct {
	Action Action `json:"action"`
	// Resource is the kind of thing changed: "file", "kernel_module",
	// "container", "network", "service", "runner", "command".
	Resource string `json:"resource"`
	// Target names it on the host: a path, a container or network name, a
	// module, a service, a runner name.
	Target string `json:"target"`
	// Summary is one line saying what and why, e.g. "recreate: env differs".
	Summary string `json:"summary,omitempty"`
	// Fields lists the values that differ, in a stable order.
	Fields []Field `json:"fields,omitempty"`
	// Diff is a unified diff for file content (secrets already masked).
	Diff string `json:"diff,omitempty"`
	// Warnings are things the user should know before applying.
	Warnings []string `json:"warnings,omitempty"`
	// Applied holds what is known only once Apply has made the change (the
	// space a prune freed, what it kept because it came into use since the
	// plan): Apply sets it on the changes it is given, as fields with only
	// New set. Empty in plans.
	Applied []Field `json:"applied,omitempty"`
	// Payload is the task's own record of how to make the change; Apply reads
	// it. It never reaches output.
	Payload any `json:"-"`
}

// Field is one value that differs between a host and the desired state.
type Field struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
	// Sensitive hides both values in every rendering, JSON included. Tasks
	// should not put a secret here at all; this is the second line of defence.
	Sensitive bool `json:"sensitive,omitempty"`
}

// MarshalJSON writes the field with secrets masked.
func (f Field) MarshalJSON() ([]byte, error) {
	type plain Field
	p := plain(f)
	p.Old, p.New = f.Shown()
	return json.Marshal(p)
}

// Shown returns old and new as they may be displayed: SensitiveValue for
// secrets.
func (f Field) Shown() (old, new string) {
	if f.Sensitive {
		o, n := SensitiveValue, SensitiveValue
		if f.Old == "" {
			o = ""
		}
		if f.New == "" {
			n = ""
		}
		return o, n
	}
	return f.Old, f.New
}

// FieldNames returns the names of fs joined by ", ", for summaries.
func FieldNames(fs []Field) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
