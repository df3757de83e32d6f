package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sync"
	"time"

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
