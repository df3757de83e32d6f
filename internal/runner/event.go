package runner

import (
	"time"

	"github.com/dindops/dindops/tasks"
)

// EventType names what an Event reports.
type EventType string

// The events of a run, in the order they can happen. Events of different
// hosts interleave as the hosts progress; the Result is what is in
// inventory order.
const (
	EventRunStart    EventType = "run_start"    // Mode, Playbook, Hosts (every host of the run)
	EventPlayStart   EventType = "play_start"   // Play, PlayResult (name, serial, batches)
	EventBatchStart  EventType = "batch_start"  // Play, Batch, Batches, Hosts
	EventHostStart   EventType = "host_start"   // Play, Batch, Host
	EventTaskStart   EventType = "task_start"   // Play, Host, Task, Step, Steps, Handler
	EventTaskEnd     EventType = "task_end"     // ... Status, Error, Duration, Task result
	EventHealthStart EventType = "health_start" // Play, Host, Task (the check's name)
	EventHealth      EventType = "health"       // Play, Host, Health (every check of the play)
	EventHostEnd     EventType = "host_end"     // Play, Host, Status, Error, Duration
	EventBatchEnd    EventType = "batch_end"    // Play, Batch, Batches, Failed, Results
	EventPlayEnd     EventType = "play_end"     // Play, PlayResult
	EventStopped     EventType = "rollout_stopped"
)

// Event is one step of a run as it happens, for live progress and for the
// JSON event stream. Fields not listed for its Type are empty.
type Event struct {
	Type     EventType `json:"event"`
	Time     time.Time `json:"time"`
	Mode     Mode      `json:"mode,omitempty"`
	Playbook string    `json:"playbook,omitempty"`
	Play     string    `json:"play,omitempty"`
	// Batch (from 1) and Batches place a batch in its play.
	Batch   int      `json:"batch,omitempty"`
	Batches int      `json:"batches,omitempty"`
	Hosts   []string `json:"hosts,omitempty"`
	Host    string   `json:"host,omitempty"`
	Task    string   `json:"task,omitempty"`
	// Step (from 1) of Steps places a task among the host's tasks of the
	// play; handlers have Handler set and Step 0.
	Step     int           `json:"step,omitempty"`
	Steps    int           `json:"steps,omitempty"`
	Handler  bool          `json:"handler,omitempty"`
	Status   Status        `json:"status,omitempty"`
	Error    string        `json:"error,omitempty"`
	Failed   int           `json:"failed,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Result is the task's result (task_end).
	Result *TaskResult `json:"result,omitempty"`
	// Health is what the play's health checks found (health).
	Health *tasks.Health `json:"health,omitempty"`
	// Stop is why the rollout stopped (rollout_stopped).
	Stop *Stop `json:"stop,omitempty"`

	// PlayResult is the play so far (play_start: name and batches; play_end:
	// everything). Results are the batch's hosts in inventory order
	// (batch_end). Both are for renderers in this process; the JSON stream
	// carries them in the final result instead.
	PlayResult *PlayResult   `json:"-"`
	Results    []*HostResult `json:"-"`
}
