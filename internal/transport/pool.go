package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrHandshakeDropped matches (errors.Is) an *UnreachableError raised because
// the host kept closing the connection before the login: the usual sign of
// sshd's MaxStartups limit (too many connections not yet logged in).
var ErrHandshakeDropped = errors.New("handshake dropped by server (possible MaxStartups limit)")

// Retries of a handshake that the server dropped before the login.
const (
	handshakeAttempts = 5
	handshakeBackoff  = 250 * time.Millisecond // doubled at each attempt, with jitter
	handshakeMaxWait  = 5 * time.Second
)

// Pool opens connections that share what should be shared between hosts:
// one connection per bastion (jump host) for every host behind it, and a
// per-endpoint limit on simultaneous handshakes (lowered when the server
// drops handshakes, raised again one by one as they succeed). Use one Pool
// for a whole
// run; it is safe for concurrent use. A bastion connection is closed when
// the last connection through it is closed.
type Pool struct {
	// MaxHandshakes bounds the handshakes running at once towards one
	// endpoint (host:port, through the same bastions); 0 means
	// DefaultMaxHandshakes.
	MaxHandshakes int

	mu        sync.Mutex
	endpoints map[string]*sessionLimiter // handshakes in progress per endpoint
	bastions  map[string]*sharedConn
}

// sharedConn is a bastion connection shared by the hosts behind it.
type sharedConn struct {
	ready chan struct{} // closed once conn or err is set
	conn  *Conn
	err   error
	refs  int
}

// NewPool returns an empty Pool with the default limits.
func NewPool() *Pool { return &Pool{} }

// Dial connects to cfg's host, through the bastions of cfg.Jump when there
// are any, checks its host key (and every bastion's), logs in and starts the
// keepalives. It returns *HostKeyError, *AuthError, *UnreachableError,
// *BastionError (wrapping one of those, for a bastion), or a plain error for
// an invalid Config. Cancelling ctx aborts the dial; once Dial has returned,
// ctx no longer matters (use Close).
//
// Each call uses a Pool of its own: bastion connections and handshake
// limits are not shared with other calls. Use Pool.Dial for that.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	return NewPool().Dial(ctx, cfg)
}

// Dial is the package's Dial with this pool's bastion connections and
// handshake limits.
func (p *Pool) Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for i := range cfg.Jump {
		if err := cfg.Jump[i].validate(); err != nil {
			return nil, fmt.Errorf("transport: %s: jump host %d: %w", nameOf(cfg), i+1, err)
		}
		if len(cfg.Jump[i].Jump) > 0 {
			return nil, fmt.Errorf("transport: %s: jump host %d has jump hosts of its own: list the whole chain in order", nameOf(cfg), i+1)
		}
	}
	cfg.withDefaults()
	if len(cfg.Jump) == 0 {
		return p.connect(ctx, cfg, nil, "")
	}
	via, key, release, err := p.bastion(ctx, cfg.Jump, cfg.Name)
	if err != nil {
		return nil, err
	}
	c, err := p.connect(ctx, cfg, via, key)
	if err != nil {
		release()
		return nil, err
	}
	c.releaseVia = release
	return c, nil
}

func nameOf(cfg Config) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	return cfg.Address
}

// validate checks the fields Dial needs.
func (cfg *Config) validate() error {
	if cfg.Address == "" {
		return errors.New("transport: no address given")
	}
	if strings.HasPrefix(cfg.Address, "[") {
		return fmt.Errorf("transport: address %q: write IPv6 addresses without brackets", cfg.Address)
	}
	if cfg.User == "" {
		return fmt.Errorf("transport: %s: no login user given", cfg.Address)
	}
	return nil
}

// hopKey identifies a hop for sharing: who logs in where, with which keys
// and which trust.
func hopKey(cfg Config) string {
	return fmt.Sprintf("%s@%s|%s|%s|%t|%t", cfg.User, joinHostPort(cfg.Address, cfg.Port),
		strings.Join(cfg.IdentityFiles, ","), strings.Join(cfg.KnownHostsFiles, ","), cfg.AcceptNewHostKey, cfg.InsecureIgnoreHostKey)
}

// BastionName is how a hop is named in messages: "bastion NAME".
func BastionName(hop Config) string {
	name := hop.Name
	if name == "" {
		name = hop.Address
	}
	return "bastion " + name
}

// bastion returns the shared connection to the last hop of chain (opening
// the chain as needed), its pool key and a function that drops this use of
// it. Errors are *BastionError naming the hop that failed.
func (p *Pool) bastion(ctx context.Context, chain []Config, target string) (*Conn, string, func(), error) {
	var via *Conn
	var viaKey string
	var releases []func()
	releaseAll := func() {
		for i := len(releases) - 1; i >= 0; i-- {
			releases[i]()
		}
	}
	for i, hop := range chain {
		hop.withDefaults()
		if !strings.HasPrefix(hop.Name, "bastion ") {
			hop.Name = BastionName(hop)
		}
		key := viaKey + ">" + hopKey(hop)
		c, release, err := p.shared(ctx, key, func() (*Conn, error) {
			return p.connect(ctx, hop, via, viaKey)
		})
		if err != nil {
			releaseAll()
			return nil, "", nil, &BastionError{Host: target, Bastion: hop.Name, Hop: i + 1, Hops: len(chain), Err: err}
		}
		releases = append(releases, release)
		via, viaKey = c, key
	}
	return via, viaKey, releaseAll, nil
}

