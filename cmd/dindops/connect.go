package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/log"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/internal/transport"
	"github.com/dindops/dindops/internal/transport/sshconfig"
	"github.com/dindops/dindops/inventory"
)

// Host key policies (--ssh-host-key-policy, StrictHostKeyChecking).
const (
	policyStrict    = "strict"
	policyAcceptNew = "accept-new"
)

// becomePasswordEnv holds the become password for --ask-become-pass when
// there is no terminal to ask on (CI).
const becomePasswordEnv = "DINDOPS_BECOME_PASSWORD"

// sshOptions are the SSH flags of plan, apply and ssh. Every command that
// reaches hosts builds its connections from them with the same connector,
// so ssh_config, bastions and host key policy are the same everywhere.
type sshOptions struct {
	knownHosts        []string
	insecure          bool
	hostKeyPolicy     string
	sshConfig         string
	noSSHConfig       bool
	askBecomePass     bool
	becomePassFile    string
	maxSessions       int
	maxHandshakes     int
	connectTimeout    time.Duration
	connectTimeoutSet bool
	keepaliveInterval time.Duration
	keepaliveCountMax int
	lockTimeout       time.Duration
	flags             *pflag.FlagSet
	// askPassword reads the become password from the terminal; tests
	// replace it.
	askPassword func(prompt string) (string, error)
}

func (o *sshOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	o.flags = f
	f.StringArrayVar(&o.knownHosts, "known-hosts", nil, "known_hosts file to check host keys against (repeatable; default the inventory's known_hosts, else ssh_config's UserKnownHostsFile, else ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)")
	f.StringVar(&o.hostKeyPolicy, "ssh-host-key-policy", "", "what to do with a host key not in known_hosts: strict (refuse; the default) or accept-new (add it, under a lock; a changed key is always refused); default: ssh_config's StrictHostKeyChecking, else strict")
	f.BoolVar(&o.insecure, "ssh-insecure-ignore-host-key", false, "DANGEROUS: accept any host key, so anyone on the network path can impersonate your hosts and receive your secrets")
	f.StringVar(&o.sshConfig, "ssh-config", "", "read this OpenSSH client config file instead of ~/.ssh/config and /etc/ssh/ssh_config")
	f.BoolVar(&o.noSSHConfig, "no-ssh-config", false, "read no OpenSSH client config file")
	f.BoolVar(&o.askBecomePass, "ask-become-pass", false, "sudo needs a password: read it from --become-password-file, else $"+becomePasswordEnv+", else ask on the terminal (once per run)")
	f.StringVar(&o.becomePassFile, "become-password-file", "", "file whose first line is sudo's password (implies --ask-become-pass)")
	f.IntVar(&o.maxSessions, "ssh-max-sessions", transport.DefaultMaxSessions, "commands open at once on one connection (keep it below the hosts' sshd MaxSessions, 10 by default); more wait")
	f.IntVar(&o.maxHandshakes, "ssh-max-handshakes", transport.DefaultMaxHandshakes, "SSH logins at once towards one address (keep it below the sshd MaxStartups, 10 by default)")
	f.DurationVar(&o.connectTimeout, "connect-timeout", transport.DefaultConnectTimeout, "time allowed to connect and log in to a host")
	f.DurationVar(&o.keepaliveInterval, "ssh-keepalive-interval", transport.DefaultKeepaliveInterval, "interval between SSH keepalives; a host silent for this × --ssh-keepalive-count-max is reported lost (when not given: ssh_config's ServerAliveInterval, if any)")
	f.DurationVar(&o.lockTimeout, "lock-timeout", 0, "how long apply waits for another dindops run to release a host's run lock before failing that host (0: fail at once)")
	f.IntVar(&o.keepaliveCountMax, "ssh-keepalive-count-max", transport.DefaultKeepaliveCountMax, "unanswered keepalives before a connection is declared lost (when not given: ssh_config's ServerAliveCountMax, if any)")
	_ = cmd.RegisterFlagCompletionFunc("ssh-host-key-policy", cobra.FixedCompletions([]string{policyStrict, policyAcceptNew}, cobra.ShellCompDirectiveNoFileComp))
}

