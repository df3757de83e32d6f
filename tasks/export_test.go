package tasks

import "time"

// SetHealthRetry shortens the pause between a health check's tries while it
// settles (tests only).
func SetHealthRetry(r *RunnerHealth, every time.Duration) {
	r.retryEvery = every
	r.handshakeTimeout = 200 * time.Millisecond
}
