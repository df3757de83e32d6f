// Package transport is dindops' SSH transport: it implements tasks.Host for a
// real host over one SSH connection.
//
// Dial opens one connection per host; every command runs in a new session on
// it, and file uploads use one SFTP client opened lazily on the same
// connection. Host keys are checked against known_hosts (skipping the check
// takes the loudly named Config.InsecureIgnoreHostKey). Conn.Host gives the
// tasks.Host view, optionally escalated with sudo -n (become).
//
// Errors are typed so the runner can classify them without parsing messages:
// *UnreachableError (connect, handshake, timeout, connection lost; see
// ErrConnectionLost), *AuthError (with *IdentityError), *HostKeyError,
// *BecomeError, *CommandError (signal, no exit status) and *ValidateError.
package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/charmbracelet/log"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Defaults for the zero values of Config.
const (
	DefaultConnectTimeout    = 15 * time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveCountMax = 3
	DefaultBecomeUser        = "root"
	DefaultTempDir           = "/tmp"
)

// cancelGrace is how long Run waits, after its context is done and the
// command was signalled, for the host to close the session.
const cancelGrace = 2 * time.Second

// Config says how to reach and log in to one host. The zero value of each
// optional field means its default. There are no globals: the CLI fills this
// from the inventory, flags and environment.
type Config struct {
	// Name is how the host is named in messages (its inventory name);
	// empty means Address.
	Name string
	// Address is a host name, an IPv4 address or an IPv6 address without
	// brackets ("2001:db8::10", "fe80::1%eth0").
	Address string
	// Port is the TCP port; 0 means 22.
	Port int
	// User is the login user (required).
	User string
	// IdentityFiles are private key files (OpenSSH or PEM format) to offer.
	// A passphrase-protected file is skipped: load it into ssh-agent.
	IdentityFiles []string
	// AgentSocket is the path of an ssh-agent socket whose keys are offered
	// first (the CLI passes $SSH_AUTH_SOCK); empty means no agent.
	AgentSocket string
	// KnownHostsFiles are the known_hosts files the host key is checked
	// against; a file that does not exist counts as empty. Required unless
	// InsecureIgnoreHostKey is set.
	KnownHostsFiles []string
	// InsecureIgnoreHostKey accepts any host key, so anyone on the path
	// can impersonate the host. Only for throwaway test hosts.
	InsecureIgnoreHostKey bool
	// AcceptNewHostKey trusts an unknown host on first use, as OpenSSH's
	// StrictHostKeyChecking=accept-new: its key is appended to
	// KnownHostsFiles[0] (under a file lock) and a warning logged. A
	// changed or revoked key still fails.
	AcceptNewHostKey bool
	// ConnectTimeout bounds the TCP connect plus the SSH handshake and
	// login; 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// KeepaliveInterval is how often a keepalive@openssh.com request is sent;
	// after KeepaliveCountMax intervals without an answer the connection is
	// closed and running commands fail with ErrConnectionLost. 0 means
	// DefaultKeepaliveInterval; negative disables keepalives.
	KeepaliveInterval time.Duration
	// KeepaliveCountMax is the number of unanswered keepalive intervals
	// tolerated; 0 means DefaultKeepaliveCountMax.
	KeepaliveCountMax int
	// BecomeUser is the user sudo runs commands as for Host(true); empty
	// means DefaultBecomeUser. When it equals User, sudo is not used.
	BecomeUser string
	// OutputLimit is how many bytes of each output stream are kept at the
	// head, and as many at the tail; 0 means DefaultOutputLimit.
	OutputLimit int
	// TempDir is the remote directory in which a become write puts its
	// private upload directory; empty means DefaultTempDir.
	TempDir string
	// LockPath is the file Lock locks on the host; empty means
	// DefaultLockPath.
	LockPath string
	// LockTimeout is how long Lock waits on the host for another run's
	// lock (flock -w) before *LockedError; 0 fails at once.
	LockTimeout time.Duration
	// Jump lists the bastions (jump hosts) to go through, in order, as
	// OpenSSH's ProxyJump: the first is dialed directly, each next one and
	// finally this host through the previous one. Each hop's host key is
	// checked and its login made with its own fields (Name is its display
	// name, "bastion NAME" in messages); their own Jump must be empty.
	// Connections made by one Pool share each bastion connection.
	Jump []Config
	// MaxSessions bounds the channels open at once on the connection
	// (commands and the run lock; SFTP takes one more); 0 means
	// DefaultMaxSessions. When the host refuses a channel while others are
	// open, the bound drops to what it accepted and the command queues.
	MaxSessions int
	// BecomePassword, when not empty, is sudo's password for become: sudo
	// runs with -S and a random prompt, and the password is written on the
	// command's standard input only when that prompt appears, once (a
	// rejected password is never sent again on this connection). It never
	// appears in a command line, a log or an output. Empty means "sudo -n":
	// a sudo that wants a password fails at once.
	BecomePassword string
	// DockerSocket is the path of the Docker daemon's socket on the host
	// (the inventory's docker_host); empty means DefaultDockerSocket.
	DockerSocket string
	// Logger receives debug logs (commands, transfers, retries); never
	// secrets. Nil discards them.
	Logger *log.Logger
}

