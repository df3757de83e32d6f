package main

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"github.com/charmbracelet/log"
	"github.com/spf13/cobra"

	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/internal/transport"
	"github.com/dindops/dindops/inventory"
)

// sshOptions are the SSH flags of plan and apply.
type sshOptions struct {
	knownHosts        []string
	insecure          bool
	connectTimeout    time.Duration
	connectTimeoutSet bool
	keepaliveInterval time.Duration
	keepaliveCountMax int
}

func (o *sshOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&o.knownHosts, "known-hosts", nil, "known_hosts file to check host keys against (repeatable; default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, or the inventory's known_hosts)")
	f.BoolVar(&o.insecure, "ssh-insecure-ignore-host-key", false, "DANGEROUS: accept any host key, so anyone on the network path can impersonate your hosts and receive your secrets")
	f.DurationVar(&o.connectTimeout, "connect-timeout", transport.DefaultConnectTimeout, "time allowed to connect and log in to a host")
	f.DurationVar(&o.keepaliveInterval, "ssh-keepalive-interval", transport.DefaultKeepaliveInterval, "interval between SSH keepalives; a host silent for this × --ssh-keepalive-count-max is reported lost")
	f.IntVar(&o.keepaliveCountMax, "ssh-keepalive-count-max", transport.DefaultKeepaliveCountMax, "unanswered keepalives before a connection is declared lost")
}

// sshConnector opens transport connections for inventory hosts.
type sshConnector struct {
	o      *sshOptions
	logger *log.Logger
	user   string
	home   string
	mu     sync.Mutex
	conns  map[string]*transport.Conn
}

func (o *sshOptions) connector(logger *log.Logger) (*sshConnector, error) {
	c := &sshConnector{o: o, logger: logger, conns: map[string]*transport.Conn{}}
	if u, err := user.Current(); err == nil {
		c.user = u.Username
	}
	c.home, _ = os.UserHomeDir()
	if o.insecure {
		logger.Warn("HOST KEY CHECKING IS OFF (--ssh-insecure-ignore-host-key): any machine on the network path can pose as your hosts and receive your secrets. Use it only for throwaway test hosts.")
	}
	return c, nil
}

// Connect implements runner.Connector.
func (c *sshConnector) Connect(ctx context.Context, h *inventory.Host) (runner.Conn, error) {
	cfg := transport.Config{
		Name:                  h.Name,
		Address:               h.Address,
		Port:                  h.Port,
		User:                  h.User,
		AgentSocket:           os.Getenv("SSH_AUTH_SOCK"),
		InsecureIgnoreHostKey: c.o.insecure,
		ConnectTimeout:        c.o.connectTimeout,
		KeepaliveInterval:     c.o.keepaliveInterval,
		KeepaliveCountMax:     c.o.keepaliveCountMax,
		BecomeUser:            h.BecomeUser,
		Logger:                c.logger,
	}
	if cfg.User == "" {
		cfg.User = c.user
	}
	switch {
	case h.IdentityFile != "":
		cfg.IdentityFiles = []string{h.IdentityFile}
	case c.home != "":
		// OpenSSH's default identities, those that exist.
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			p := filepath.Join(c.home, ".ssh", name)
			if _, err := os.Stat(p); err == nil {
				cfg.IdentityFiles = append(cfg.IdentityFiles, p)
			}
		}
	}
	switch {
	case len(c.o.knownHosts) > 0:
		cfg.KnownHostsFiles = c.o.knownHosts
	case h.KnownHosts != "":
		cfg.KnownHostsFiles = []string{h.KnownHosts}
	default:
		if c.home != "" {
			cfg.KnownHostsFiles = append(cfg.KnownHostsFiles, filepath.Join(c.home, ".ssh", "known_hosts"))
		}
		cfg.KnownHostsFiles = append(cfg.KnownHostsFiles, "/etc/ssh/ssh_known_hosts")
	}
	conn, err := transport.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns[h.Name] = conn
	c.mu.Unlock()
	return conn, nil
}

// logStats logs each connection's round trips (for -v).
func (c *sshConnector) logStats(logger *log.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range sortedKeys(c.conns) {
		s := c.conns[name].Stats()
		logger.Info("round trips", "host", name, "commands", s.Commands, "sftp", s.SFTPOps)
	}
}
