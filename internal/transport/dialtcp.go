package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/dindops/dindops/tasks"
)

// DialTCP implements tasks.TCPDialer: a direct-tcpip channel (RFC 4254
// section 7.2) on the host's connection, so sshd opens the TCP connection
// from the host, as the login user, whatever become says (a TCP
// connection needs no privilege). Health checks use it to reach
// containers on the host's docker networks. The channel does not count
// against sshd's MaxSessions (which limits sessions only).
//
// Errors: the context's; *UnreachableError when the connection is lost;
// one matching tasks.ErrNoTCPForwarding when sshd refuses the channel
// (AllowTcpForwarding no, or a permitopen rule); one matching
// syscall.ECONNREFUSED when nothing listens at address.
func (h *host) DialTCP(ctx context.Context, address string) (net.Conn, error) {
	c := h.c
	nc, err := c.client.DialContext(ctx, "tcp", address)
	if err == nil {
		return nc, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if lerr := c.lostError("opening a TCP channel to " + address); lerr != nil {
		return nil, lerr
	}
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) {
		switch {
		case oce.Reason == ssh.Prohibited:
			return nil, fmt.Errorf("%s: sshd refused a TCP channel to %s (%s): %w", c.name, address, oce.Message, tasks.ErrNoTCPForwarding)
		case oce.Reason == ssh.ConnectionFailed && strings.Contains(strings.ToLower(oce.Message), "refused"):
			return nil, fmt.Errorf("%s: connecting to %s: %w", c.name, address, syscall.ECONNREFUSED)
		}
		return nil, fmt.Errorf("%s: connecting to %s: %s", c.name, address, oce.Message)
	}
	return nil, fmt.Errorf("%s: connecting to %s: %w", c.name, address, err)
}