// set reports whether the flag was given on the command line.
func (o *sshOptions) set(name string) bool {
	return o.flags != nil && o.flags.Changed(name)
}

// sshConnector opens transport connections for inventory hosts.
type sshConnector struct {
	o        *sshOptions
	logger   *log.Logger
	user     string
	home     string
	config   *sshconfig.Config
	pool     *transport.Pool
	password string
	mu       sync.Mutex
	conns    map[string]*transport.Conn
}

// connector checks the SSH flags, reads the SSH configuration and the
// become password, and returns the connector. Its errors are usage errors.
func (o *sshOptions) connector(logger *log.Logger) (*sshConnector, error) {
	c := &sshConnector{o: o, logger: logger, conns: map[string]*transport.Conn{},
		pool: &transport.Pool{MaxHandshakes: o.maxHandshakes}}
	if u, err := user.Current(); err == nil {
		c.user = u.Username
	}
	c.home, _ = os.UserHomeDir()
	switch {
	case o.hostKeyPolicy != "" && o.hostKeyPolicy != policyStrict && o.hostKeyPolicy != policyAcceptNew:
		return nil, fmt.Errorf("--ssh-host-key-policy must be strict or accept-new, got %q (the insecure opt-out is --ssh-insecure-ignore-host-key)", o.hostKeyPolicy)
	case o.sshConfig != "" && o.noSSHConfig:
		return nil, errors.New("--ssh-config and --no-ssh-config exclude each other")
	case o.maxSessions < 1:
		return nil, errors.New("--ssh-max-sessions must be at least 1")
	case o.maxHandshakes < 1:
		return nil, errors.New("--ssh-max-handshakes must be at least 1")
	}
	if o.insecure {
		logger.Warn("HOST KEY CHECKING IS OFF (--ssh-insecure-ignore-host-key): any machine on the network path can pose as your hosts and receive your secrets. Use it only for throwaway test hosts.")
	}
	if err := c.loadSSHConfig(); err != nil {
		return nil, err
	}
	if o.askBecomePass || o.becomePassFile != "" {
		p, err := o.becomePassword()
		if err != nil {
			return nil, err
		}
		c.password = p
	}
	return c, nil
}

// loadSSHConfig reads the OpenSSH client configuration and says which.
func (c *sshConnector) loadSSHConfig() error {
	var files []string
	required := false
	switch {
	case c.o.noSSHConfig:
		c.logger.Info("ssh config: none read (--no-ssh-config)")
		return nil
	case c.o.sshConfig != "":
		files, required = []string{c.o.sshConfig}, true
	default:
		files = sshconfig.DefaultFiles(c.home)
	}
	cfg, err := sshconfig.Load(files, required)
	if err != nil {
		return err
	}
	c.config = cfg
	if len(cfg.Files) == 0 {
		c.logger.Info("ssh config: no file found", "looked for", strings.Join(files, ", "))
	}
	for _, f := range cfg.Files {
		c.logger.Info("ssh config: reading", "file", f.Path)
		for _, s := range f.Skipped {
			at := fmt.Sprintf("%s:%d", f.Path, s.Line)
			if len(s.Keywords) > 0 {
				c.logger.Warn("ssh config: Match block not understood by dindops, skipped: hosts it covers get none of its settings", "at", at, "match", s.Criteria, "skipped", strings.Join(s.Keywords, ", "))
			} else {
				c.logger.Info("ssh config: Match block not understood, skipped (it sets nothing dindops uses)", "at", at, "match", s.Criteria)
			}
		}
	}
	return nil
}

