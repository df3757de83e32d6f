package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/charmbracelet/log"

	"github.com/dindops/dindops/tasks"
)

// DefaultPendingPath is the file on each host that records handlers notified
// by a change whose run did not get as far as running them (a later task
// failed, the connection was lost, the run was interrupted). The next apply
// runs them, and plan shows them, although the change that notified them is
// no longer a change.
const DefaultPendingPath = "/var/lib/dindops/pending-handlers.json"

// PendingHandler is one handler left pending on a host.
type PendingHandler struct {
	Play    string `json:"play"`
	Handler string `json:"handler"`
	// NotifiedBy is the task whose change notified the handler.
	NotifiedBy string    `json:"notified_by"`
	Since      time.Time `json:"since"`
	Playbook   string    `json:"playbook"`
	// LastRun is what happened when the handler last ran and failed, so
	// it is still pending.
	LastRun *HandlerRun `json:"last_run,omitempty"`
}

// HandlerRun is one failed run of a pending handler.
type HandlerRun struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
	// Restored are the configuration files the handler put back to their
	// previous content when its service did not come up with the new one
	// (see tasks.RestoredError).
	Restored []string `json:"restored,omitempty"`
	// Running says whether the service ran again after that.
	Running bool `json:"running,omitempty"`
}

// pendingFile is the content of the record: written whole, atomically.
type pendingFile struct {
	Version  int               `json:"version"`
	Handlers []*PendingHandler `json:"handlers"`
}

// pendingState is one host's record, read once per run (when the first play
// with handlers reaches the host) and kept in memory after that: the host
// runs one play at a time, and its run lock keeps other runs out.
type pendingState struct {
	mu       sync.Mutex
	loaded   bool
	handlers []*PendingHandler
	dirMade  bool
}

func (s *pendingState) find(play, handler string) *PendingHandler {
	for _, p := range s.handlers {
		if p.Play == play && p.Handler == handler {
			return p
		}
	}
	return nil
}

// pendingError is a record that could not be read or written.
type pendingError struct {
	Path string
	Op   string
	Err  error
}

func (e *pendingError) Error() string {
	return fmt.Sprintf("%s pending handlers (%s): %v", e.Op, e.Path, e.Err)
}

func (e *pendingError) Unwrap() error { return e.Err }

// load reads the record (a missing file is an empty record). It only reads:
// plan calls it too.
func (s *pendingState) load(ctx context.Context, h tasks.Host, file string) error {
	if s.loaded {
		return nil
	}
	f, exists, err := tasks.ReadFileIfExists(ctx, h, file)
	if err != nil {
		return &pendingError{Path: file, Op: "read", Err: err}
	}
	if exists && len(bytes.TrimSpace(f.Content)) > 0 {
		var pf pendingFile
		if err := json.Unmarshal(f.Content, &pf); err != nil {
			return &pendingError{Path: file, Op: "read", Err: fmt.Errorf("not a dindops record: %v (move it away to start afresh)", err)}
		}
		for _, p := range pf.Handlers {
			if p != nil && p.Handler != "" {
				s.handlers = append(s.handlers, p)
			}
		}
	}
	s.loaded = true
	return nil
}

// add records handlers as pending and writes the record when one is new.
func (s *pendingState) add(ctx context.Context, h tasks.Host, file string, list []*PendingHandler) error {
	added := false
	for _, p := range list {
		if s.find(p.Play, p.Handler) == nil {
			s.handlers = append(s.handlers, p)
			added = true
		}
	}
	if !added {
		return nil
	}
	return s.save(ctx, h, file)
}

// failed records on the handler's entry what its failed run did, and
// writes the record.
func (s *pendingState) failed(ctx context.Context, h tasks.Host, file, play, handler string, run *HandlerRun) error {
	p := s.find(play, handler)
	if p == nil {
		return nil
	}
	p.LastRun = run
	return s.save(ctx, h, file)
}

// handlerFailed records a failed handler's run in the host's record.
func (r *run) handlerFailed(ctx context.Context, h tasks.Host, ps *pendingState, play, handler string, tr *TaskResult, logger *log.Logger) {
	run := &HandlerRun{At: r.o.Now().UTC(), Error: tr.Error}
	var re *tasks.RestoredError
	if errors.As(tr.err, &re) {
		run.Restored, run.Running = re.RestoredFiles(), re.Running
	}
	if ctx.Err() != nil {
		return // nothing can be written now; the entry stays as it was
	}
	if err := ps.failed(ctx, h, r.o.PendingPath, play, handler, run); err != nil {
		logger.Warn("cannot record a failed handler", "err", err)
	}
}

// remove clears a handler that ran and writes the record when it changed.
func (s *pendingState) remove(ctx context.Context, h tasks.Host, file, play, handler string) error {
	kept := s.handlers[:0:0]
	for _, p := range s.handlers {
		if p.Play != play || p.Handler != handler {
			kept = append(kept, p)
		}
	}
	if len(kept) == len(s.handlers) {
		return nil
	}
	s.handlers = kept
	return s.save(ctx, h, file)
}

// save writes the record atomically, or removes the file when nothing is
// pending any more.
func (s *pendingState) save(ctx context.Context, h tasks.Host, file string) error {
	if len(s.handlers) == 0 {
		if _, err := tasks.Exec(ctx, h, "rm", "-f", file); err != nil {
			return &pendingError{Path: file, Op: "clear", Err: err}
		}
		return nil
	}
	if !s.dirMade {
		if _, err := tasks.Exec(ctx, h, "mkdir", "-p", "-m", "0755", path.Dir(file)); err != nil {
			return &pendingError{Path: file, Op: "record", Err: err}
		}
		s.dirMade = true
	}
	data, err := json.MarshalIndent(pendingFile{Version: 1, Handlers: s.handlers}, "", "  ")
	if err != nil {
		return &pendingError{Path: file, Op: "record", Err: err}
	}
	if err := h.WriteFile(ctx, file, append(data, '\n'), tasks.WriteOptions{Mode: 0o644}); err != nil {
		return &pendingError{Path: file, Op: "record", Err: err}
	}
	return nil
}
