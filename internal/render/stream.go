package render

import (
	"encoding/json"
	"io"
	"sync"

	"github.com/dindops/dindops/internal/runner"
)

// Stream writes a run as JSON lines (one JSON object per line, "JSON
// Lines"): each event as it happens ({"event": "task_start", ...}), then
// the whole result as the last line ({"event": "result", ...}, the same
// fields as JSON's document). Invalid UTF-8 from hosts becomes U+FFFD and
// secrets are masked by the types themselves, so every line is valid JSON
// that shows no secret.
type Stream struct {
	mu  sync.Mutex
	enc *json.Encoder
	err error
}

// NewStream returns a Stream writing to w.
func NewStream(w io.Writer) *Stream {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Stream{enc: enc}
}

// Event writes one event line. The first write error is kept (see Err) and
// later events are dropped.
func (s *Stream) Event(e runner.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = s.enc.Encode(e)
	}
}

// finalResult is the last line: the result with "event": "result".
type finalResult struct {
	Event string `json:"event"`
	*runner.Result
}

// Result writes the final line.
func (s *Stream) Result(r *runner.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = s.enc.Encode(finalResult{Event: "result", Result: r})
	}
	return s.err
}

// Err returns the first write error.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
