package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// engine is a stand-in Docker daemon: an HTTP server that answers
// GET /_ping and counts requests and connections.
type engine struct {
	pings, conns atomic.Int64
	status       int  // answer to /_ping (200 when 0)
	closeEach    bool // answer with Connection: close
}

func (e *engine) server() *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || r.URL.Path != "/_ping" {
				http.Error(w, "not a ping", http.StatusNotFound)
				return
			}
			e.pings.Add(1)
			if e.closeEach {
				w.Header().Set("Connection", "close")
			}
			w.Header().Set("Api-Version", "1.47")
			if e.status != 0 {
				w.WriteHeader(e.status)
			}
			io.WriteString(w, "OK")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				e.conns.Add(1)
			}
		},
	}
}

// oneConn is a listener that yields one connection, then waits to close.
type oneConn struct {
	c    chan net.Conn
	done chan struct{}
	once sync.Once
}

func listenOne(c net.Conn) *oneConn {
	l := &oneConn{c: make(chan net.Conn, 1), done: make(chan struct{})}
	l.c <- c
	return l
}

func (l *oneConn) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *oneConn) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *oneConn) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

func pipeEngine(t *testing.T, e *engine) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	srv := e.server()
	go srv.Serve(listenOne(server))
	t.Cleanup(func() { srv.Close() })
	return client
}

func TestAPIRequestsKeepAlive(t *testing.T) {
	e := &engine{}
	conn := pipeEngine(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := apiRequests(ctx, conn, 7); err != nil {
		t.Fatal(err)
	}
	if e.pings.Load() != 7 || e.conns.Load() != 1 {
		t.Fatalf("%d pings over %d connections, want 7 over 1", e.pings.Load(), e.conns.Load())
	}
}

func TestAPIRequestsNot200(t *testing.T) {
	conn := pipeEngine(t, &engine{status: http.StatusServiceUnavailable})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := apiRequests(ctx, conn, 2)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a 503: err = %v", err)
	}
}

func TestAPIRequestsConnectionClosed(t *testing.T) {
	// A daemon that closes the connection after each answer: the second
	// request would need a second channel, which the floor never opens.
	conn := pipeEngine(t, &engine{closeEach: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := apiRequests(ctx, conn, 2)
	if err == nil || !strings.Contains(err.Error(), "API request 2") {
		t.Fatalf("connection closed after the first answer: err = %v", err)
	}
}

// sshServer is an in-process SSH server: sessions run "exec" requests
// (recorded, exit 0) and the sftp subsystem; direct-streamlocal channels
// are connected to socket, whatever path they ask for (recorded).
type sshServer struct {
	addr   string
	mu     sync.Mutex
	execs  []string
	paths  []string
	logins int
}

func startSSH(t *testing.T, hostKey ssh.Signer, clientKey ssh.PublicKey, socket string) *sshServer {
	t.Helper()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), clientKey.Marshal()) {
				return nil, nil
			}
			return nil, io.EOF
		},
	}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &sshServer{addr: l.Addr().String()}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(t, nc, cfg, socket)
		}
	}()
	return s
}

func (s *sshServer) serve(t *testing.T, nc net.Conn, cfg *ssh.ServerConfig, socket string) {
	defer nc.Close()
	_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.logins++
	s.mu.Unlock()
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			ch, creqs, err := nch.Accept()
			if err != nil {
				continue
			}
			go s.session(ch, creqs)
		case "direct-streamlocal@openssh.com":
			var p struct {
				Path      string
				Reserved  string
				Reserved2 uint32
			}
			if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil {
				nch.Reject(ssh.ConnectionFailed, "bad payload")
				continue
			}
			s.mu.Lock()
			s.paths = append(s.paths, p.Path)
			s.mu.Unlock()
			up, err := net.Dial("unix", socket)
			if err != nil {
				nch.Reject(ssh.ConnectionFailed, err.Error())
				continue
			}
			ch, creqs, err := nch.Accept()
			if err != nil {
				up.Close()
				continue
			}
			go ssh.DiscardRequests(creqs)
			go func() {
				defer ch.Close()
				defer up.Close()
				go func() { io.Copy(up, ch); up.(*net.UnixConn).CloseWrite() }()
				io.Copy(ch, up)
			}()
		default:
			nch.Reject(ssh.UnknownChannelType, "no")
		}
	}
}

