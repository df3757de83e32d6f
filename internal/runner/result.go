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
	// CheckMode runs only the plays' health checks (`dindops check`).
	CheckMode Mode = "check"
)

// Result is everything a run did or would do, in inventory order. Human and
// JSON output are both rendered from it.
type Result struct {
	Mode     Mode          `json:"mode"`
	Playbook string        `json:"playbook"`
	Plays    []*PlayResult `json:"plays"`
	Recap    []*HostRecap  `json:"recap"`
	Summary  Summary       `json:"summary"`
	// Stopped says why the rollout stopped before every host had its turn
	// (max_fail_percentage, a whole batch failed, an interruption); nil
	// when it did not stop early.
	Stopped  *Stop         `json:"stopped,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// PlayResult is one play on every host it selected.
type PlayResult struct {
	Name  string        `json:"name"`
	Hosts []*HostResult `json:"hosts"`
	// Serial and MaxFailPercentage are the play's rollout settings, as
	// written ("" and nil when not set).
	Serial            string   `json:"serial,omitempty"`
	MaxFailPercentage *float64 `json:"max_fail_percentage,omitempty"`
	// Batches are the play's batches, in order, when it has a serial. In
	// plan mode they show how apply would roll out (plan runs every host
	// at once: it changes nothing).
	Batches []*BatchResult `json:"batches,omitempty"`
	// NotRun lists the hosts of this play left untouched because the
	// rollout stopped first, in inventory order.
	NotRun []string `json:"not_run,omitempty"`
	// Note says why a play ran on no host.
	Note string `json:"note,omitempty"`
}

// BatchResult is one batch of a play.
type BatchResult struct {
	Number int      `json:"number"` // from 1
	Hosts  []string `json:"hosts"`
	// Ran is false for a batch never started (the rollout stopped first).
	Ran bool `json:"ran"`
	// Failed counts the batch's hosts that failed or were unreachable.
	Failed int `json:"failed"`
}

// Stop is why a rollout stopped early and what it left untouched.
type Stop struct {
	// Play is the play in which the rollout stopped; Batch (from 1) and
	// Batches place the batch that stopped it (0 when interrupted before
	// a batch started).
	Play    string `json:"play"`
	Batch   int    `json:"batch"`
	Batches int    `json:"batches"`
	// Failed of Size hosts of that batch failed.
	Failed int `json:"failed"`
	Size   int `json:"size"`
	// Interrupted is true when the run was interrupted (Ctrl-C, SIGTERM).
	Interrupted bool `json:"interrupted,omitempty"`
	// Reason is the rule that stopped the rollout, in words.
	Reason string `json:"reason"`
	// NotRun lists every host that has a play it did not run because of
	// the stop, in inventory order.
	NotRun []string `json:"not_run"`
}

// HostResult is one play on one host.
type HostResult struct {
	Host    string `json:"host"`
	Address string `json:"address"`
	Status  Status `json:"status"`
	Error   string `json:"error,omitempty"`
	// StateUnknown is true when the connection was lost while a task was
	// running: what that task did on the host is unknown.
	StateUnknown bool `json:"state_unknown,omitempty"`
	// Interrupted is true when the run was interrupted before the play
	// ended on the host; NotStarted lists the steps it left, in order. The
	// tasks above them are exactly what the play did.
	Interrupted bool          `json:"interrupted,omitempty"`
	NotStarted  []string      `json:"not_started,omitempty"`
	Batch       int           `json:"batch,omitempty"` // the host's batch, from 1, when the play has a serial
	Tasks       []*TaskResult `json:"tasks"`
	// Health is what the play's health checks found (after its tasks and
	// handlers in apply; the current state in plan and check); nil when
	// the play has none, or the host could not be reached.
	Health   *tasks.Health `json:"health,omitempty"`
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
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	// Pending is set on a handler that runs because an earlier run left it
	// pending on the host (see PendingHandler).
	Pending *PendingHandler `json:"pending,omitempty"`
	// ApplyFailed is true when the task failed while making its changes:
	// some of them may have been made (Changes lists them all).
	ApplyFailed bool `json:"apply_failed,omitempty"`
	// Warnings are problems that did not fail the task.
	Warnings []string      `json:"warnings,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	// err is what failed the task, kept for the pending-handler record.
	err error
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
	// StateUnknown: the connection was lost in the middle of a task.
	StateUnknown bool `json:"state_unknown,omitempty"`
	// NotRun is true for a host the run never touched: the rollout
	// stopped (or was interrupted) before its turn.
	NotRun bool `json:"not_run,omitempty"`
	// Interrupted: the run was interrupted in the middle of a play on the
	// host.
	Interrupted bool `json:"interrupted,omitempty"`
	// Partial counts the tasks that failed while making their changes on
	// the host: what they changed is not known exactly.
	Partial int `json:"partial,omitempty"`
	// Health is the host's health over every play that checks it (the
	// worst of them); nil when no play checked it.
	Health *tasks.Health `json:"health,omitempty"`
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
	// NotRun is how many hosts the run never touched.
	NotRun int `json:"not_run"`
	// Partial is how many tasks failed while making their changes (an
	// interrupted or failed apply): some of their changes may be made.
	Partial int `json:"partial,omitempty"`
}

// Total is the number of changes of every action.
func (s Summary) Total() int { return s.Create + s.Update + s.Delete + s.Restart + s.Run }

// Unhealthy counts the hosts whose health is not healthy (unhealthy, or
// unknown: it could not be checked).
func (r *Result) Unhealthy() int {
	n := 0
	for _, rc := range r.Recap {
		if rc.Health != nil && (rc.Health.Status == tasks.Unhealthy || rc.Health.Status == tasks.HealthUnknown) {
			n++
		}
	}
	return n
}

// HostFailed reports whether any host failed or was unreachable.
func (r *Result) HostFailed() bool { return r.Summary.Failed > 0 }
