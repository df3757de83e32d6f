// Package interrupt turns SIGINT and SIGTERM into the stages of a graceful
// stop, the way a run that changes hosts must stop:
//
//  1. the first signal stops new steps from starting (Stopping is closed);
//     the steps already changing a host go on, to finish;
//  2. when the grace period has passed since then, Context is cancelled:
//     the steps still running are cancelled, and undo what they can (see
//     tasks.UndoContext) within what is left of their own bound;
//  3. a second signal cancels Force, and Context with it: nothing waits
//     any more.
//
// GitLab CI cancels a job with SIGTERM, then SIGKILL after its own grace.
package interrupt

import (
	"context"
	"os"
	"sync"
	"syscall"
	"time"
)

// DefaultGrace is how long steps in progress may take to finish after the
// first signal.
const DefaultGrace = 60 * time.Second

// Stopper watches for signals; see the package doc.
type Stopper struct {
	stopping chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	force    context.Context
	forceFn  context.CancelFunc

	mu    sync.Mutex
	grace time.Duration
	sig   os.Signal
	timer *time.Timer
}

type key struct{}

// Watch starts a Stopper on the signals sent to sigs (signal.Notify's
// channel; tests send their own). Its contexts derive from parent.
func Watch(parent context.Context, sigs <-chan os.Signal) *Stopper {
	s := &Stopper{stopping: make(chan struct{}), grace: DefaultGrace}
	s.force, s.forceFn = context.WithCancel(parent)
	s.ctx, s.cancel = context.WithCancel(context.WithValue(s.force, key{}, s))
	go s.loop(sigs)
	return s
}

func (s *Stopper) loop(sigs <-chan os.Signal) {
	for {
		select {
		case <-s.force.Done():
			return
		case sig := <-sigs:
			s.mu.Lock()
			first := s.sig == nil
			if first {
				s.sig = sig
				close(s.stopping)
				s.timer = time.AfterFunc(s.grace, s.cancel)
			}
			s.mu.Unlock()
			if !first {
				s.forceFn()
				return
			}
		}
	}
}

// FromContext returns the Stopper whose Context ctx is (or derives from),
// or nil.
func FromContext(ctx context.Context) *Stopper {
	s, _ := ctx.Value(key{}).(*Stopper)
	return s
}

// SetGrace sets the grace period (before the first signal; later calls
// change nothing once it has started).
func (s *Stopper) SetGrace(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sig == nil && d > 0 {
		s.grace = d
	}
}

// Grace returns the grace period.
func (s *Stopper) Grace() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grace
}

// Context is cancelled when the grace period after the first signal ends,
// or at the second signal. It carries the Stopper (FromContext).
func (s *Stopper) Context() context.Context { return s.ctx }

// Stopping is closed at the first signal.
func (s *Stopper) Stopping() <-chan struct{} { return s.stopping }

// Force is cancelled at the second signal only.
func (s *Stopper) Force() context.Context { return s.force }

// Signal is the first signal received, or nil.
func (s *Stopper) Signal() os.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig
}

// ExitCode is the shell's exit status for a process ended by the first
// signal: 128 + its number (130 for SIGINT, 143 for SIGTERM); 0 when no
// signal came.
func (s *Stopper) ExitCode() int {
	sig, ok := s.Signal().(syscall.Signal)
	if !ok {
		return 0
	}
	return 128 + int(sig)
}

// Stop releases the Stopper's timer and contexts.
func (s *Stopper) Stop() {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.cancel()
	s.forceFn()
}