func (cfg *Config) withDefaults() {
	if cfg.Name == "" {
		cfg.Name = cfg.Address
	}
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.KeepaliveInterval == 0 {
		cfg.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if cfg.KeepaliveCountMax <= 0 {
		cfg.KeepaliveCountMax = DefaultKeepaliveCountMax
	}
	if cfg.BecomeUser == "" {
		cfg.BecomeUser = DefaultBecomeUser
	}
	if cfg.OutputLimit <= 0 {
		cfg.OutputLimit = DefaultOutputLimit
	}
	if cfg.TempDir == "" {
		cfg.TempDir = DefaultTempDir
	}
	if cfg.LockPath == "" {
		cfg.LockPath = DefaultLockPath
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.DockerSocket == "" {
		cfg.DockerSocket = DefaultDockerSocket
	}
	if cfg.Logger == nil {
		cfg.Logger = log.New(io.Discard)
	}
}

// Stats counts what a Conn did, for -v output and benchmarks.
type Stats struct {
	// Commands is the number of remote commands run (one session each;
	// a command retried with a pty counts twice).
	Commands int64
	// SFTPOps is the number of SFTP requests made (stat, open, read,
	// create, chmod, write, close, mkdir, remove, …): per call for writes,
	// per request for reads (a read that finds the end of the file counts).
	SFTPOps int64
	// APIRequests is the number of Docker Engine API requests (HTTP
	// requests of the host's Docker clients, the version negotiation's
	// GET /_ping included).
	APIRequests int64
	// DockerCommands is the number of commands started on the host whose
	// program is docker (a `docker system dial-stdio` among them); dockerd
	// does not count.
	DockerCommands int64
	// DockerVia is how the Docker Engine API was reached (ViaStreamLocal or
	// ViaDialStdio), or "" when it was not.
	DockerVia string
}

// Conn is one SSH connection to one host. It is safe for concurrent use; at
// most Config.MaxSessions commands run on it at once (the others wait).
type Conn struct {
	cfg    Config
	name   string
	addr   string // host:port as dialed
	log    *log.Logger
	client *ssh.Client

	sessions *sessionLimiter

	via        *Conn  // the bastion this connection goes through, or nil
	releaseVia func() // drops this use of via

	// sudo's password prompt and the line a command prints once sudo
	// let it start (become with a password): random per connection.
	promptMark, startMark string
	passRejected          atomic.Bool // sudo refused the password: never sent again

	sftpMu    sync.Mutex
	sftp      *sftp.Client // nil while closed (see sftpClient)
	sftpSess  *ssh.Session
	sftpFree  func() // frees the SFTP session's slot
	sftpUsers int    // uses in progress
	sftpErr   error  // SFTP subsystem unavailable: uploads go through stdin

	lockMu sync.Mutex
	lock   *heldLock // the run lock, once taken

	// The host's /etc/passwd and /etc/group (id → name), read over SFTP
	// once, to name the owners of files read over SFTP.
	accountsOnce  sync.Once
	users, groups map[uint32]string

	commands atomic.Int64
	sftpOps  atomic.Int64

	// The Docker Engine API clients, without and with become.
	dockerMu       sync.Mutex
	dockers        [2]*dockerAPI
	apiRequests    atomic.Int64
	dockerCommands atomic.Int64
	dockerVia      atomic.Value // string

	needPTY atomic.Bool // sudo said "you must have a tty"

	lostMu  sync.Mutex
	lostErr error         // why the connection died; nil while alive
	closed  chan struct{} // closed by Close
	dead    chan struct{} // closed once the connection is down, lostErr set
	once    sync.Once
}

// Close closes the SFTP client and the connection. Commands still running
// fail. It is safe to call more than once.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closed)
		c.dockerMu.Lock()
		for _, d := range c.dockers {
			if d != nil {
				d.close()
			}
		}
		c.dockerMu.Unlock()
		c.sftpMu.Lock()
		c.closeSFTP()
		c.sftpMu.Unlock()
		err = c.client.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		if c.releaseVia != nil {
			c.releaseVia()
		}
	})
	return err
}

