package transport

import (
	"context"
	"errors"
	"fmt"
	"github.com/charmbracelet/log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dindops/dindops/tasks"
)

// hop returns a Config for s as a jump host.
func hop(s *testServer, name string) Config {
	cfg := s.config()
	cfg.Name = name
	return cfg
}

// C19: a host behind a bastion is reached through it, with both host keys
// checked; many hosts behind one bastion share one bastion connection.
func TestJumpSharesOneBastionConnection(t *testing.T) {
	bastion := newServer(t, serverOpts{})
	const n = 12
	pool := NewPool()
	var wg sync.WaitGroup
	conns := make([]*Conn, n)
	errs := make([]error, n)
	servers := make([]*testServer, n)
	for i := range servers {
		servers[i] = newServer(t, serverOpts{})
	}
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := s.config()
			cfg.Name = fmt.Sprintf("host-%d", i)
			cfg.Jump = []Config{hop(bastion, "jump")}
			conns[i], errs[i] = pool.Dial(t.Context(), cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("host-%d: %v", i, err)
		}
		out := run(t, conns[i].Host(false), "echo", "hi")
		if string(out.Stdout) != "hi\n" {
			t.Errorf("host-%d: %q", i, out.Stdout)
		}
	}
	if got := bastion.logins.Load(); got != 1 {
		t.Errorf("bastion logins = %d, want 1 (shared)", got)
	}
	if got := bastion.tunnels.Load(); got != n {
		t.Errorf("tunnels = %d, want %d", got, n)
	}
	// The bastion connection lives while a host uses it, and is closed
	// after the last one.
	for _, c := range conns[1:] {
		c.Close()
	}
	run(t, conns[0].Host(false), "true")
	conns[0].Close()
	pool.mu.Lock()
	left := len(pool.bastions)
	pool.mu.Unlock()
	if left != 0 {
		t.Errorf("%d bastion connections left open after the last host closed", left)
	}
}

// A chain of two bastions, each checked.
func TestJumpChain(t *testing.T) {
	b1, b2, target := newServer(t, serverOpts{}), newServer(t, serverOpts{}), newServer(t, serverOpts{})
	cfg := target.config()
	cfg.Jump = []Config{hop(b1, "outer"), hop(b2, "inner")}
	c := dial(t, cfg)
	run(t, c.Host(false), "true")
	if b1.logins.Load() != 1 || b2.logins.Load() != 1 || b1.tunnels.Load() != 1 || b2.tunnels.Load() != 1 {
		t.Errorf("logins %d/%d tunnels %d/%d, want 1 each", b1.logins.Load(), b2.logins.Load(), b1.tunnels.Load(), b2.tunnels.Load())
	}
}

// An unreachable bastion is named as the bastion; so is a bastion whose key
// is unknown; a target behind a good bastion with a bad key is named itself.
func TestJumpErrorsNameTheBastion(t *testing.T) {
	target := newServer(t, serverOpts{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	cfg := target.config()
	cfg.Name = "build-7"
	cfg.Jump = []Config{{Name: "jumpy", Address: "127.0.0.1", Port: closedPort, User: "tester", IdentityFiles: cfg.IdentityFiles, KnownHostsFiles: cfg.KnownHostsFiles}}
	_, err = Dial(t.Context(), cfg)
	var bErr *BastionError
	var uErr *UnreachableError
	if !errors.As(err, &bErr) || !errors.As(err, &uErr) || bErr.Bastion != "bastion jumpy" {
		t.Fatalf("Dial = %v, want *BastionError wrapping *UnreachableError", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "build-7 unreachable: bastion jumpy unreachable: connect") {
		t.Errorf("message %q does not name the bastion", msg)
	}

	// Bastion's host key unknown: checked like any host's.
	bastion := newServer(t, serverOpts{})
	h := hop(bastion, "jumpy")
	h.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "empty")}
	cfg.Jump = []Config{h}
	_, err = Dial(t.Context(), cfg)
	var hkErr *HostKeyError
	if !errors.As(err, &bErr) || !errors.As(err, &hkErr) || !strings.Contains(err.Error(), "host key of bastion jumpy is unknown") {
		t.Errorf("Dial = %v, want the bastion's unknown host key", err)
	}
	if bastion.logins.Load() != 0 {
		t.Errorf("logged in to a bastion whose key is unknown")
	}

	// Good bastion, target's key changed: the target is named.
	cfg.Jump = []Config{hop(bastion, "jumpy")}
	other := newServer(t, serverOpts{})
	cfg.KnownHostsFiles = []string{other.knownHosts}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(knownhostsLine(target.addr(), newEd25519(t).PublicKey())+"\n"), 0o600)
	cfg.KnownHostsFiles = []string{kh}
	_, err = Dial(t.Context(), cfg)
	if !errors.As(err, &hkErr) || errors.As(err, &bErr) || !hkErr.Changed() || hkErr.Host != "build-7" {
		t.Errorf("Dial = %v, want build-7's changed key", err)
	}
	if target.logins.Load() != 0 {
		t.Errorf("logged in to a target whose key changed")
	}

	// The target refuses connections: the bastion is fine, the target named.
	cfg.KnownHostsFiles = target.config().KnownHostsFiles
	cfg.Port = closedPort
	_, err = Dial(t.Context(), cfg)
	if !errors.As(err, &uErr) || errors.As(err, &bErr) || !strings.Contains(err.Error(), "build-7 unreachable: connect through bastion jumpy") {
		t.Errorf("Dial = %v, want build-7 unreachable through the bastion", err)
	}
}

