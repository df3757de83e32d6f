package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/ssh"
)

// DefaultMaxSessions is how many channels (commands, the run lock) one
// connection keeps open at once unless Config.MaxSessions says otherwise:
// below OpenSSH's MaxSessions (10 by default), leaving room for the SFTP
// session. Further commands queue until one ends.
const DefaultMaxSessions = 8

// DefaultMaxHandshakes is how many SSH handshakes (TCP connect, key
// exchange, login) a Pool runs at once towards one endpoint: below OpenSSH's
// MaxStartups (10:30:100 by default), at which sshd starts dropping
// connections that have not logged in yet.
const DefaultMaxHandshakes = 8

// sessionLimiter bounds the channels open on one connection. Its limit
// starts at Config.MaxSessions and drops when the host refuses a channel
// while others are open (its MaxSessions is lower than ours): the refused
// command then queues for a slot instead of failing, and the connection and
// the commands running on it are untouched.
type sessionLimiter struct {
	mu        sync.Mutex
	limit     int
	inUse     int
	permanent int           // slots held for the connection's lifetime (the run lock)
	freed     chan struct{} // closed and replaced whenever a slot is freed
}

func newSessionLimiter(limit int) *sessionLimiter {
	return &sessionLimiter{limit: max(limit, 1), freed: make(chan struct{})}
}

// acquire waits for a slot. permanent marks a slot that is held until the
// connection ends, which refused never waits for.
func (l *sessionLimiter) acquire(ctx context.Context, permanent bool) error {
	for {
		l.mu.Lock()
		if l.inUse < l.limit {
			l.inUse++
			if permanent {
				l.permanent++
			}
			l.mu.Unlock()
			return nil
		}
		wait := l.freed
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release frees a slot taken by acquire.
func (l *sessionLimiter) release(permanent bool) {
	l.mu.Lock()
	l.inUse--
	if permanent {
		l.permanent--
	}
	close(l.freed)
	l.freed = make(chan struct{})
	l.mu.Unlock()
}

// refused is called by the holder of a (non-permanent) slot whose channel
// the host refused. When other commands hold slots, the limit drops to what
// the host accepted, the caller's slot is freed and refused returns true
// with the new limit: acquire again and retry once a command ends. When
// nothing else is open that will end, it returns false and the slot stays
// taken (the caller releases it as usual): the refusal is final.
func (l *sessionLimiter) refused() (queued bool, limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	others := l.inUse - 1 - l.permanent
	if others <= 0 {
		return false, l.limit
	}
	l.limit = max(l.inUse-1, l.permanent+1)
	l.inUse--
	close(l.freed)
	l.freed = make(chan struct{})
	return true, l.limit
}

// lower is called by the holder of a slot whose use the host turned down
// (a handshake dropped before the login): the limit drops to the slots in
// use but this one (at least 1), for the callers that come next.
func (l *sessionLimiter) lower() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit = max(min(l.limit, l.inUse-1), 1)
	return l.limit
}

// raise lifts the limit by one, up to ceiling, after a success.
func (l *sessionLimiter) raise(ceiling int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limit < ceiling {
		l.limit++
		close(l.freed)
		l.freed = make(chan struct{})
	}
}

// current returns the limit in force and the slots in use.
func (l *sessionLimiter) current() (limit, inUse int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.inUse
}

// newSession opens a session channel under the connection's limit. A
// channel the host refuses while other commands hold channels lowers the
// limit and waits for one of them to end (logged with -v), instead of
// failing or touching the connection; refused with nothing else open, it
// fails this command only. permanent marks a session held for the
// connection's lifetime. release frees the slot (after closing the session).
func (c *Conn) newSession(ctx context.Context, what string, permanent bool) (*ssh.Session, func(), error) {
	for {
		if err := c.sessions.acquire(ctx, permanent); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		c.commands.Add(1)
		sess, err := c.client.NewSession()
		if err == nil {
			var once sync.Once
			return sess, func() { once.Do(func() { c.sessions.release(permanent) }) }, nil
		}
		var refused *ssh.OpenChannelError
		if errors.As(err, &refused) && !permanent {
			if queued, limit := c.sessions.refused(); queued {
				c.log.Info("the host refused another session (its MaxSessions is lower than ours): queueing", "cmd", what, "sessions", limit, "reason", refused.Message)
				continue
			}
		}
		c.sessions.release(permanent)
		if lerr := c.lostError("opening a session for " + what); lerr != nil {
			return nil, nil, lerr
		}
		if refused != nil {
			limit, _ := c.sessions.current()
			return nil, nil, fmt.Errorf("%s: the host refused to open a session: %s (%q); is its sshd MaxSessions below %d?", what, refused.Reason, refused.Message, limit)
		}
		return nil, nil, fmt.Errorf("%s: open session: %w", what, err)
	}
}