// Stats returns the counts so far.
func (c *Conn) Stats() Stats {
	via, _ := c.dockerVia.Load().(string)
	return Stats{Commands: c.commands.Load(), SFTPOps: c.sftpOps.Load(), APIRequests: c.apiRequests.Load(),
		DockerCommands: c.dockerCommands.Load(), DockerVia: via}
}

// watch notices the connection dying for any reason other than Close.
func (c *Conn) watch() {
	defer close(c.dead)
	err := c.client.Wait()
	select {
	case <-c.closed:
	default:
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("closed by the host")
		}
		if c.via != nil {
			if verr := c.via.lost(); verr != nil {
				err = fmt.Errorf("%s: %w", c.via.name, verr)
			}
		}
		c.markLost(err)
	}
}

// markLost records why the connection died and closes it, which fails
// every command running on it.
func (c *Conn) markLost(reason error) {
	c.lostMu.Lock()
	first := c.lostErr == nil
	if first {
		c.lostErr = reason
	}
	c.lostMu.Unlock()
	if first {
		c.log.Debug("connection lost", "err", reason)
	}
	c.client.Close()
}

// lost returns why the connection died, or nil.
func (c *Conn) lost() error {
	c.lostMu.Lock()
	defer c.lostMu.Unlock()
	return c.lostErr
}

// lostError wraps the loss of the connection for what was being done.
func (c *Conn) lostError(op string) error {
	if err := c.lost(); err != nil {
		return &UnreachableError{Host: c.name, Op: op, Lost: true, Err: err}
	}
	select {
	case <-c.closed:
		return fmt.Errorf("%s: %s: connection closed", c.name, op)
	default:
	}
	return nil
}

// keepalive sends keepalive@openssh.com every interval. Any answer, even a
// refusal, proves the host alive. One request is outstanding at a time; when
// countMax intervals pass without an answer, the connection is closed.
func (c *Conn) keepalive(interval time.Duration, countMax int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	replies := make(chan error, 1)
	outstanding := false
	missed := 0
	for {
		select {
		case <-c.closed:
			return
		case err := <-replies:
			outstanding = false
			if err != nil {
				return // the connection is gone; watch reports it
			}
			missed = 0
		case <-t.C:
			if outstanding {
				missed++
				if missed >= countMax {
					c.markLost(fmt.Errorf("no answer to keepalives for %s (%d × %s)", time.Duration(countMax)*interval, countMax, interval))
					return
				}
				continue
			}
			outstanding = true
			go func() {
				_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
				replies <- err
			}()
		}
	}
}
