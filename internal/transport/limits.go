package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultMaxSessions is how many sessions (commands, the SFTP session, the
// run lock, docker dial-stdio) one connection keeps open at once unless
// Config.MaxSessions says otherwise: below OpenSSH's MaxSessions (10 by
// default). Further sessions queue until one ends. Forwarded channels
// (direct-streamlocal to the docker socket, direct-tcpip) are not
// sessions: OpenSSH's MaxSessions does not count them, nor does this.
const DefaultMaxSessions = 8

// DefaultMaxHandshakes is how many SSH handshakes (TCP connect, key
// exchange, login) a Pool runs at once towards one endpoint: below OpenSSH's
// MaxStartups (10:30:100 by default), at which sshd starts dropping
// connections that have not logged in yet.
const DefaultMaxHandshakes = 8

// sessionLimiter bounds the sessions open on one connection. Its limit
// starts at Config.MaxSessions and drops when the host refuses a session
// while others are open (its MaxSessions is lower than ours): the refused
// command then queues for a slot instead of failing, and the connection and
// the commands running on it are untouched.
//
// Some sessions last long: the cached SFTP session, idle dial-stdio
// connections of the Docker client, the run lock. A caller that has to wait
// calls reclaim, with which the connection closes what is idle among them
// (and, when the lock holds every slot the host allows, hands the lock to
// a process on the host), so that a low MaxSessions never starves a command.
type sessionLimiter struct {
	mu        sync.Mutex
	limit     int
	inUse     int
	permanent int           // slots held for the connection's lifetime (the run lock)
	waiting   int           // callers of acquire waiting for a slot
	freed     chan struct{} // closed and replaced whenever a slot is freed

	// reclaim, when set, frees idle long-lived sessions for a waiting
	// caller; it is called without mu held, with the limit and the
	// permanent slots, and says whether it freed one.
	reclaim func(limit, permanent int) bool
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
		l.waiting++
		reclaim, limit, permanent := l.reclaim, l.limit, l.permanent
		l.mu.Unlock()
		if reclaim != nil {
			reclaim(limit, permanent)
		}
		var err error
		select {
		case <-wait:
		case <-ctx.Done():
			err = ctx.Err()
		}
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// contended says whether a caller waits for a slot: a long-lived session
// that becomes idle then closes.
func (l *sessionLimiter) contended() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting > 0
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

// refused is called by the holder of a (non-permanent) slot whose session
// the host refused. When other sessions are open, the limit drops to what
// the host accepted, the caller's slot is freed and refused returns true
// with the new limit: acquire again and retry once a session ends (a
// long-lived one is reclaimed for the waiting caller, see reclaim). When
// nothing else is open, it returns false and the slot stays taken (the
// caller releases it as usual).
func (l *sessionLimiter) refused() (queued bool, limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	others := l.inUse - 1
	if others <= 0 {
		return false, l.limit
	}
	l.limit = others
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

// refusedRetries are the waits before retrying a session the host refused
// while no other session was open.
var refusedRetries = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}

// newSession opens a session channel under the connection's limit. A
// channel the host refuses while other commands hold channels lowers the
// limit and waits for one of them to end (logged with -v), instead of
// failing or touching the connection; refused with nothing else open, it
// fails this command only. permanent marks a session held for the
// connection's lifetime. release frees the slot (after closing the session).
func (c *Conn) newSession(ctx context.Context, what string, permanent bool) (*ssh.Session, func(), error) {
	retries := 0
	for {
		if err := c.sessions.acquire(ctx, permanent); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		sess, err := c.client.NewSession()
		if err == nil {
			if what != sftpSession {
				c.commands.Add(1) // Stats.Commands: the SFTP session is not a command
			}
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
		if refused != nil && retries < len(refusedRetries) {
			// Nothing else is open: a session that just ended may not be
			// freed by sshd yet (it frees it once it has read our close).
			c.log.Debug("the host refused a session with none other open: retrying", "cmd", what, "reason", refused.Message)
			select {
			case <-time.After(refusedRetries[retries]):
				retries++
				continue
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("%s: %w", what, ctx.Err())
			}
		}
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
