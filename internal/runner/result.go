package runner

import (
	"time"

	"github.com/dindops/dindops/tasks"
)

// Status is the outcome of a task on a host, or of a host in a play.
type Status string

// Outcomes, with Ansible's words.
const (
	OK          Status = "ok"
	Changed     Status = "changed"
	Failed      Status = "failed"
	Skipped     Status = "skipped"
	Unreachable Status = "unreachable"
)

// Mode says whether a run only plans or also applies.
type Mode string

// The modes of a run.
const (
	PlanMode  Mode = "plan"
	ApplyMode Mode = "apply"
)

// Result is everything a run did or would do, in inventory order. Human and
// JSON output are both rendered from it.
type Result struct {
	Mode     Mode          `json:"mode"`
	Playbook string        `json:"playbook"`
	Plays    []*PlayResult `json:"plays"`
	Recap    []*HostRecap  `json:"recap"`
	Summary  Summary       `json:"summary"`
	Duration time.Duration `json:"duration_ns"`
}

// PlayResult is one play on every host it selected.
type PlayResult struct {
	Name  string        `json:"name"`
	Hosts []*HostResult `json:"hosts"`
	// Note says why a play ran on no host.
	Note string `json:"note,omitempty"`
}

// HostResult is one play on one host.
type HostResult struct {
	Host     string        `json:"host"`
	Address  string        `json:"address"`
	Status   Status        `json:"status"`
	Error    string        `json:"error,omitempty"`
	Tasks    []*TaskResult `json:"tasks"`
	Duration time.Duration `json:"duration_ns"`
}

// TaskResult is one task (or handler) on one host.
type TaskResult struct {
	Name    string         `json:"name"`
	Kind    string         `json:"kind"`
	Handler bool           `json:"handler,omitempty"`
	Status  Status         `json:"status"`
	Changes []tasks.Change `json:"changes,omitempty"`
	// Reason says why a task was skipped.
	Reason   string        `json:"reason,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// HostRecap counts a host's task outcomes over the whole run.
type HostRecap struct {
	Host        string        `json:"host"`
	OK          int           `json:"ok"`
	Changed     int           `json:"changed"`
	Failed      int           `json:"failed"`
	Skipped     int           `json:"skipped"`
	Unreachable int           `json:"unreachable"`
	Duration    time.Duration `json:"duration_ns"`
	// Error is the host's failure, when it failed or was unreachable.
	Error string `json:"error,omitempty"`
}

// Summary counts planned or applied changes by action.
type Summary struct {
	Create  int `json:"create"`
	Update  int `json:"update"`
	Delete  int `json:"delete"`
	Restart int `json:"restart"`
	Run     int `json:"run"`
	// Hosts is how many hosts have at least one change.
	Hosts int `json:"hosts"`
	// Failed is how many hosts failed or were unreachable.
	Failed int `json:"failed"`
}

// Total is the number of changes of every action.
func (s Summary) Total() int { return s.Create + s.Update + s.Delete + s.Restart + s.Run }

// HostFailed reports whether any host failed or was unreachable.
func (r *Result) HostFailed() bool { return r.Summary.Failed > 0 }
