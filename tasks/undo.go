package tasks

import (
	"context"
	"time"
)

type forceKey struct{}

// WithForce returns ctx carrying force, the context that a forced stop (a
// second interrupt) cancels; UndoContext derives from it. The runner sets
// it; without it, undo is bounded by its timeout only.
func WithForce(ctx, force context.Context) context.Context {
	return context.WithValue(ctx, forceKey{}, force)
}

// UndoContext returns the context in which a task finishes or undoes a
// change after ctx was cancelled (an interrupt whose grace period ran out,
// a task timeout): it keeps ctx's values but not its cancellation, is
// cancelled by a forced stop (see WithForce), and ends after d at most.
// A recreation that was cancelled uses it to start the drained runner
// again; a docker restart, to leave docker running.
func UndoContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	u, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	force, _ := ctx.Value(forceKey{}).(context.Context)
	if force == nil {
		return u, cancel
	}
	if force.Err() != nil {
		cancel() // forced already: no undo
		return u, cancel
	}
	stop := context.AfterFunc(force, cancel)
	return u, func() { stop(); cancel() }
}

// undoTimeout bounds the work of undoing an interrupted change.
const undoTimeout = 90 * time.Second