// becomePassword reads the become password: from the file, the
// environment, or the terminal. No terminal (CI) is a clear error, never a
// hang.
func (o *sshOptions) becomePassword() (string, error) {
	if o.becomePassFile != "" {
		b, err := os.ReadFile(o.becomePassFile)
		if err != nil {
			return "", fmt.Errorf("--become-password-file: %w", err)
		}
		p, _, _ := strings.Cut(string(b), "\n")
		p = strings.TrimSuffix(p, "\r")
		if p == "" {
			return "", fmt.Errorf("--become-password-file %s: the first line is empty", o.becomePassFile)
		}
		return p, nil
	}
	if p, ok := os.LookupEnv(becomePasswordEnv); ok {
		if p == "" {
			return "", fmt.Errorf("--ask-become-pass: $%s is empty", becomePasswordEnv)
		}
		return p, nil
	}
	ask := o.askPassword
	if ask == nil {
		ask = askOnTerminal
	}
	p, err := ask("BECOME password (sudo): ")
	if err != nil {
		return "", fmt.Errorf("--ask-become-pass: %w; without a terminal give the password in $%s or --become-password-file", err, becomePasswordEnv)
	}
	if p == "" {
		return "", errors.New("--ask-become-pass: empty password")
	}
	return p, nil
}

// Connect implements runner.Connector.
func (c *sshConnector) Connect(ctx context.Context, h *inventory.Host) (runner.Conn, error) {
	cfg, err := c.resolve(h)
	if err != nil {
		return nil, err
	}
	conn, err := c.pool.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns[h.Name] = conn
	c.mu.Unlock()
	return conn, nil
}

// resolve builds the transport configuration of an inventory host: the
// inventory's values, else the SSH configuration's, else the defaults; the
// flags --known-hosts, --ssh-host-key-policy, --connect-timeout and the
// keepalive flags win over both. With -v it says which values of the SSH
// configuration applied.
func (c *sshConnector) resolve(h *inventory.Host) (transport.Config, error) {
	var dockerSocket string
	if h.DockerHost != "" {
		var err error
		if dockerSocket, err = inventory.DockerSocket(h.DockerHost); err != nil {
			return transport.Config{}, fmt.Errorf("%s: docker_host %w", h.Name, err)
		}
	}
	s := c.config.Lookup(h.Name, h.Address)
	n := &notes{settings: s}
	cfg := transport.Config{
		Name:                  h.Name,
		Address:               h.Address,
		Port:                  h.Port,
		User:                  h.User,
		AgentSocket:           os.Getenv("SSH_AUTH_SOCK"),
		InsecureIgnoreHostKey: c.o.insecure,
		BecomeUser:            h.BecomeUser,
		BecomePassword:        c.password,
		DockerSocket:          dockerSocket,
		MaxSessions:           c.o.maxSessions,
		Logger:                c.logger,
	}
	if !h.HasAddress {
		if v, ok := n.use("HostName"); ok {
			cfg.Address = sshconfig.Expand(v, c.tokens(h.Name, h.Address, 0, ""))
		}
	} else {
		n.override("HostName", "inventory address")
	}
	if !h.HasPort {
		if v, ok := n.use("Port"); ok {
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				return cfg, n.bad("Port", "not a port number")
			}
			cfg.Port = p
		}
	} else {
		n.override("Port", "inventory port")
	}
	if cfg.User == "" {
		if v, ok := n.use("User"); ok {
			cfg.User = v
		} else {
			cfg.User = c.user
		}
	} else {
		n.override("User", "inventory user")
	}
	tok := c.tokens(h.Name, cfg.Address, cfg.Port, cfg.User)
	switch {
	case h.IdentityFile != "":
		cfg.IdentityFiles = []string{h.IdentityFile}
		n.override("IdentityFile", "inventory identity_file")
	default:
		cfg.IdentityFiles = c.identityFiles(n, tok)
	}
	cfg.KnownHostsFiles = c.knownHostsFiles(n, h.KnownHosts, tok)
	policy, err := c.policy(n, h.Name)
	if err != nil {
		return cfg, err
	}
	cfg.AcceptNewHostKey = policy == policyAcceptNew
	if err := c.timeouts(n, &cfg); err != nil {
		return cfg, err
	}

	var hops []inventory.JumpHost
	if h.HasJump {
		hops = h.Jump
		n.override("ProxyJump", "inventory jump")
	} else if v, ok := n.use("ProxyJump"); ok {
		list, err := sshconfig.ParseProxyJump(v)
		if err != nil {
			return cfg, n.bad("ProxyJump", err.Error())
		}
		for _, hp := range list {
			hops = append(hops, inventory.JumpHost{User: hp.User, Address: hp.Host, Port: hp.Port})
		}
	}
	if len(hops) > 0 {
		cfg.Jump, err = c.jumpChain(hops, cfg, 0)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	c.logResolved(h.Name, n, cfg)
	return cfg, nil
}

