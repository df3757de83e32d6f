package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/pkg/sftp"
)

// errNoSFTP is a host without the SFTP subsystem; writes then send the
// content on a command's standard input.
var errNoSFTP = errors.New("SFTP subsystem not available")

// sftpSession names the SFTP session in logs and errors.
const sftpSession = "sftp"

// sftpClient returns the connection's SFTP client, opening it on first use
// in a session of its own on the same connection, under the connection's
// session limit. The caller calls done when it has finished this use (and
// must not use the client after): the session stays open for the next use,
// unless another caller waits for a session slot, when the last use to end
// closes it (see reclaimSFTP); the next use opens it again. A use must not
// wait for another session (run a command) before done, or at a
// MaxSessions of 1 it would wait for itself.
func (c *Conn) sftpClient(ctx context.Context) (cl *sftp.Client, done func(), err error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp == nil {
		if err := c.openSFTP(ctx); err != nil {
			return nil, nil, err
		}
	}
	c.sftpUsers++
	cl = c.sftp
	var ended bool
	return cl, func() {
		c.sftpMu.Lock()
		defer c.sftpMu.Unlock()
		if ended {
			return
		}
		ended = true
		c.sftpUsers--
		if c.sftpUsers == 0 && c.sftp == cl && c.sessions.contended() {
			c.log.Debug("sftp closed: another session waits for a slot")
			c.closeSFTP()
		}
	}, nil
}

// openSFTP opens the SFTP session (c.sftpMu held).
func (c *Conn) openSFTP(ctx context.Context) error {
	if c.sftpErr != nil {
		return c.sftpErr
	}
	if err := c.lostError("opening sftp"); err != nil {
		return err
	}
	sess, free, err := c.newSession(ctx, sftpSession, false)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		sess.Close()
		free()
		if lerr := c.lostError("opening sftp"); lerr != nil {
			return lerr
		}
		return err
	}
	w, err := sess.StdinPipe()
	if err != nil {
		return fail(fmt.Errorf("sftp: %w", err))
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		return fail(fmt.Errorf("sftp: %w", err))
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		err = fail(errNoSFTP)
		if errors.Is(err, errNoSFTP) {
			c.log.Debug("no SFTP subsystem: uploads go through stdin")
			c.sftpErr = errNoSFTP
		}
		return err
	}
	cl, err := sftp.NewClientPipe(r, w)
	if err != nil {
		return fail(fmt.Errorf("sftp: %w", err))
	}
	c.log.Debug("sftp opened")
	c.sftp, c.sftpSess, c.sftpFree = cl, sess, free
	return nil
}

// closeSFTP closes the SFTP session and frees its slot (c.sftpMu held).
func (c *Conn) closeSFTP() {
	if c.sftp == nil {
		return
	}
	c.sftp.Close()
	c.sftpSess.Close()
	c.sftpFree()
	c.sftp, c.sftpSess, c.sftpFree = nil, nil, nil
}

// reclaimSFTP closes the SFTP session when no one uses it, for a caller
// waiting for a session slot; it says whether it did. A use in progress
// closes it when it ends (see sftpClient).
func (c *Conn) reclaimSFTP() bool {
	if !c.sftpMu.TryLock() {
		return false // being opened or ended: its holder sees the waiter
	}
	defer c.sftpMu.Unlock()
	if c.sftp == nil || c.sftpUsers > 0 {
		return false
	}
	c.log.Debug("sftp closed: another session waits for a slot")
	c.closeSFTP()
	return true
}

// reclaim frees idle long-lived sessions for a caller of the session
// limiter that waits: the SFTP session when idle, the Docker client's idle
// dial-stdio connections, and, when the run lock holds every slot the host
// allows (MaxSessions 1), the lock's session, handing the lock to a
// process on the host (see detachLock).
func (c *Conn) reclaim(limit, permanent int) bool {
	freed := c.reclaimSFTP()
	c.dockerMu.Lock()
	for _, d := range c.dockers {
		if d != nil && d.viaStdio() {
			d.close()
		}
	}
	c.dockerMu.Unlock()
	if permanent > 0 && limit <= permanent {
		freed = c.detachLock() || freed
	}
	return freed
}