// shared returns the live connection stored under key, or opens one with
// open (once, for every caller waiting on it), and counts this use.
func (p *Pool) shared(ctx context.Context, key string, open func() (*Conn, error)) (*Conn, func(), error) {
	for {
		p.mu.Lock()
		if p.bastions == nil {
			p.bastions = map[string]*sharedConn{}
		}
		s := p.bastions[key]
		if s != nil {
			select {
			case <-s.ready:
				if s.err != nil || s.conn.lost() != nil {
					// Failed or lost since: the next caller opens a new one.
					delete(p.bastions, key)
					p.mu.Unlock()
					if s.err != nil {
						return nil, nil, s.err
					}
					continue
				}
			default:
			}
			s.refs++
			p.mu.Unlock()
			select {
			case <-s.ready:
			case <-ctx.Done():
				p.unref(key, s)
				return nil, nil, ctx.Err()
			}
			if s.err != nil {
				p.unref(key, s)
				return nil, nil, s.err
			}
			return s.conn, p.releaser(key, s), nil
		}
		s = &sharedConn{ready: make(chan struct{}), refs: 1}
		p.bastions[key] = s
		p.mu.Unlock()
		s.conn, s.err = open()
		if s.err != nil {
			p.mu.Lock()
			if p.bastions[key] == s {
				delete(p.bastions, key)
			}
			p.mu.Unlock()
			close(s.ready)
			return nil, nil, s.err
		}
		close(s.ready)
		return s.conn, p.releaser(key, s), nil
	}
}

func (p *Pool) releaser(key string, s *sharedConn) func() {
	var once sync.Once
	return func() { once.Do(func() { p.unref(key, s) }) }
}

// unref drops one use of s, closing it after the last.
func (p *Pool) unref(key string, s *sharedConn) {
	p.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last && p.bastions[key] == s {
		delete(p.bastions, key)
	}
	p.mu.Unlock()
	if last && s.conn != nil {
		s.conn.Close()
	}
}

// handshakes returns the limiter of the handshakes towards endpoint.
func (p *Pool) handshakes(endpoint string) (*sessionLimiter, int) {
	n := p.MaxHandshakes
	if n <= 0 {
		n = DefaultMaxHandshakes
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.endpoints == nil {
		p.endpoints = map[string]*sessionLimiter{}
	}
	l := p.endpoints[endpoint]
	if l == nil {
		l = newSessionLimiter(n)
		p.endpoints[endpoint] = l
	}
	return l, n
}

// connect opens one SSH connection to cfg's host, directly or through the
// connection via (a bastion, pool key viaKey), with retries when the server
// drops the connection before the login.
func (p *Pool) connect(ctx context.Context, cfg Config, via *Conn, viaKey string) (*Conn, error) {
	c := &Conn{
		cfg:      cfg,
		name:     cfg.Name,
		addr:     joinHostPort(cfg.Address, cfg.Port),
		via:      via,
		sessions: newSessionLimiter(cfg.MaxSessions),
		closed:   make(chan struct{}),
		dead:     make(chan struct{}),
	}
	c.sessions.reclaim = c.reclaim
	c.log = cfg.Logger.With("host", c.name)
	c.promptMark, c.startMark = "[dindops-sudo-"+randomHex()+"]", "dindops-become-"+randomHex()

	var keyPassed atomic.Bool
	hostKeyCallback, algos, err := hostKeyCheck(&c.cfg, c.name, c.addr, &keyPassed)
	if err != nil {
		return nil, fmt.Errorf("transport: %s: %w", c.name, err)
	}
	if cfg.InsecureIgnoreHostKey {
		c.log.Warn("host key NOT checked (InsecureIgnoreHostKey)")
	}
	ks, err := loadKeys(&c.cfg, c)
	if err != nil {
		return nil, err
	}
	defer ks.close()
	clientCfg := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{ks.authMethod()},
		HostKeyCallback:   hostKeyCallback,
		HostKeyAlgorithms: algos,
		Timeout:           cfg.ConnectTimeout,
	}
	limiter, ceiling := p.handshakes(viaKey + ">" + c.addr)
	for attempt := 1; ; attempt++ {
		if err := limiter.acquire(ctx, false); err != nil {
			return nil, fmt.Errorf("connect to %s: %w", c.name, err)
		}
		keyPassed.Store(false)
		client, err := c.handshake(ctx, clientCfg, &keyPassed, ks)
		var drop *dropError
		if errors.As(err, &drop) {
			// Fewer at once from now on: the server said so.
			limit := limiter.lower()
			c.log.Debug("handshakes at once towards this address lowered", "addr", c.addr, "limit", limit)
		} else if err == nil {
			limiter.raise(ceiling)
		}
		limiter.release(false)
		if err == nil {
			c.client = client
			break
		}
		if drop == nil {
			return nil, err
		}
		if attempt == handshakeAttempts {
			return nil, &UnreachableError{Host: c.name, Op: "ssh handshake", Err: &droppedError{attempts: attempt, last: drop.err}}
		}
		wait := min(handshakeBackoff<<(attempt-1), handshakeMaxWait)
		wait = wait/2 + rand.N(wait/2+1) // jitter: hosts retrying together spread out
		c.log.Info("ssh handshake dropped by the server before login; retrying", "attempt", attempt, "in", wait.Round(time.Millisecond), "err", drop.err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to %s: %w", c.name, ctx.Err())
		}
	}
	via.logDebug("opened a channel to", c.addr)
	c.log.Debug("connected", "addr", c.addr, "user", cfg.User, "server", string(c.client.ServerVersion()), "via", viaName(via))
	go c.watch()
	if cfg.KeepaliveInterval > 0 {
		go c.keepalive(cfg.KeepaliveInterval, cfg.KeepaliveCountMax)
	}
	return c, nil
}

