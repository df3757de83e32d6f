package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/log"
	"github.com/pkg/sftp"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// testServer is an in-process SSH server on the loopback interface. It runs
// exec requests with the local "sh -c" (so files are the real filesystem:
// tests use t.TempDir paths), serves the "sftp" subsystem with pkg/sftp,
// answers global requests (keepalives) with a refusal, and accepts only the
// client key it generated. Its host key is pinned in a temporary
// known_hosts file, so the client's host key check is exercised, never
// switched off.
type testServer struct {
	t          *testing.T
	host       string // as the client dials it: "127.0.0.1" or "::1"
	port       int
	hostKeys   []ssh.Signer
	knownHosts string // known_hosts pinning hostKeys[0]
	clientKey  string // authorized identity file
	env        []string
	noSFTP     bool

	accepted atomic.Int64 // TCP connections accepted
	logins   atomic.Int64 // successful logins
	tunnels  atomic.Int64 // direct-tcpip channels opened (as a bastion)
	// streamLocal serves direct-streamlocal@openssh.com channels (else they
	// are refused as sshd's AllowStreamLocalForwarding no does);
	// streamLocals counts the channels asked for.
	streamLocal  bool
	streamLocals atomic.Int64
	// handshaking counts connections accepted and not logged in yet;
	// maxHandshaking is the most there ever were at once.
	handshaking, maxHandshaking atomic.Int64
	pending                     sync.Map // remote address → true while handshaking
	// sessionsOpen counts open session channels; refusedSessions the ones
	// refused beyond maxSessions.
	sessionsOpen, refusedSessions atomic.Int64
	maxSessions                   int
	drop                          func(n int64) bool
	execs                         chan string   // commands started, for tests that wait on one
	stall                         atomic.Bool   // stop reading from every connection
	resume                        chan struct{} // closed at cleanup: stalled reads end
	mu                            sync.Mutex
	conns                         []net.Conn
}

type serverOpts struct {
	listen   string         // default "127.0.0.1:0"
	hostKeys []ssh.Signer   // default one fresh Ed25519 key
	env      []string       // added to the commands' environment
	noSFTP   bool           // refuse the sftp subsystem
	accept   []ssh.Signer   // extra authorized client keys
	silent   bool           // accept TCP but never speak SSH
	onConn   func(net.Conn) // called with each accepted conn
	// drop, when it returns true for the n-th accepted connection (from
	// 1), closes it before the SSH version exchange, as sshd beyond
	// MaxStartups.
	drop func(n int64) bool
	// maxSessions refuses session channels beyond this many open at once
	// (0: no limit), as sshd's MaxSessions.
	maxSessions int
	// handshakeDelay slows every login down, so that handshakes overlap.
	handshakeDelay time.Duration
	// streamLocal serves direct-streamlocal@openssh.com channels.
	streamLocal bool
}

func newServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	if o.listen == "" {
		o.listen = "127.0.0.1:0"
	}
	if len(o.hostKeys) == 0 {
		o.hostKeys = []ssh.Signer{newEd25519(t)}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	s := &testServer{
		t: t, host: tcp.IP.String(), port: tcp.Port, hostKeys: o.hostKeys,
		env: o.env, noSFTP: o.noSFTP, maxSessions: o.maxSessions, drop: o.drop, streamLocal: o.streamLocal,
		execs: make(chan string, 100), resume: make(chan struct{}),
	}
	dir := t.TempDir()
	clientSigner, keyFile := writeClientKey(t, dir, "id_ed25519")
	s.clientKey = keyFile
	authorized := [][]byte{clientSigner.PublicKey().Marshal()}
	for _, k := range o.accept {
		authorized = append(authorized, k.PublicKey().Marshal())
	}
	s.knownHosts = filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{s.addr()}, o.hostKeys[0].PublicKey())
	if err := os.WriteFile(s.knownHosts, []byte("# pinned by the test\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(cm ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			time.Sleep(o.handshakeDelay)
			for _, a := range authorized {
				if bytes.Equal(a, key.Marshal()) {
					s.loggedIn(cm.RemoteAddr().String())
					return nil, nil
				}
			}
			return nil, errors.New("unknown key")
		},
	}
	for _, k := range o.hostKeys {
		cfg.AddHostKey(k)
	}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			n := s.accepted.Add(1)
			if s.drop != nil && s.drop(n) {
				nc.Close()
				continue
			}
			s.mu.Lock()
			s.conns = append(s.conns, nc)
			s.mu.Unlock()
			if o.onConn != nil {
				o.onConn(nc)
			}
			if o.silent {
				continue
			}
			go s.serve(&stallConn{Conn: nc, s: s}, cfg)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(s.resume)
		s.dropAll()
	})
	return s
}

// addr is host:port as the client dials it.
func (s *testServer) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// config returns a client Config that trusts this server's pinned key.
func (s *testServer) config() Config {
	return Config{
		Name:            "testhost",
		Address:         s.host,
		Port:            s.port,
		User:            "tester",
		IdentityFiles:   []string{s.clientKey},
		KnownHostsFiles: []string{s.knownHosts},
		ConnectTimeout:  10 * time.Second,
	}
}

