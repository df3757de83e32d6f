package transport

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// keys is what a login can offer: the signers of ssh-agent and of the
// identity files, with a description of each source for error messages.
type keys struct {
	signers []ssh.Signer
	methods []string
	skipped []*IdentityError
	agent   net.Conn // closed once the handshake is over
}

func (k *keys) close() {
	if k.agent != nil {
		k.agent.Close()
	}
}

// loadKeys collects the signers of cfg's agent socket and identity files.
// An unusable agent or identity file is skipped (and noted); it is an error
// only when nothing at all can be offered.
func loadKeys(cfg *Config, c *Conn) (*keys, error) {
	k := &keys{}
	if cfg.AgentSocket != "" {
		conn, err := net.Dial("unix", cfg.AgentSocket)
		if err != nil {
			c.log.Debug("ssh-agent unavailable", "socket", cfg.AgentSocket, "err", err)
		} else {
			k.agent = conn
			signers, err := agent.NewClient(conn).Signers()
			if err != nil {
				c.log.Debug("ssh-agent gave no keys", "socket", cfg.AgentSocket, "err", err)
			}
			k.signers = append(k.signers, signers...)
			k.methods = append(k.methods, fmt.Sprintf("ssh-agent (%d keys)", len(signers)))
		}
	}
	for _, path := range cfg.IdentityFiles {
		s, err := loadIdentity(path)
		if err != nil {
			c.log.Debug("identity file skipped", "err", err)
			k.skipped = append(k.skipped, err)
			continue
		}
		k.signers = append(k.signers, s)
		k.methods = append(k.methods, fmt.Sprintf("%s (%s %s)", path, s.PublicKey().Type(), ssh.FingerprintSHA256(s.PublicKey())))
	}
	if len(k.signers) == 0 {
		k.close()
		e := &AuthError{User: cfg.User, Host: c.name, Skipped: k.skipped}
		if len(k.skipped) > 0 {
			e.Err = k.skipped[0]
			e.Skipped = k.skipped[1:]
		}
		return nil, e
	}
	return k, nil
}

// loadIdentity reads one private key file (OpenSSH or PEM format).
func loadIdentity(path string) (ssh.Signer, *IdentityError) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &IdentityError{Path: path, Err: err}
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, &IdentityError{Path: path, Encrypted: true, Err: err}
		}
		return nil, &IdentityError{Path: path, Err: err}
	}
	return s, nil
}

// authMethod offers every key in one "publickey" method: the SSH library
// tries each method name only once, so separate methods for the agent and
// the files would leave all but the first untried.
func (k *keys) authMethod() ssh.AuthMethod {
	return ssh.PublicKeys(k.signers...)
}