// jumpChain resolves the bastions of a host (whose resolved configuration
// is target) through the SSH configuration, as OpenSSH does for ProxyJump:
// each hop's HostName, Port, User, IdentityFile, UserKnownHostsFile and
// StrictHostKeyChecking apply to it, and the first hop's own ProxyJump is
// followed. A hop without an identity file or known_hosts of its own uses
// the host's; without a user, the SSH configuration's or the local user.
func (c *sshConnector) jumpChain(hops []inventory.JumpHost, target transport.Config, depth int) ([]transport.Config, error) {
	if depth > 8 {
		return nil, errors.New("ProxyJump: more than 8 levels of jump hosts (a loop in the SSH configuration?)")
	}
	var out []transport.Config
	for i, j := range hops {
		s := c.config.Lookup(j.Address, j.Address)
		n := &notes{settings: s}
		hop := transport.Config{
			Name:                  j.Address,
			Address:               j.Address,
			Port:                  j.Port,
			User:                  j.User,
			AgentSocket:           target.AgentSocket,
			InsecureIgnoreHostKey: c.o.insecure,
			ConnectTimeout:        target.ConnectTimeout,
			KeepaliveInterval:     target.KeepaliveInterval,
			KeepaliveCountMax:     target.KeepaliveCountMax,
			MaxSessions:           c.o.maxSessions,
			Logger:                c.logger,
		}
		if v, ok := n.use("HostName"); ok {
			hop.Address = sshconfig.Expand(v, c.tokens(j.Address, j.Address, 0, ""))
		}
		if hop.Port == 0 {
			hop.Port = 22
			if v, ok := n.use("Port"); ok {
				p, err := strconv.Atoi(v)
				if err != nil || p < 1 || p > 65535 {
					return nil, n.bad("Port", "not a port number")
				}
				hop.Port = p
			}
		}
		if hop.User == "" {
			if v, ok := n.use("User"); ok {
				hop.User = v
			} else {
				hop.User = c.user
			}
		}
		tok := c.tokens(j.Address, hop.Address, hop.Port, hop.User)
		if _, ok := s["IdentityFile"]; ok {
			hop.IdentityFiles = c.identityFiles(n, tok)
		} else {
			hop.IdentityFiles = target.IdentityFiles
		}
		switch {
		case len(c.o.knownHosts) > 0:
			hop.KnownHostsFiles = c.o.knownHosts
		case s["UserKnownHostsFile"].Value != "":
			hop.KnownHostsFiles = c.knownHostsFiles(n, "", tok)
		default:
			hop.KnownHostsFiles = target.KnownHostsFiles
		}
		policy, err := c.policy(n, j.Address)
		if err != nil {
			return nil, err
		}
		hop.AcceptNewHostKey = policy == policyAcceptNew
		if i == 0 {
			if v, ok := n.use("ProxyJump"); ok {
				list, err := sshconfig.ParseProxyJump(v)
				if err != nil {
					return nil, n.bad("ProxyJump", err.Error())
				}
				var before []inventory.JumpHost
				for _, hp := range list {
					before = append(before, inventory.JumpHost{User: hp.User, Address: hp.Host, Port: hp.Port})
				}
				if len(before) > 0 {
					chain, err := c.jumpChain(before, hop, depth+1)
					if err != nil {
						return nil, err
					}
					out = append(out, chain...)
				}
			}
		}
		c.logResolved(transport.BastionName(hop), n, hop)
		out = append(out, hop)
	}
	return out, nil
}

