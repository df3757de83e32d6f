package transport

// The Docker Engine API of a host, on the host's one SSH connection: the
// tasks.DockerHost ability of the host view.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
)

// DefaultDockerSocket is where dockerd listens unless Config.DockerSocket
// says otherwise.
const DefaultDockerSocket = "/var/run/docker.sock"

// The ways to the Docker daemon, as -v names them.
const (
	// ViaStreamLocal is a direct-streamlocal@openssh.com channel to the
	// daemon's socket (OpenSSH's PROTOCOL, section 2.4): sshd connects to
	// the socket as the login user, so that user must be allowed to open
	// it (root, or the docker group), and sshd must allow stream-local
	// forwarding.
	ViaStreamLocal = "streamlocal"
	// ViaDialStdio is `docker system dial-stdio` in an exec session, its
	// stdin and stdout the connection, as docker/cli's connhelper does for
	// ssh:// hosts; under sudo when the host view becomes.
	ViaDialStdio = "dial-stdio"
)

// DockerDialError is a host whose Docker daemon could not be reached by
// either way. Each attempt's error is kept (nil when it was not tried); it
// matches tasks.ErrDockerUnreachable when the daemon itself did not answer
// (dial-stdio said so), and tasks.ErrNoDockerPath when the ways to it are
// closed.
type DockerDialError struct {
	Host        string
	Socket      string
	StreamLocal error
	DialStdio   error
}

func (e *DockerDialError) Error() string {
	var parts []string
	if e.StreamLocal != nil {
		parts = append(parts, fmt.Sprintf("a stream-local channel to %s failed (%v)", e.Socket, e.StreamLocal))
	}
	if e.DialStdio != nil {
		parts = append(parts, fmt.Sprintf("`docker system dial-stdio` failed (%v)", e.DialStdio))
	}
	hint := "let the login user open the socket (add it to the docker group), or allow AllowStreamLocalForwarding in sshd_config, or install the docker CLI on the host, or name the daemon's socket with docker_host in the inventory"
	if errors.Is(e.DialStdio, tasks.ErrDockerUnreachable) {
		hint = "is docker running? start it (service docker start), or name its socket with docker_host in the inventory"
	}
	return fmt.Sprintf("%s: cannot reach the Docker Engine API: %s; %s", e.Host, strings.Join(parts, "; "), hint)
}

func (e *DockerDialError) Unwrap() []error {
	var out []error
	if !errors.Is(e.DialStdio, tasks.ErrDockerUnreachable) {
		out = append(out, tasks.ErrNoDockerPath)
	}
	for _, err := range []error{e.StreamLocal, e.DialStdio} {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// dockerAPI is one host view's Docker Engine API client and the way it
// reaches the daemon.
type dockerAPI struct {
	h      *host
	socket string
	cli    *client.Client
	tr     *http.Transport

	mu     sync.Mutex
	via    string // "" until a way worked, then ViaStreamLocal or ViaDialStdio
	reason string // why dial-stdio, for -v
}

// Docker implements tasks.DockerHost: one client per host view (with or
// without become), made on first use, its API version negotiated with the
// daemon on the first request (Docker 20.10, API 1.41, is the oldest
// supported; the client's own floor is 1.40). The daemon is reached on the
// host's SSH connection, through a stream-local channel to its socket when
// the login user may open it, else through `docker system dial-stdio` in a
// session (sudo -n with become); which way, and why, is logged at info
// level (-v). Errors of the calls: *DockerDialError when neither way
// works; one matching tasks.ErrDockerUnreachable when a daemon reached
// before does not answer (stopped, restarting).
func (h *host) Docker(ctx context.Context) (tasks.DockerEngine, error) {
	c := h.c
	c.dockerMu.Lock()
	defer c.dockerMu.Unlock()
	i := 0
	if h.become {
		i = 1
	}
	if d := c.dockers[i]; d != nil {
		return d.cli, nil
	}
	d := &dockerAPI{h: h, socket: c.cfg.DockerSocket}
	d.tr = &http.Transport{DialContext: d.dial, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second}
	hc := &http.Client{Transport: countRequests{d.tr, &c.apiRequests}, CheckRedirect: client.CheckRedirect}
	cli, err := client.New(client.WithHost("unix://"+d.socket), client.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("%s: docker client: %w", c.name, err)
	}
	d.cli = cli
	c.dockers[i] = d
	return cli, nil
}

// close drops the client's idle connections (channels and sessions).
func (d *dockerAPI) close() { d.tr.CloseIdleConnections() }

// viaStdio says whether the client's connections are dial-stdio sessions
// (which count against the host's MaxSessions; stream-local channels do not).
func (d *dockerAPI) viaStdio() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.via == ViaDialStdio
}

// countRequests counts every HTTP request of the Docker client.
type countRequests struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (t countRequests) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.base.RoundTrip(r)
}

