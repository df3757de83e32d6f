package transport

import (
	"errors"
	"fmt"

	"github.com/pkg/sftp"
)

// errNoSFTP is a host without the SFTP subsystem; writes then send the
// content on a command's standard input.
var errNoSFTP = errors.New("SFTP subsystem not available")

// sftpClient returns the connection's SFTP client, opening it on first use
// in a session of its own on the same connection.
func (c *Conn) sftpClient() (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	if c.sftpErr != nil {
		return nil, c.sftpErr
	}
	if err := c.lostError("opening sftp"); err != nil {
		return nil, err
	}
	sess, err := c.client.NewSession()
	if err != nil {
		if lerr := c.lostError("opening sftp"); lerr != nil {
			return nil, lerr
		}
		return nil, fmt.Errorf("sftp: open session: %w", err)
	}
	w, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("sftp: %w", err)
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("sftp: %w", err)
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		sess.Close()
		if lerr := c.lostError("opening sftp"); lerr != nil {
			return nil, lerr
		}
		c.log.Debug("no SFTP subsystem: uploads go through stdin", "err", err)
		c.sftpErr = errNoSFTP
		return nil, errNoSFTP
	}
	cl, err := sftp.NewClientPipe(r, w)
	if err != nil {
		sess.Close()
		if lerr := c.lostError("opening sftp"); lerr != nil {
			return nil, lerr
		}
		return nil, fmt.Errorf("sftp: %w", err)
	}
	c.log.Debug("sftp opened")
	c.sftp = cl
	return cl, nil
}