// identityFiles are the SSH configuration's IdentityFile values, else
// OpenSSH's default identities that exist.
func (c *sshConnector) identityFiles(n *notes, tok sshconfig.Tokens) []string {
	if v, ok := n.settings["IdentityFile"]; ok {
		n.use("IdentityFile")
		var files []string
		for _, f := range v.All {
			if strings.EqualFold(f, "none") {
				continue
			}
			files = append(files, c.abs(sshconfig.Expand(f, tok)))
		}
		return files
	}
	var files []string
	if c.home != "" {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			p := filepath.Join(c.home, ".ssh", name)
			if _, err := os.Stat(p); err == nil {
				files = append(files, p)
			}
		}
	}
	return files
}

// knownHostsFiles: --known-hosts, else the inventory's known_hosts, else
// the SSH configuration's UserKnownHostsFile, else OpenSSH's defaults.
func (c *sshConnector) knownHostsFiles(n *notes, inventoryFile string, tok sshconfig.Tokens) []string {
	switch {
	case len(c.o.knownHosts) > 0:
		n.override("UserKnownHostsFile", "--known-hosts")
		return c.o.knownHosts
	case inventoryFile != "":
		n.override("UserKnownHostsFile", "inventory known_hosts")
		return []string{inventoryFile}
	}
	if v, ok := n.use("UserKnownHostsFile"); ok {
		var files []string
		for _, f := range strings.Fields(v) {
			if strings.EqualFold(f, "none") {
				continue
			}
			files = append(files, c.abs(sshconfig.Expand(f, tok)))
		}
		if len(files) > 0 {
			return files
		}
	}
	var files []string
	if c.home != "" {
		files = append(files, filepath.Join(c.home, ".ssh", "known_hosts"))
	}
	return append(files, "/etc/ssh/ssh_known_hosts")
}

// policy is --ssh-host-key-policy, else StrictHostKeyChecking, else strict.
// StrictHostKeyChecking=no is taken as accept-new: dindops never connects
// to a host whose key changed unless told so by
// --ssh-insecure-ignore-host-key.
func (c *sshConnector) policy(n *notes, name string) (string, error) {
	if c.o.hostKeyPolicy != "" {
		n.override("StrictHostKeyChecking", "--ssh-host-key-policy")
		return c.o.hostKeyPolicy, nil
	}
	v, ok := n.use("StrictHostKeyChecking")
	if !ok {
		return policyStrict, nil
	}
	switch strings.ToLower(v) {
	case "yes", "ask":
		return policyStrict, nil
	case "accept-new":
		return policyAcceptNew, nil
	case "no", "off":
		c.logger.Warn("ssh config: StrictHostKeyChecking "+v+" is taken as accept-new: new host keys are added, a changed key is still refused (only --ssh-insecure-ignore-host-key skips the check)", "host", name, "at", n.settings["StrictHostKeyChecking"].Where())
		return policyAcceptNew, nil
	}
	return "", n.bad("StrictHostKeyChecking", "want yes, ask, accept-new or no")
}

// timeouts: the flags when given, else ServerAliveInterval,
// ServerAliveCountMax and ConnectTimeout, else the flags' defaults.
func (c *sshConnector) timeouts(n *notes, cfg *transport.Config) error {
	cfg.ConnectTimeout = c.o.connectTimeout
	cfg.KeepaliveInterval = c.o.keepaliveInterval
	cfg.KeepaliveCountMax = c.o.keepaliveCountMax
	if c.o.lockTimeout < 0 {
		return fmt.Errorf("--lock-timeout %s: give 0 or a positive duration", c.o.lockTimeout)
	}
	cfg.LockTimeout = c.o.lockTimeout
	seconds := func(kw string) (int, bool, error) {
		v, ok := n.use(kw)
		if !ok {
			return 0, false, nil
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			return 0, false, n.bad(kw, "not a number of seconds")
		}
		return i, true, nil
	}
	if c.o.set("connect-timeout") {
		n.override("ConnectTimeout", "--connect-timeout")
	} else if s, ok, err := seconds("ConnectTimeout"); err != nil {
		return err
	} else if ok && s > 0 {
		cfg.ConnectTimeout = time.Duration(s) * time.Second
	}
	if c.o.set("ssh-keepalive-interval") {
		n.override("ServerAliveInterval", "--ssh-keepalive-interval")
	} else if s, ok, err := seconds("ServerAliveInterval"); err != nil {
		return err
	} else if ok {
		cfg.KeepaliveInterval = time.Duration(s) * time.Second
		if s == 0 {
			cfg.KeepaliveInterval = -1 // OpenSSH: 0 turns them off
		}
	}
	if c.o.set("ssh-keepalive-count-max") {
		n.override("ServerAliveCountMax", "--ssh-keepalive-count-max")
	} else if s, ok, err := seconds("ServerAliveCountMax"); err != nil {
		return err
	} else if ok && s > 0 {
		cfg.KeepaliveCountMax = s
	}
	return nil
}