// dial opens one connection to the daemon for the HTTP client.
func (d *dockerAPI) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c := d.h.c
	d.mu.Lock()
	via := d.via
	d.mu.Unlock()
	var slErr error
	if via != ViaDialStdio {
		nc, err := c.client.DialContext(ctx, "unix", d.socket)
		if err == nil {
			d.chose(ViaStreamLocal, "")
			return nc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if lerr := c.lostError("opening a channel to " + d.socket); lerr != nil {
			return nil, lerr
		}
		if via == ViaStreamLocal {
			// It worked before: the daemon is down or restarting.
			return nil, fmt.Errorf("%s: the docker daemon does not answer at %s (%v): %w", c.name, d.socket, err, tasks.ErrDockerUnreachable)
		}
		slErr = err
	}
	return d.dialStdio(ctx, slErr)
}

// chose records the way that worked, logging it the first time.
func (d *dockerAPI) chose(via, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.via == via {
		return
	}
	d.via, d.reason = via, reason
	c := d.h.c
	c.dockerVia.Store(via)
	attrs := []any{"via", via, "socket", d.socket}
	if reason != "" {
		attrs = append(attrs, "reason", reason)
	}
	c.log.Info("docker api path", attrs...)
}

// dialStdio starts `docker system dial-stdio` in a session and returns the
// session as the connection. The first data read from it proves the way
// works; a stream that ends before any data fails with dial-stdio's own
// words, joined with slErr (why the stream-local channel did not do).
func (d *dockerAPI) dialStdio(ctx context.Context, slErr error) (net.Conn, error) {
	c := d.h.c
	args := []string{"docker"}
	if d.socket != DefaultDockerSocket {
		args = append(args, "--host=unix://"+d.socket)
	}
	args = append(args, "system", "dial-stdio")
	line := tasks.ShellJoin(args)
	if d.h.become {
		switch {
		case c.cfg.BecomePassword != "":
			return nil, d.failed(slErr, errors.New("it cannot run under a sudo that asks for a password; let the login user open the socket (the docker group) or give it passwordless sudo for docker"))
		case c.needPTY.Load():
			return nil, d.failed(slErr, errors.New("sudo on this host requires a tty (requiretty), which cannot carry the API's stream; let the login user open the socket (the docker group)"))
		}
		line = tasks.ShellJoin(append([]string{"sudo", "-n", "-u", c.cfg.BecomeUser, "--"}, args...))
	}
	sess, release, err := c.newSession(ctx, "docker system dial-stdio", false)
	if err != nil {
		return nil, d.failed(slErr, err)
	}
	c.dockerCommands.Add(1)
	sc, err := newStdioConn(sess, release, line)
	if err != nil {
		return nil, d.failed(slErr, err)
	}
	reason := ""
	if slErr != nil {
		reason = "the stream-local channel to " + d.socket + " failed: " + slErr.Error()
	}
	sc.onData = func() { d.chose(ViaDialStdio, reason) }
	sc.onEarlyEOF = func(stderr string) error {
		err := stdioError(stderr)
		d.mu.Lock()
		known := d.via != ""
		d.mu.Unlock()
		if known {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		return d.failed(slErr, err)
	}
	return sc, nil
}

// failed is the error of a host where neither way worked.
func (d *dockerAPI) failed(slErr, stdioErr error) error {
	return &DockerDialError{Host: d.h.c.name, Socket: d.socket, StreamLocal: slErr, DialStdio: stdioErr}
}

// stdioError reads why dial-stdio ended before any data.
func stdioError(stderr string) error {
	msg := tasks.LastLine([]byte(stderr))
	low := strings.ToLower(stderr)
	switch {
	case strings.Contains(low, "cannot connect to the docker daemon") || strings.Contains(low, "is the docker daemon running"):
		return fmt.Errorf("%s: %w", msg, tasks.ErrDockerUnreachable)
	case msg == "":
		return errors.New("it ended without a word")
	}
	return errors.New(msg)
}