func viaName(via *Conn) string {
	if via == nil {
		return "direct"
	}
	return via.name
}

func (c *Conn) logDebug(msg, addr string) {
	if c != nil {
		c.log.Debug(msg, "addr", addr)
	}
}

// dropError is a connection closed by the server before the host key was
// even checked: retried.
type dropError struct{ err error }

func (e *dropError) Error() string { return e.err.Error() }

// droppedError is the final error after every retry was dropped too.
type droppedError struct {
	attempts int
	last     error
}

func (e *droppedError) Error() string {
	return fmt.Sprintf("%v: %d attempts, last: %v", ErrHandshakeDropped, e.attempts, e.last)
}

func (e *droppedError) Is(target error) bool { return target == ErrHandshakeDropped }
func (e *droppedError) Unwrap() error        { return e.last }

// handshake opens the transport (TCP, or a channel through the bastion) and
// runs the SSH handshake and login, bounded by ConnectTimeout and ctx.
func (c *Conn) handshake(ctx context.Context, clientCfg *ssh.ClientConfig, keyPassed *atomic.Bool, ks *keys) (*ssh.Client, error) {
	cfg := &c.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if c.via == nil {
		dialer := net.Dialer{}
		nc, err = dialer.DialContext(dctx, "tcp", c.addr)
	} else {
		nc, err = c.via.client.DialContext(dctx, "tcp", c.addr)
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("connect to %s: %w", c.name, ctx.Err())
		case dctx.Err() != nil:
			return nil, &UnreachableError{Host: c.name, Op: c.connectOp(), Err: fmt.Errorf("no answer within %s", cfg.ConnectTimeout)}
		case c.via != nil && c.via.lost() != nil:
			return nil, &UnreachableError{Host: c.name, Op: c.connectOp(), Err: c.via.lost()}
		}
		return nil, &UnreachableError{Host: c.name, Op: c.connectOp(), Err: err}
	}
	// The handshake and login are bounded by the same timeout, and by ctx:
	// closing the connection ends them (a channel through a bastion has no
	// deadlines of its own).
	var stopped atomic.Bool
	stop := context.AfterFunc(dctx, func() { stopped.Store(true); nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, c.addr, clientCfg)
	if !stop() && err == nil {
		sc.Close()
		err = errors.New("cancelled")
	}
	if err == nil {
		return ssh.NewClient(sc, chans, reqs), nil
	}
	nc.Close()
	var hkErr *HostKeyError
	switch {
	case errors.As(err, &hkErr):
		return nil, hkErr
	case ctx.Err() != nil:
		return nil, fmt.Errorf("connect to %s: %w", c.name, ctx.Err())
	case stopped.Load():
		return nil, &UnreachableError{Host: c.name, Op: "ssh handshake", Err: fmt.Errorf("no answer within %s", cfg.ConnectTimeout)}
	case keyPassed.Load() && strings.Contains(err.Error(), "unable to authenticate"):
		return nil, &AuthError{User: cfg.User, Host: c.name, Methods: ks.methods, Skipped: ks.skipped, Err: err}
	case !keyPassed.Load() && droppedBeforeLogin(err):
		return nil, &dropError{err: err}
	}
	return nil, &UnreachableError{Host: c.name, Op: "ssh handshake", Err: err}
}

// connectOp names the connect step in errors.
func (c *Conn) connectOp() string {
	if c.via != nil {
		return "connect through " + c.via.name
	}
	return "connect"
}

// droppedBeforeLogin recognises a connection the server closed or reset
// during the handshake, as sshd does beyond MaxStartups.
func droppedBeforeLogin(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