// A host behind a bastion that dies is reported lost, naming the bastion.
func TestJumpBastionLost(t *testing.T) {
	bastion, target := newServer(t, serverOpts{}), newServer(t, serverOpts{})
	cfg := target.config()
	cfg.Jump = []Config{hop(bastion, "jumpy")}
	cfg.KeepaliveInterval = -1
	c := dial(t, cfg)
	done := make(chan error, 1)
	go func() {
		_, err := c.Host(false).Run(t.Context(), tasks.Cmd{Args: []string{"sleep", "30"}})
		done <- err
	}()
	<-target.execs
	bastion.dropAll()
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnectionLost) {
			t.Errorf("Run = %v, want ErrConnectionLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not fail after the bastion went away")
	}
}

// MaxStartups: the server drops connections before the login; the client
// retries with backoff and succeeds, or names the likely cause.
func TestHandshakeDroppedIsRetried(t *testing.T) {
	s := newServer(t, serverOpts{drop: func(n int64) bool { return n <= 2 }})
	var logs syncBuffer
	cfg := s.config()
	cfg.Logger = debugLogger(&logs)
	run(t, dial(t, cfg).Host(false), "true")
	if got := s.accepted.Load(); got != 3 {
		t.Errorf("accepted %d connections, want 3 (two dropped, one good)", got)
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("the retries were not logged:\n%s", logs.String())
	}

	always := newServer(t, serverOpts{drop: func(int64) bool { return true }})
	start := time.Now()
	_, err := Dial(t.Context(), always.config())
	var uErr *UnreachableError
	if !errors.Is(err, ErrHandshakeDropped) || !errors.As(err, &uErr) ||
		!strings.Contains(err.Error(), "handshake dropped by server (possible MaxStartups limit)") {
		t.Fatalf("Dial = %v, want the MaxStartups hint", err)
	}
	if got := always.accepted.Load(); got != handshakeAttempts {
		t.Errorf("%d attempts, want %d", got, handshakeAttempts)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("giving up took %s", d)
	}
}

// Many hosts on one endpoint (one sshd): at most MaxHandshakes handshakes
// at once.
func TestHandshakesPerEndpointAreLimited(t *testing.T) {
	s := newServer(t, serverOpts{handshakeDelay: 50 * time.Millisecond})
	pool := &Pool{MaxHandshakes: 3}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := s.config()
			cfg.Name = fmt.Sprintf("alias-%d", i)
			c, err := pool.Dial(t.Context(), cfg)
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := s.maxHandshaking.Load(); got > 3 {
		t.Errorf("%d handshakes at once, want at most 3", got)
	}
}

// MaxSessions: more commands than the host accepts sessions queue instead of
// failing, and the connection and its running commands are untouched.
func TestRefusedSessionsQueue(t *testing.T) {
	s := newServer(t, serverOpts{maxSessions: 3})
	var logs syncBuffer
	cfg := s.config()
	cfg.Logger = debugLogger(&logs)
	c := dial(t, cfg)
	h := c.Host(false)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"sh", "-c", fmt.Sprintf("sleep 0.3; echo %d", i)}})
			if err == nil && strings.TrimSpace(string(out.Stdout)) != fmt.Sprint(i) {
				err = fmt.Errorf("command %d printed %q", i, out.Stdout)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if s.refusedSessions.Load() == 0 {
		t.Errorf("the server never refused a session: the test proves nothing")
	}
	// A session ends on the server a moment after the client saw its exit,
	// so the limit may settle below 3, never above.
	if limit, _ := c.sessions.current(); limit > 3 || limit < 1 {
		t.Errorf("limit = %d, want 1-3 (what the host accepts)", limit)
	}
	if s.accepted.Load() != 1 {
		t.Errorf("%d connections, want 1", s.accepted.Load())
	}
	if !strings.Contains(logs.String(), "queueing") {
		t.Errorf("not logged:\n%s", logs.String())
	}
}

// Our own limit holds below the server's.
func TestSessionsStayUnderTheLimit(t *testing.T) {
	s := newServer(t, serverOpts{})
	cfg := s.config()
	cfg.MaxSessions = 2
	h := dial(t, cfg).Host(false)
	var wg sync.WaitGroup
	start := time.Now()
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"sleep", "0.2"}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if s.refusedSessions.Load() != 0 {
		t.Errorf("sessions were refused")
	}
	// Six commands of 0.2 s, two at a time: three rounds.
	if d := time.Since(start); d < 550*time.Millisecond {
		t.Errorf("6 commands of 0.2 s took %s with 2 sessions at most: they ran more at once", d)
	}
}

// At a MaxSessions of 1 the run lock's session would leave no room for a
// command: the lock is handed to a process on the host (the session ends),
// the command runs, and the lock still keeps a second run out until it is
// released.
func TestLockAtMaxSessionsOneLetsCommandsRun(t *testing.T) {
	s := newServer(t, serverOpts{maxSessions: 1})
	cfg := s.config()
	cfg.LockPath = filepath.Join(t.TempDir(), "dindops.lock")
	var logs syncBuffer
	cfg.Logger = log.New(&logs)
	cfg.Logger.SetLevel(log.DebugLevel)
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	c := dial(t, cfg)
	release, err := c.Lock(t.Context()) // holds the one session the host allows
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for range 3 {
		if out, err := c.Host(false).Run(ctx, tasks.Cmd{Args: []string{"echo", "ran"}}); err != nil || string(out.Stdout) != "ran\n" {
			t.Fatalf("Run under the lock = %q, %v", out.Stdout, err)
		}
	}
	if c.lost() != nil {
		t.Errorf("the connection was torn down: %v", c.lost())
	}
	other := dial(t, cfg)
	var locked *LockedError
	if _, err := other.Lock(ctx); !errors.As(err, &locked) {
		t.Fatalf("second run's Lock while the first holds it (handed to the host) = %v, want *LockedError", err)
	}
	release()
	// The host kills its holder: the lock is free at once.
	release2, err := other.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	release2()
}