func (c *sshConnector) tokens(alias, host string, port int, remoteUser string) sshconfig.Tokens {
	if port == 0 {
		port = 22
	}
	return sshconfig.Tokens{Home: c.home, Host: host, Alias: alias, Port: port, RemoteUser: remoteUser, LocalUser: c.user}
}

// abs makes a relative path from the SSH configuration relative to ~/.ssh,
// as OpenSSH does.
func (c *sshConnector) abs(p string) string {
	if filepath.IsAbs(p) || c.home == "" {
		return p
	}
	return filepath.Join(c.home, ".ssh", p)
}

// logResolved says (with -v) which SSH configuration values applied to a
// host, which the inventory or flags overrode, and how it is reached.
func (c *sshConnector) logResolved(name string, n *notes, cfg transport.Config) {
	route := "direct"
	if len(cfg.Jump) > 0 {
		var hops []string
		for _, j := range cfg.Jump {
			hops = append(hops, fmt.Sprintf("%s@%s", j.User, joinHostPort(j.Address, j.Port)))
		}
		route = "through " + strings.Join(hops, " → ")
	}
	policy := policyStrict
	switch {
	case cfg.InsecureIgnoreHostKey:
		policy = "INSECURE (not checked)"
	case cfg.AcceptNewHostKey:
		policy = policyAcceptNew
	}
	attrs := []any{"host", name, "login", fmt.Sprintf("%s@%s", cfg.User, joinHostPort(cfg.Address, cfg.Port)), "route", route,
		"host keys", policy + " " + strings.Join(cfg.KnownHostsFiles, " ")}
	if len(n.applied) > 0 {
		attrs = append(attrs, "from ssh config", strings.Join(n.applied, "; "))
	}
	if len(n.overridden) > 0 {
		attrs = append(attrs, "ssh config overridden", strings.Join(n.overridden, "; "))
	}
	c.logger.Info("ssh settings", attrs...)
}

func joinHostPort(host string, port int) string {
	if port == 0 {
		port = 22
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// notes records, for -v, which SSH configuration values were used and which
// were overridden.
type notes struct {
	settings   sshconfig.Settings
	applied    []string
	overridden []string
}

// use returns a keyword's value and notes that it applied.
func (n *notes) use(kw string) (string, bool) {
	v, ok := n.settings[kw]
	if !ok {
		return "", false
	}
	val := v.Value
	if len(v.All) > 1 {
		val = strings.Join(v.All, ", ")
	}
	n.applied = append(n.applied, fmt.Sprintf("%s=%s (%s)", kw, val, v.Where()))
	return v.Value, true
}

// override notes that a keyword the SSH configuration sets lost to by.
func (n *notes) override(kw, by string) {
	if v, ok := n.settings[kw]; ok {
		n.overridden = append(n.overridden, fmt.Sprintf("%s=%s (%s) by %s", kw, v.Value, v.Where(), by))
	}
}

// bad is an invalid value in the SSH configuration.
func (n *notes) bad(kw, why string) error {
	v := n.settings[kw]
	return fmt.Errorf("%s: %s %q: %s", v.Where(), kw, v.Value, why)
}

// logStats logs each connection's round trips (for -v).
func (c *sshConnector) logStats(logger *log.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range sortedKeys(c.conns) {
		s := c.conns[name].Stats()
		logger.Info("round trips", "host", name, "commands", s.Commands, "sftp", s.SFTPOps, "api", s.APIRequests, "docker", s.DockerCommands)
		if s.DockerVia != "" {
			logger.Info("docker api", "host", name, "via", s.DockerVia)
		}
	}
}