func (s *sshServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for r := range reqs {
		switch r.Type {
		case "exec":
			var p struct{ Command string }
			ssh.Unmarshal(r.Payload, &p)
			s.mu.Lock()
			s.execs = append(s.execs, p.Command)
			s.mu.Unlock()
			r.Reply(true, nil)
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
			return
		case "subsystem":
			var p struct{ Name string }
			ssh.Unmarshal(r.Payload, &p)
			if p.Name != "sftp" {
				r.Reply(false, nil)
				continue
			}
			r.Reply(true, nil)
			srv, err := sftp.NewServer(ch)
			if err != nil {
				return
			}
			srv.Serve()
			return
		default:
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
}

// TestFloorOverSSH runs the floor against an in-process SSH server whose
// direct-streamlocal channels reach a stand-in Docker daemon on a unix
// socket: every host gets its commands, SFTP requests and API requests,
// the API requests over one channel (one HTTP connection) per host.
func TestFloorOverSSH(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "docker.sock")
	ul, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{}
	srv := e.server()
	go srv.Serve(ul)
	t.Cleanup(func() { srv.Close() })

	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewSignerFromKey(hostPriv)
	_, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	clientKey, _ := ssh.NewSignerFromKey(clientPriv)
	s := startSSH(t, hostKey, clientKey.PublicKey(), socket)

	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(dir, "id")
	khFile := filepath.Join(dir, "known_hosts")
	host, port, _ := net.SplitHostPort(s.addr)
	p, _ := strconv.Atoi(port)
	os.WriteFile(idFile, pem.EncodeToMemory(block), 0o600)
	os.WriteFile(khFile, []byte(knownhosts.Line([]string{knownhosts.Normalize(s.addr)}, hostKey.PublicKey())+"\n"), 0o600)
	tg := targets{User: "root", IdentityFile: idFile, KnownHosts: khFile, Hosts: []target{
		{Name: "h1", Address: host, Port: p, Commands: 2, SFTP: 1, API: 5, Via: "streamlocal"},
		{Name: "h2", Address: host, Port: p, Commands: 1, API: 3},
		{Name: "h3", Address: host, Port: p, Commands: 1}, // floor-physical: no channel
	}}
	b, _ := json.Marshal(tg)
	tf := filepath.Join(dir, "targets.json")
	os.WriteFile(tf, b, 0o600)

	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-targets", tf, "-timeout", "30s"}, &stderr); code != 0 {
		t.Fatalf("floor exited %d: %s", code, stderr.String())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logins != 3 || len(s.execs) != 4 || strings.Join(s.execs, ",") != "true,true,true,true" {
		t.Errorf("%d logins, commands %q; want 3 logins and 4 times true", s.logins, s.execs)
	}
	if len(s.paths) != 2 || s.paths[0] != "/var/run/docker.sock" || s.paths[1] != "/var/run/docker.sock" {
		t.Errorf("streamlocal channels to %q, want two to /var/run/docker.sock", s.paths)
	}
	if e.pings.Load() != 8 || e.conns.Load() != 2 {
		t.Errorf("%d pings over %d connections, want 8 over 2", e.pings.Load(), e.conns.Load())
	}

	// A host where dindops went through dial-stdio: the floor says it
	// does not do that, instead of measuring something else.
	tg.Hosts = []target{{Name: "h1", Address: host, Port: p, Commands: 1, API: 2, Via: "dial-stdio"}}
	b, _ = json.Marshal(tg)
	os.WriteFile(tf, b, 0o600)
	stderr.Reset()
	s.mu.Unlock()
	code := run(context.Background(), []string{"-targets", tf}, &stderr)
	s.mu.Lock()
	if code != 1 || !strings.Contains(stderr.String(), "dial-stdio") {
		t.Errorf("dial-stdio host: exit %d, %s", code, stderr.String())
	}
}