// dropAll closes every accepted TCP connection, as a host that goes away.
func (s *testServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// stallConn stops reading while the server is stalled, like a peer whose
// packets are dropped.
type stallConn struct {
	net.Conn
	s *testServer
}

func (c *stallConn) Read(p []byte) (int, error) {
	if c.s.stall.Load() {
		<-c.s.resume
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

func (s *testServer) serve(nc net.Conn, cfg *ssh.ServerConfig) {
	defer nc.Close()
	s.pending.Store(nc.RemoteAddr().String(), true)
	n := s.handshaking.Add(1)
	for {
		m := s.maxHandshaking.Load()
		if n <= m || s.maxHandshaking.CompareAndSwap(m, n) {
			break
		}
	}
	_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	s.loggedIn(nc.RemoteAddr().String())
	if err != nil {
		return
	}
	s.logins.Add(1)
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			if s.maxSessions > 0 && s.sessionsOpen.Load() >= int64(s.maxSessions) {
				s.refusedSessions.Add(1)
				nch.Reject(ssh.Prohibited, "no more sessions")
				continue
			}
			ch, creqs, err := nch.Accept()
			if err != nil {
				continue
			}
			s.sessionsOpen.Add(1)
			go func() {
				s.session(ch, creqs)
				s.sessionsOpen.Add(-1)
			}()
		case "direct-tcpip":
			s.tunnel(nch)
		case "direct-streamlocal@openssh.com":
			s.streamLocals.Add(1)
			s.streamlocal(nch)
		default:
			nch.Reject(ssh.UnknownChannelType, "only sessions and direct-tcpip")
		}
	}
}

// loggedIn ends the handshake of the connection from remote, once: when its
// key is accepted (before the client can know) or when the handshake fails.
func (s *testServer) loggedIn(remote string) {
	if _, ok := s.pending.LoadAndDelete(remote); ok {
		s.handshaking.Add(-1)
	}
}

// tunnel serves a direct-tcpip channel (the server as a bastion): it dials
// the requested address and copies both ways.
func (s *testServer) tunnel(nch ssh.NewChannel) {
	var p struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil {
		nch.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	target, err := net.DialTimeout("tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))), 5*time.Second)
	if err != nil {
		nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		target.Close()
		return
	}
	s.tunnels.Add(1)
	go ssh.DiscardRequests(reqs)
	go func() {
		io.Copy(ch, target)
		ch.CloseWrite()
	}()
	go func() {
		io.Copy(target, ch)
		target.Close()
		ch.Close()
	}()
}

// streamlocal serves a direct-streamlocal@openssh.com channel (OpenSSH's
// PROTOCOL 2.4): it connects to the unix socket named and copies both ways,
// or refuses as sshd with AllowStreamLocalForwarding no does.
func (s *testServer) streamlocal(nch ssh.NewChannel) {
	if !s.streamLocal {
		nch.Reject(ssh.Prohibited, "administratively prohibited: open failed")
		return
	}
	var p struct {
		SocketPath string
		Reserved0  string
		Reserved1  uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil {
		nch.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	target, err := net.DialTimeout("unix", p.SocketPath, 5*time.Second)
	if err != nil {
		nch.Reject(ssh.ConnectionFailed, "open failed")
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		target.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		io.Copy(ch, target)
		ch.CloseWrite()
	}()
	go func() {
		io.Copy(target, ch)
		target.Close()
		ch.Close()
	}()
}

// session serves one session channel: pty-req (noted in the command's
// environment as DINDOPS_TEST_PTY=1; no real terminal), exec, subsystem
// sftp and signal. When the client closes the channel, the command's
// process group is killed.
func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	var (
		mu   sync.Mutex
		pgid int
		pty  bool
	)
	kill := func(sig syscall.Signal) {
		mu.Lock()
		defer mu.Unlock()
		if pgid > 0 {
			syscall.Kill(-pgid, sig)
		}
	}
	defer kill(syscall.SIGKILL)
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			pty = true
			req.Reply(true, nil)
		case "exec":
			var p struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			env := append(os.Environ(), s.env...)
			if pty {
				env = append(env, "DINDOPS_TEST_PTY=1")
			}
			go s.exec(ch, p.Command, env, func(pid int) { mu.Lock(); pgid = pid; mu.Unlock() })
		case "subsystem":
			var p struct{ Name string }
			if ssh.Unmarshal(req.Payload, &p) != nil || p.Name != "sftp" || s.noSFTP {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			go func() {
				srv, err := sftp.NewServer(ch)
				if err == nil {
					srv.Serve()
					srv.Close()
				}
				ch.Close()
			}()
		case "signal":
			var p struct{ Signal string }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				if sig, ok := signalsByName[p.Signal]; ok {
					kill(sig)
				}
			}
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

var signalsByName = map[string]syscall.Signal{"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP}

func (s *testServer) exec(ch ssh.Channel, command string, env []string, started func(pid int)) {
	defer ch.Close()
	cmd := exec.Command("sh", "-c", command)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	if slices.Contains(env, "DINDOPS_TEST_PTY=1") {
		cmd.Stderr = ch // a terminal has one output stream
	}
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return
	}
	if err := cmd.Start(); err != nil {
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{127}))
		return
	}
	started(cmd.Process.Pid)
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	select {
	case s.execs <- command:
	default:
	}
	cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		name := "TERM"
		for n, sig := range signalsByName {
			if sig == ws.Signal() {
				name = n
			}
		}
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{name, false, "", ""}))
		return
	}
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(ws.ExitStatus())}))
}

func newEd25519(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newECDSA(t *testing.T) ssh.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeClientKey writes a fresh unencrypted Ed25519 key in OpenSSH format.
func writeClientKey(t *testing.T, dir, name string) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

// dial connects to s with cfg and closes the connection at cleanup.
func dial(t *testing.T, cfg Config) *Conn {
	t.Helper()
	c, err := Dial(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// debugLogger returns a logger at debug level writing into buf.
func debugLogger(buf io.Writer) *log.Logger {
	l := log.New(buf)
	l.SetLevel(log.DebugLevel)
	return l
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (loggers).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
